//! Tests' reading of a chart: a strict parser for the small XML subset the SVG backend writes
//! (elements, double-quoted attributes, text, the five XML entities), failing on anything else.

/// One element: its name, its attributes and its text, unescaped.
pub(super) struct Element {
    pub(super) name: String,
    attributes: Vec<(String, String)>,
    pub(super) text: String,
}

impl Element {
    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A parsed chart: its elements in document order, the root `<svg>` first.
pub(super) struct Svg {
    pub(super) elements: Vec<Element>,
}

impl Svg {
    /// Parses `source`, panicking with the reason if it is not one well-formed `<svg>` element.
    pub(super) fn parse(source: &str) -> Svg {
        assert!(source.starts_with("<svg "), "does not start with <svg");
        let mut elements: Vec<Element> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find('<') {
            let text = unescape(&rest[..at]);
            if let Some(&current) = open.last() {
                elements[current].text.push_str(text.trim());
            } else {
                assert!(text.trim().is_empty(), "text outside the root: {text:?}");
            }
            let end = rest[at..].find('>').map(|e| at + e).expect("unclosed tag");
            let tag = &rest[at + 1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let current = open.pop().expect("closing tag without an open one");
                assert_eq!(elements[current].name, name, "mismatched closing tag");
                continue;
            }
            assert!(
                !elements.is_empty() || tag.starts_with("svg "),
                "the root is not <svg>"
            );
            assert!(
                open.len() == 1 || elements.is_empty(),
                "elements nested in elements"
            );
            let (tag, self_closing) = match tag.strip_suffix('/') {
                Some(tag) => (tag, true),
                None => (tag, false),
            };
            let (name, mut attributes_source) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad element name {name:?}"
            );
            let mut attributes = Vec::new();
            loop {
                attributes_source = attributes_source.trim_start();
                if attributes_source.is_empty() {
                    break;
                }
                let (key, after) = attributes_source.split_once("=\"").expect("attribute");
                let (value, after) = after.split_once('"').expect("attribute value");
                assert!(!value.contains('<'), "raw < in an attribute");
                attributes.push((key.to_string(), unescape(value)));
                attributes_source = after;
            }
            elements.push(Element {
                name: name.to_string(),
                attributes,
                text: String::new(),
            });
            if !self_closing {
                open.push(elements.len() - 1);
            }
        }
        assert!(rest.trim().is_empty(), "text after the root");
        assert!(open.is_empty(), "unclosed elements");
        Svg { elements }
    }

    pub(super) fn count(&self, name: &str) -> usize {
        self.count_where(name, |_| true)
    }

    pub(super) fn count_where(&self, name: &str, keep: impl Fn(&Element) -> bool) -> usize {
        self.elements
            .iter()
            .filter(|e| e.name == name && keep(e))
            .count()
    }

    /// Whether a `<text>` element reads exactly `text`.
    pub(super) fn has_text(&self, text: &str) -> bool {
        self.count_where("text", |e| e.text == text) > 0
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find(';')
            .map(|e| at + e)
            .expect("unterminated entity");
        out.push(match &rest[at + 1..end] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            other => panic!("unknown entity &{other};"),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
