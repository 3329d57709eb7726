//! Block-style YAML for the mutation files of `tests/perses_mutations.rs`.

use super::mutate::RAW;
use serde_json::{Map, Value};

/// `v` as a block-style YAML document. Strings that YAML (1.1 or 1.2) could read as another
/// type, or that hold anything but a few safe characters, are double-quoted (JSON escapes are
/// valid YAML escapes), so the file means exactly the mutated value.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => block_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => block_list(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn block_map(m: &Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&string(k));
        out.push(':');
        node(v, indent, out);
    }
}

fn block_list(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                // `- key: value` with the other keys aligned under the first.
                let mut first = true;
                for (k, x) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    out.push_str(&string(k));
                    out.push(':');
                    node(x, indent + 2, out);
                }
            }
            _ => node(v, indent, out),
        }
    }
}

/// A value after `key:` or `-`, on the same line (scalars, empty collections) or below.
fn node(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            block_map(m, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            block_list(a, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

fn string(s: &str) -> String {
    if let Some(r) = s.strip_prefix(RAW) {
        return r.to_string();
    }
    let safe_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let lower = s.to_ascii_lowercase();
    let special = matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "nan" | "inf"
    );
    if safe_chars && first_ok && !special {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap()
    }
}
