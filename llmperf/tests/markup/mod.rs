//! A strict little reader of the report's HTML and inline SVG, for the
//! rendering tests: every element closed in order, attribute values quoted,
//! no raw `<` or unknown entity in text. Stricter than a browser on purpose:
//! a template or chart that slips is caught here, with its byte offset.
//!
//! Included by the test files with `mod markup;`.

#![allow(dead_code)]

/// Elements that never have content or an end tag.
const VOID: [&str; 13] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

/// Elements whose content is text up to their end tag.
const RAW_TEXT: [&str; 2] = ["script", "style"];

/// An element and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// Lowercase tag name (`#document` for the root).
    pub name: String,
    /// Attributes in source order, values with entities decoded.
    pub attrs: Vec<(String, String)>,
    /// Children in source order.
    pub children: Vec<Node>,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A nested element.
    Element(Element),
    /// Text, with entities decoded.
    Text(String),
}

impl Element {
    fn new(name: &str) -> Element {
        Element {
            name: name.to_ascii_lowercase(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every element below this one, in document order.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        for child in &self.children {
            if let Node::Element(e) = child {
                out.push(e);
                out.extend(e.descendants());
            }
        }
        out
    }

    /// Every element below this one named `name`.
    pub fn find_all(&self, name: &str) -> Vec<&Element> {
        self.descendants()
            .into_iter()
            .filter(|e| e.name == name)
            .collect()
    }

    /// The elements directly below this one named `name`.
    pub fn children_named(&self, name: &str) -> Vec<&Element> {
        self.children
            .iter()
            .filter_map(|c| match c {
                Node::Element(e) if e.name == name => Some(e),
                _ => None,
            })
            .collect()
    }

    /// The element with `id="…"`.
    pub fn by_id(&self, id: &str) -> Option<&Element> {
        self.descendants()
            .into_iter()
            .find(|e| e.attr("id") == Some(id))
    }

    /// All text below this element, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            match child {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => out.push_str(&e.text()),
            }
        }
        out
    }
}

/// Parses `html` into a `#document` element, or says where it is malformed.
pub fn parse(html: &str) -> Result<Element, String> {
    let mut stack = vec![Element::new("#document")];
    let mut pos = 0;
    let at = |pos: usize| {
        let end = (pos + 60).min(html.len());
        let end = (end..=html.len())
            .find(|&i| html.is_char_boundary(i))
            .unwrap_or(html.len());
        format!("byte {pos} ({:?})", &html[pos..end])
    };
    while pos < html.len() {
        let rest = &html[pos..];
        let Some(lt) = rest.find('<') else {
            push_text(&mut stack, rest).map_err(|e| format!("{e} at {}", at(pos)))?;
            break;
        };
        push_text(&mut stack, &rest[..lt]).map_err(|e| format!("{e} at {}", at(pos)))?;
        pos += lt;
        let rest = &html[pos..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment
                .find("-->")
                .ok_or_else(|| format!("unclosed comment at {}", at(pos)))?;
            pos += 4 + end + 3;
        } else if rest.starts_with("<!") {
            let end = rest
                .find('>')
                .ok_or_else(|| format!("unclosed declaration at {}", at(pos)))?;
            pos += end + 1;
        } else if let Some(closing) = rest.strip_prefix("</") {
            let end = closing
                .find('>')
                .ok_or_else(|| format!("unclosed end tag at {}", at(pos)))?;
            let name = closing[..end].trim().to_ascii_lowercase();
            let open = stack.pop().expect("the document stays on the stack");
            if open.name != name || stack.is_empty() {
                return Err(format!("</{name}> closes <{}> at {}", open.name, at(pos)));
            }
            stack.last_mut().unwrap().children.push(Node::Element(open));
            pos += 2 + end + 1;
        } else if rest[1..].starts_with(|c: char| c.is_ascii_alphabetic()) {
            let (element, self_closing, len) =
                start_tag(rest).map_err(|e| format!("{e} at {}", at(pos)))?;
            pos += len;
            let parent = stack.last_mut().unwrap();
            if self_closing || VOID.contains(&element.name.as_str()) {
                parent.children.push(Node::Element(element));
            } else if RAW_TEXT.contains(&element.name.as_str()) {
                let end_tag = format!("</{}", element.name);
                let end = html[pos..]
                    .to_ascii_lowercase()
                    .find(&end_tag)
                    .ok_or_else(|| format!("unclosed <{}> at {}", element.name, at(pos)))?;
                let mut element = element;
                element
                    .children
                    .push(Node::Text(html[pos..pos + end].to_string()));
                pos += end;
                let close = html[pos..]
                    .find('>')
                    .ok_or_else(|| format!("unclosed end tag at {}", at(pos)))?;
                pos += close + 1;
                parent.children.push(Node::Element(element));
            } else {
                stack.push(element);
            }
        } else {
            return Err(format!("a raw '<' in text at {}", at(pos)));
        }
    }
    if stack.len() != 1 {
        let open: Vec<&str> = stack[1..].iter().map(|e| e.name.as_str()).collect();
        return Err(format!("unclosed at the end: {open:?}"));
    }
    Ok(stack.pop().unwrap())
}

