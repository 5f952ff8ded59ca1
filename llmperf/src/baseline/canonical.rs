//! The canonical JSON of a baseline file: sorted keys, rounded numbers,
//! two-space indentation, and arrays of plain values on one line, so a
//! re-saved baseline differs from the last one only where results did.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// Decimal places kept of every fractional number (0.1 µs for milliseconds).
pub const DECIMALS: i32 = 4;

/// `value` as canonical JSON text, ending in a newline.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    // serde_json's Map is a BTreeMap here (no `preserve_order`): keys come sorted.
    let mut value = serde_json::to_value(value)?;
    round(&mut value);
    let mut out = String::new();
    write(&mut out, &value, 0);
    out.push('\n');
    Ok(out)
}

fn round(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(x) = n.as_f64() {
                let scale = 10f64.powi(DECIMALS);
                let rounded = (x * scale).round() / scale;
                // -0.0 prints as "-0.0"; a diff should not show a sign flip of nothing.
                let rounded = if rounded == 0.0 { 0.0 } else { rounded };
                if let Some(r) = serde_json::Number::from_f64(rounded) {
                    *n = r;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(round),
        Value::Object(map) => map.values_mut().for_each(round),
        _ => {}
    }
}

fn is_plain(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn write(out: &mut String, value: &Value, indent: usize) {
    let pad = |n: usize| "  ".repeat(n);
    match value {
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (key, item)) in map.iter().enumerate() {
                let _ = write!(out, "{}{}: ", pad(indent + 1), Value::String(key.clone()));
                write(out, item, indent + 1);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}}}", pad(indent));
        }
        Value::Array(items) if items.iter().all(is_plain) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&item.to_string());
            }
            out.push(']');
        }
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write(out, item, indent + 1);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}]", pad(indent));
        }
        plain => out.push_str(&plain.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_numbers_rounded_and_plain_arrays_inline() {
        let value = serde_json::json!({
            "zeta": 1.234_567_89,
            "alpha": {"b": [1, 2.000_04, -0.000_01], "a": null},
            "rows": [[1.5, 2.5], [3.0]],
            "n": 7,
        });
        let text = to_string(&value).unwrap();
        assert_eq!(
            text,
            "{\n  \"alpha\": {\n    \"a\": null,\n    \"b\": [1, 2.0, 0.0]\n  },\n  \"n\": 7,\n  \"rows\": [\n    [1.5, 2.5],\n    [3.0]\n  ],\n  \"zeta\": 1.2346\n}\n"
        );
        // Canonical text reads back as the rounded value and re-writes identically.
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(to_string(&back).unwrap(), text);
    }
}
