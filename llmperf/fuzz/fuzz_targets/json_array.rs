//! The Gemini JSON-array splitter on arbitrary bytes in arbitrary pieces: it
//! never panics, the pieces do not change what it finds, it holds no more
//! than it was fed, and a well-formed array of objects splits into exactly
//! the elements serde_json sees, then its end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmperf::endpoint::framing::json_array::{ArrayItem, JsonArraySplitter};

mod common;

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Element(Vec<u8>),
    End,
    Unexpected(u8),
}

fn split(pieces: &[&[u8]]) -> Vec<Item> {
    let mut splitter = JsonArraySplitter::default();
    let mut items = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        splitter.feed(piece, |item| {
            items.push(match item {
                ArrayItem::Element(bytes) => Item::Element(bytes.to_vec()),
                ArrayItem::End => Item::End,
                ArrayItem::Unexpected(byte) => Item::Unexpected(byte),
            })
        });
        fed += piece.len();
        assert!(
            splitter.pending_bytes() <= fed,
            "holds {} bytes after {fed} fed",
            splitter.pending_bytes()
        );
    }
    items
}

fuzz_target!(|input: (Vec<u8>, &[u8])| {
    let (cuts, bytes) = input;
    let pieces = common::reads(&cuts, bytes);

    let whole = split(&[bytes]);
    assert_eq!(split(&pieces), whole);

    for item in &whole {
        if let Item::Element(element) = item {
            // An element runs from its opening to its matching closing bracket.
            assert!(matches!(element.first(), Some(b'{' | b'[')), "{element:?}");
            assert!(matches!(element.last(), Some(b'}' | b']')), "{element:?}");
        }
    }
    // Nothing follows an unexpected byte (the splitter stops there).
    if let Some(at) = whole.iter().position(|i| matches!(i, Item::Unexpected(_))) {
        assert_eq!(at + 1, whole.len(), "{whole:?}");
    }
    assert!(whole.iter().filter(|i| **i == Item::End).count() <= 1);

    // Differential check: a valid JSON array of objects and arrays splits
    // into the same elements, then its end.
    if let Ok(expected) = serde_json::from_slice::<Vec<serde_json::Value>>(bytes) {
        if expected.iter().all(|v| v.is_object() || v.is_array()) {
            let mut found = Vec::new();
            for item in &whole {
                match item {
                    Item::Element(element) => found.push(
                        serde_json::from_slice::<serde_json::Value>(element)
                            .expect("an element of a valid array parses"),
                    ),
                    Item::End => break,
                    Item::Unexpected(byte) => panic!("unexpected {byte:#04x} in a valid array"),
                }
            }
            assert_eq!(found, expected);
            assert!(whole.contains(&Item::End), "{whole:?}");
        }
    }
});