fn push_text(stack: &mut [Element], raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Ok(());
    }
    let text = decode(raw)?;
    stack.last_mut().unwrap().children.push(Node::Text(text));
    Ok(())
}

/// Reads `<name attr="v" …>` or `<name … />`: the element, whether it
/// closed itself, and the tag's length in bytes.
fn start_tag(tag: &str) -> Result<(Element, bool, usize), String> {
    let name_end = tag[1..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
        .map_or(tag.len(), |i| i + 1);
    let mut element = Element::new(&tag[1..name_end]);
    let mut i = name_end;
    loop {
        let rest = &tag[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if trimmed.starts_with("/>") {
            return Ok((element, true, i + 2));
        }
        if trimmed.starts_with('>') {
            return Ok((element, false, i + 1));
        }
        if trimmed.is_empty() {
            return Err(format!("unclosed <{}>", element.name));
        }
        let name_len = trimmed
            .find(|c: char| c.is_whitespace() || matches!(c, '=' | '>' | '/' | '"' | '\''))
            .unwrap_or(trimmed.len());
        if name_len == 0 {
            return Err(format!("a stray {:?} in <{}>", &trimmed[..1], element.name));
        }
        let name = trimmed[..name_len].to_ascii_lowercase();
        i += name_len;
        let value = if tag[i..].starts_with('=') {
            i += 1;
            let quote = tag[i..].chars().next().unwrap_or(' ');
            if quote != '"' && quote != '\'' {
                return Err(format!(
                    "attribute {name} of <{}> is not quoted",
                    element.name
                ));
            }
            let close = tag[i + 1..]
                .find(quote)
                .ok_or_else(|| format!("attribute {name} of <{}> is not closed", element.name))?;
            let value = decode(&tag[i + 1..i + 1 + close])?;
            i += close + 2;
            value
        } else {
            String::new()
        };
        if element.attr(&name).is_some() {
            return Err(format!("attribute {name} twice in <{}>", element.name));
        }
        element.attrs.push((name, value));
    }
}

/// Decodes character references; an unknown one is an error.
fn decode(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest
            .find(';')
            .filter(|&e| e <= 10)
            .ok_or_else(|| format!("a bare '&' in {raw:?}"))?;
        let name = &rest[1..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => '\u{a0}',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{name}; in {raw:?}"))?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn the_reader_accepts_nesting_and_refuses_what_a_template_slip_produces() {
    let doc = parse(
        r#"<!DOCTYPE html><html><head><style>a > b { }</style></head><body><p id="x" class='y'>a &lt;b&gt; &#x2F; &amp;<br><svg viewBox="0 0 1 1"><rect width="1"/></svg></p></body></html>"#,
    )
    .unwrap();
    let p = doc.by_id("x").unwrap();
    assert_eq!(p.attr("class"), Some("y"));
    assert_eq!(p.text(), "a <b> / &");
    assert_eq!(doc.find_all("rect").len(), 1);
    assert_eq!(doc.find_all("style")[0].text(), "a > b { }");
    for bad in [
        "<p><b></p></b>",
        "<p>",
        "<p>1 < 2</p>",
        "<p a=b></p>",
        "<p>&bogus;</p>",
        "<p>fish & chips</p>",
        "<p a=\"1\" a=\"2\"></p>",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad}");
    }
}
