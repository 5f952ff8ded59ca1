//! An incremental splitter for a JSON array streamed element by element
//! (Vertex AI's `streamGenerateContent` without `alt=sse`).
//!
//! The bytes of one array arrive in whatever pieces the network delivers;
//! [`JsonArraySplitter`] hands over each top-level element as soon as its
//! last byte is in, so each element is stamped with the read that
//! completed it, like an SSE event.

/// What [`JsonArraySplitter`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayItem<'a> {
    /// One complete top-level element (an object or array), as its bytes.
    Element(&'a [u8]),
    /// The array's closing `]`.
    End,
    /// A byte that cannot stand between elements; the splitter stops there.
    Unexpected(u8),
}

/// Where the splitter is between elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Place {
    /// Before the opening `[`.
    #[default]
    Start,
    /// Inside the array, between elements.
    Array,
    /// After the closing `]`.
    Ended,
    /// After an unexpected byte: everything else is ignored.
    Broken,
}

/// Finds the top-level elements of a JSON array as its bytes arrive, in
/// whatever pieces: string and escape state and nesting depth are tracked
/// so `]`, `}` and `\"` inside strings do not end anything, and each
/// element is handed over as soon as its last byte is fed (only the
/// element in progress is buffered). It splits, it does not validate:
/// an element is parsed by its consumer. A bare object instead of an array
/// is taken as one element (an error body sent with a 200).
///
/// ```
/// use llmperf::endpoint::framing::json_array::{ArrayItem, JsonArraySplitter};
/// let mut splitter = JsonArraySplitter::default();
/// let mut seen = Vec::new();
/// for piece in [&b"[{\"a\":\"]}\\\"\"}\r\n,"[..], b"{\"b\":[1]}", b"\r\n]"] {
///     splitter.feed(piece, |item| seen.push(match item {
///         ArrayItem::Element(e) => String::from_utf8_lossy(e).into_owned(),
///         other => format!("{other:?}"),
///     }));
/// }
/// assert_eq!(seen, ["{\"a\":\"]}\\\"\"}", "{\"b\":[1]}", "End"]);
/// assert!(splitter.ended());
/// ```
#[derive(Debug, Default)]
pub struct JsonArraySplitter {
    place: Place,
    /// Bytes of the element in progress (empty between elements).
    element: Vec<u8>,
    /// Open braces and brackets of the element in progress.
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonArraySplitter {
    /// Feeds the next bytes; `on_item` is called for every element (and
    /// the end) these bytes complete, in order.
    pub fn feed(&mut self, bytes: &[u8], mut on_item: impl FnMut(ArrayItem<'_>)) {
        let mut i = 0;
        while i < bytes.len() {
            if self.depth > 0 {
                let start = i;
                match self.scan(&bytes[start..]) {
                    Some(len) => {
                        self.element.extend_from_slice(&bytes[start..start + len]);
                        on_item(ArrayItem::Element(&self.element));
                        self.element.clear();
                        i = start + len;
                    }
                    None => {
                        self.element.extend_from_slice(&bytes[start..]);
                        return;
                    }
                }
                continue;
            }
            let byte = bytes[i];
            i += 1;
            if byte.is_ascii_whitespace() || self.place == Place::Broken {
                continue;
            }
            match (self.place, byte) {
                (Place::Start, b'[') => self.place = Place::Array,
                // A lone object: an error sent instead of the array.
                (Place::Start, b'{') | (Place::Array, b'{' | b'[') => {
                    self.element.push(byte);
                    self.depth = 1;
                }
                (Place::Array, b',') => {}
                (Place::Array, b']') => {
                    self.place = Place::Ended;
                    on_item(ArrayItem::End);
                }
                _ => {
                    self.place = Place::Broken;
                    on_item(ArrayItem::Unexpected(byte));
                }
            }
        }
    }

    /// Scans inside an element; `Some(n)` when its last byte is `bytes[n - 1]`.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &byte) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Whether the closing `]` came.
    pub fn ended(&self) -> bool {
        self.place == Place::Ended
    }

    /// Bytes held for an unfinished element.
    pub fn pending_bytes(&self) -> usize {
        self.element.len()
    }
}
