//! Python's `str()` and `repr()` of JSON values.
//!
//! ComfyUI builds error details with f-strings, so a client that shows or
//! matches them sees Python spellings (`True`, `None`, `'x'`, `1.0`). The
//! simulator reproduces those spellings for the values it echoes back.

use serde_json::{Number, Value};

/// `str(value)` as Python would print the value decoded from JSON.
pub(crate) fn str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => repr(other),
    }
}

/// `repr(value)` as Python would print the value decoded from JSON.
pub(crate) fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(number) => number_repr(number),
        Value::String(text) => string_repr(text),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(key, item)| format!("{}: {}", string_repr(key), repr(item)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

fn number_repr(number: &Number) -> String {
    if number.is_f64() {
        float_repr(number.as_f64().unwrap_or_default())
    } else {
        number.to_string()
    }
}

/// Python always shows a float with a decimal point (`1.0`, not `1`).
pub(crate) fn float_repr(value: f64) -> String {
    let text = value.to_string();
    if value.is_finite() && !text.contains(['.', 'e']) {
        format!("{text}.0")
    } else {
        text
    }
}

fn string_repr(text: &str) -> String {
    // Python prefers single quotes and switches to double quotes when the
    // text holds a single quote but no double quote.
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn spells_values_like_python() {
        assert_eq!(
            repr(&json!(["a", 1, 1.5, true, null])),
            "['a', 1, 1.5, True, None]"
        );
        assert_eq!(str(&json!("abc")), "abc");
        assert_eq!(repr(&json!(2.0)), "2.0");
        assert_eq!(repr(&json!("it's")), "\"it's\"");
    }
}
