//! YAML as Perses reads it: Perses decodes a YAML file with Go's gopkg.in/yaml.v3 into
//! `map[string]any` first (`unmarshaller.read`, internal/cli/file/read.go), so a plain scalar
//! means what yaml.v3's resolver makes of it (resolve.go), not what YAML 1.2 says: `012` is the
//! integer 10, `2024-01-01` a time (re-emitted as `2024-01-01T00:00:00Z`), `yes` a string. The
//! first document only; duplicate keys are an error; anchors, aliases and merge keys work.
//!
//! Block-style text as tools write it is read by the line decoder of `yaml_block`, several
//! times faster; the rest by events from yaml-rust2 (the fastest well-kept event parser measured on real dashboards,
//! docs/benchmarks.md); the tree is built here, with the line of each top-level list item.

use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The first document of a YAML text as a JSON value, as Perses sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub value: Value,
    /// Start line of each item of a top-level list (1-based).
    pub item_lines: Vec<Option<usize>>,
}

/// Why the text is not the YAML Perses reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Most values aliases may add to a document: a document of aliases of aliases ("billion
/// laughs") would otherwise take all memory. yaml.v3 refuses such documents too.
const MAX_ALIAS_NODES: usize = 1_000_000;

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        /// The key read, waiting for its value, with the line it is on.
        key: Option<(Key, usize)>,
        anchor: usize,
        /// (hash of the key, line) of each key, for the duplicate-key error (no copy of the
        /// keys: the map decides what is a duplicate, this only finds the first line).
        lines: Vec<(u64, usize)>,
        /// Mappings merged with `<<`, in order: explicit keys win over them, earlier ones over
        /// later ones.
        merges: Vec<Map<String, Value>>,
    },
}

enum Key {
    Plain(String),
    Merge,
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    alias_nodes: usize,
    root: Option<Value>,
    item_lines: Vec<Option<usize>>,
}

fn error(mark: Option<&Marker>, message: impl Into<String>) -> YamlError {
    YamlError {
        line: mark.map(Marker::line),
        column: mark.map(|m| m.col() + 1),
        message: message.into(),
    }
}

/// Parses the first document of `text` (the caller passes only that document's text): the
/// block-style subset tools write by the fast line decoder, anything else (and every error) by
/// the event parser. Both give the same `Doc` where the fast one answers.
pub fn first_document(text: &str) -> Result<Doc, YamlError> {
    match super::yaml_block::decode(text) {
        Some(doc) => Ok(doc),
        None => full_document(text),
    }
}

/// `first_document` for lint: the fast decoder keeps no more of the plugin specs of panels and
/// queries than their type (`yaml_block::decode_checked`); the event parser, where it reads,
/// keeps them whole, which the checks read the same way.
pub fn first_document_checked(text: &str) -> Result<Doc, YamlError> {
    match super::yaml_block::decode_checked(text) {
        Some(doc) => Ok(doc),
        None => full_document(text),
    }
}

/// `first_document` by the event parser alone: every YAML Perses reads.
pub fn full_document(text: &str) -> Result<Doc, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
        item_lines: Vec::new(),
    };
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            let m = e.marker();
            YamlError {
                line: Some(m.line()),
                column: Some(m.col() + 1),
                message: e.info().to_string(),
            }
        })?;
        match event {
            Event::StreamStart | Event::DocumentStart | Event::Nothing => {}
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::Scalar(text, style, anchor, tag) => {
                if b.expecting_key() {
                    b.key(text, style, tag.as_ref(), mark.line())?;
                } else {
                    let v =
                        resolve(text, style, tag.as_ref()).map_err(|m| error(Some(&mark), m))?;
                    if anchor > 0 {
                        b.anchors.insert(anchor, v.clone());
                    }
                    b.value(v, &mark)?;
                }
            }
            Event::SequenceStart(anchor, _) => {
                if b.expecting_key() {
                    return Err(error(
                        Some(&mark),
                        "a list as a mapping key is not supported",
                    ));
                }
                b.note_item(&mark);
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                if b.expecting_key() {
                    return Err(error(
                        Some(&mark),
                        "a mapping as a mapping key is not supported",
                    ));
                }
                b.note_item(&mark);
                b.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    anchor,
                    lines: Vec::new(),
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd => {
                let Some(Frame::Seq { items, anchor }) = b.stack.pop() else {
                    return Err(error(Some(&mark), "unbalanced list"));
                };
                let v = Value::Array(items);
                if anchor > 0 {
                    b.anchors.insert(anchor, v.clone());
                }
                b.value_done(v, &mark)?;
            }
            Event::MappingEnd => {
                let Some(Frame::Map {
                    mut map,
                    anchor,
                    merges,
                    ..
                }) = b.stack.pop()
                else {
                    return Err(error(Some(&mark), "unbalanced mapping"));
                };
                for merged in merges {
                    for (k, v) in merged {
                        map.entry(k).or_insert(v);
                    }
                }
                let v = Value::Object(map);
                if anchor > 0 {
                    b.anchors.insert(anchor, v.clone());
                }
                b.value_done(v, &mark)?;
            }
            Event::Alias(id) => {
                let Some(v) = b.anchors.get(&id).cloned() else {
                    return Err(error(Some(&mark), "unknown anchor"));
                };
                b.alias_nodes += count(&v);
                if b.alias_nodes > MAX_ALIAS_NODES {
                    return Err(error(
                        Some(&mark),
                        "document contains excessive aliasing (more than a million values)",
                    ));
                }
                if b.expecting_key() {
                    match v {
                        Value::String(s) => {
                            b.key(s, TScalarStyle::DoubleQuoted, None, mark.line())?
                        }
                        _ => {
                            return Err(error(
                                Some(&mark),
                                "an alias of a collection as a mapping key is not supported",
                            ));
                        }
                    }
                } else {
                    b.note_item(&mark);
                    b.value_done(v, &mark)?;
                }
            }
        }
    }
    Ok(Doc {
        value: b.root.unwrap_or(Value::Null),
        item_lines: b.item_lines,
    })
}

fn count(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(count).sum::<usize>(),
        _ => 1,
    }
}

impl Builder {
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    /// Records the line of an item of the top-level list when one starts.
    fn note_item(&mut self, mark: &Marker) {
        if self.stack.len() == 1 && matches!(self.stack[0], Frame::Seq { .. }) {
            self.item_lines.push(Some(mark.line()));
        }
    }

    fn key(
        &mut self,
        text: String,
        style: TScalarStyle,
        tag: Option<&Tag>,
        line: usize,
    ) -> Result<(), YamlError> {
        let Some(Frame::Map { key, .. }) = self.stack.last_mut() else {
            unreachable!("a key is read in a mapping");
        };
        let k = if style == TScalarStyle::Plain && tag.is_none() && text == "<<" {
            Key::Merge
        } else if style == TScalarStyle::Plain && tag.is_none() && is_null(&text) {
            Key::Plain(String::new())
        } else {
            Key::Plain(text)
        };
        *key = Some((k, line));
        Ok(())
    }

    /// A scalar value: where it goes, and the line of a top-level list item.
    fn value(&mut self, v: Value, mark: &Marker) -> Result<(), YamlError> {
        self.note_item(mark);
        self.value_done(v, mark)
    }

    /// A finished value: into the list or mapping it belongs to, or the document's root.
    fn value_done(&mut self, v: Value, mark: &Marker) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map {
                map,
                key,
                lines,
                merges,
                ..
            }) => match key.take() {
                Some((Key::Merge, _)) => match v {
                    Value::Object(m) => merges.push(m),
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::Object(m) => merges.push(m),
                                _ => {
                                    return Err(error(
                                        Some(mark),
                                        "map merge requires map or sequence of maps as the value",
                                    ));
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(error(
                            Some(mark),
                            "map merge requires map or sequence of maps as the value",
                        ));
                    }
                },
                Some((Key::Plain(k), line)) => {
                    let h = key_hash(&k);
                    if map.contains_key(&k) {
                        let first = lines
                            .iter()
                            .find(|(x, _)| *x == h)
                            .map_or(line, |(_, l)| *l);
                        return Err(YamlError {
                            line: Some(line),
                            column: None,
                            message: format!("mapping key {k:?} already defined at line {first}"),
                        });
                    }
                    lines.push((h, line));
                    map.insert(k, v);
                }
                None => unreachable!("a value follows its key"),
            },
        }
        Ok(())
    }
}

/// FNV-1a: a key's hash for finding its first line (collisions only pick a wrong line number).
fn key_hash(k: &str) -> u64 {
    k.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// What yaml.v3 decodes a scalar into, in `any` (resolve.go; quoted and block scalars are
/// strings, as is any plain one that is nothing else).
pub fn resolve(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let tag = tag.map(|t| {
        if t.handle == "!!" {
            t.suffix.as_str()
        } else {
            t.suffix
                .strip_prefix("tag:yaml.org,2002:")
                .unwrap_or(t.suffix.as_str())
        }
    });
    let plain = style == TScalarStyle::Plain;
    if tag.is_none() && !plain {
        return Ok(Value::String(text));
    }
    match tag {
        Some("str") => return Ok(Value::String(text)),
        Some("null") => return Ok(Value::Null),
        Some("bool") => {
            return plain_bool(&text)
                .map(Value::Bool)
                .ok_or_else(|| format!("cannot decode !!str `{text}` as a !!bool"));
        }
        Some("int") => {
            return plain_int(&text)
                .ok_or_else(|| format!("cannot decode !!str `{text}` as a !!int"));
        }
        Some("float") => {
            return plain_int(&text)
                .or_else(|| plain_float(&text))
                .ok_or_else(|| format!("cannot decode !!str `{text}` as a !!float"));
        }
        Some("timestamp") => {
            return timestamp(&text)
                .map(Value::String)
                .ok_or_else(|| format!("cannot decode !!str `{text}` as a !!timestamp"));
        }
        Some("binary") => {
            return base64(&text)
                .map(|b| Value::String(String::from_utf8_lossy(&b).into_owned()))
                .ok_or_else(|| "!!binary value contains invalid base64 data".to_string());
        }
        Some(_) => return Ok(Value::String(text)),
        None => {}
    }
    if is_null(&text) {
        return Ok(Value::Null);
    }
    if let Some(b) = plain_bool(&text) {
        return Ok(Value::Bool(b));
    }
    let first = text.as_bytes()[0];
    if matches!(first, b'+' | b'-' | b'.' | b'0'..=b'9') {
        if let Some(v) = plain_int(&text).or_else(|| plain_float(&text)) {
            return Ok(v);
        }
        if first.is_ascii_digit()
            && let Some(t) = timestamp(&text)
        {
            return Ok(Value::String(t));
        }
    }
    Ok(Value::String(text))
}

fn plain_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`, on the text without `_` (as yaml.v3
/// does): an optional sign, then `0x`, `0o`, `0b` or a leading `0` (octal) or decimal digits.
fn plain_int(text: &str) -> Option<Value> {
    let owned;
    let s = if text.contains('_') {
        owned = text.replace('_', "");
        owned.as_str()
    } else {
        text
    };
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(d) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, d)
        } else if let Some(d) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, d)
        } else if let Some(d) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, d)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some(Value::Number(Number::from(
                (magnitude as i128).wrapping_neg() as i64,
            )))
        } else {
            None
        }
    } else if let Ok(v) = i64::try_from(magnitude) {
        Some(Value::Number(Number::from(v)))
    } else {
        Some(Value::Number(Number::from(magnitude)))
    }
}

/// yaml.v3's `yamlStyleFloat` (`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`) and the
/// special values. Infinities and NaN cannot be JSON numbers: they stay the text Go would write
/// back (`.inf`, `-.inf`, `.nan`), so that a string field takes them and a number field does not.
fn plain_float(s: &str) -> Option<Value> {
    match s {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::String(".inf".into()));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::String("-.inf".into())),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::String(".nan".into())),
        _ => {}
    }
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if int_digits == 0 && i == frac_start {
            return None;
        }
    } else if int_digits == 0 {
        return None;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    if f.is_infinite() {
        return Some(Value::String(if f > 0.0 { ".inf" } else { "-.inf" }.into()));
    }
    Number::from_f64(f).map(Value::Number)
}

/// yaml.v3's `parseTimestamp` formats (`2006-1-2T15:4:5.999999999Z07:00`, the same with `t`,
/// `2006-1-2 15:4:5.999999999`, `2006-1-2`), as Go's RFC 3339 (nanoseconds, trailing zeros
/// dropped) writes the time back.
fn timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    // All formats start with YYYY-.
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let num = |t: &str, max: usize| -> Option<u32> {
        (!t.is_empty() && t.len() <= max && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some((&s[i..i + 1], &s[i + 1..]))),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, m, dd) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || y.len() != 4 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, num(dd, 2)?)?;
    let Some((sep, rest)) = rest else {
        return Some(format!("{}T00:00:00Z", date.format("%Y-%m-%d")));
    };
    // The zone: `Z`, or `±hh:mm`, only in the `T` forms.
    let (clock, zone) = if sep == " " {
        (rest, None)
    } else if let Some(c) = rest.strip_suffix('Z') {
        (c, Some(0i32))
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (c, z) = (&rest[..i], &rest[i..]);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = z[1..].split_once(':')?;
        if hh.len() != 2 || mm.len() != 2 {
            return None;
        }
        (
            c,
            Some(sign * (num(hh, 2)? as i32 * 3600 + num(mm, 2)? as i32 * 60)),
        )
    };
    if sep != " " && zone.is_none() {
        return None;
    }
    let (hms, frac) = match clock.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (clock, None),
    };
    let mut t = hms.split(':');
    let (h, mi, se) = (t.next()?, t.next()?, t.next()?);
    if t.next().is_some() {
        return None;
    }
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            format!("{f:0<9}").parse().ok()?
        }
        Some(_) => return None,
    };
    let time = chrono::NaiveTime::from_hms_nano_opt(num(h, 2)?, num(mi, 2)?, num(se, 2)?, nanos)?;
    let local = date.and_time(time);
    let offset = zone.unwrap_or(0);
    let text = local.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    };
    let zone = if offset == 0 {
        "Z".to_string()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let a = offset.unsigned_abs();
        format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    };
    Some(format!("{text}{frac}{zone}"))
}

fn base64(s: &str) -> Option<Vec<u8>> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = T.iter().position(|&t| t == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(text: &str) -> Value {
        first_document(text).unwrap().value
    }

    #[test]
    fn plain_scalars_resolve_as_yaml_v3() {
        let got = v(
            "a: 012\nb: 0x1F\nc: 1_000\nd: -0\ne: 1.5\nf: .5\ng: 1e3\nh: yes\ni: True\nj: ~\nk:\nl: 08\nm: 0o17\nn: 0b101\no: 2024-01-01\np: .inf\nq: 99999999999999999999\nr: 18446744073709551615\ns: '012'\nt: \"true\"\nu: -9223372036854775808\n",
        );
        assert_eq!(
            got,
            json!({"a": 10, "b": 31, "c": 1000, "d": 0, "e": 1.5, "f": 0.5, "g": 1000.0,
                   "h": "yes", "i": true, "j": null, "k": null, "l": 8.0, "m": 15, "n": 5,
                   "o": "2024-01-01T00:00:00Z", "p": ".inf", "q": 1e20,
                   "r": 18446744073709551615u64, "s": "012", "t": "true",
                   "u": -9223372036854775808i64})
        );
    }

    #[test]
    fn timestamps_as_go_writes_them_back() {
        for (text, want) in [
            ("2024-1-2", Some("2024-01-02T00:00:00Z")),
            (
                "2024-01-01T10:00:00.5+01:00",
                Some("2024-01-01T10:00:00.5+01:00"),
            ),
            ("2024-01-01 10:00:00", Some("2024-01-01T10:00:00Z")),
            ("2024-01-01t10:00:00Z", Some("2024-01-01T10:00:00Z")),
            ("2024-01-01T10:00:00", None),
            ("2024-13-01", None),
            ("20240101", None),
        ] {
            assert_eq!(timestamp(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn tags_quotes_and_blocks() {
        assert_eq!(
            v("a: !!str 123\nb: !!int \"5\"\nc: |\n  x\n  y\nd: 'yes'\n"),
            json!({"a": "123", "b": 5, "c": "x\ny\n", "d": "yes"})
        );
        let e = first_document("a: !!int x\n").unwrap_err();
        assert!(
            e.message.contains("cannot decode !!str `x` as a !!int"),
            "{e:?}"
        );
    }

    #[test]
    fn duplicate_keys_are_an_error_with_both_lines() {
        let e = first_document("kind: A\nmetadata: {}\nkind: B\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.message, "mapping key \"kind\" already defined at line 1");
    }

    #[test]
    fn anchors_aliases_and_merges() {
        assert_eq!(
            v("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\nd: *b\n"),
            json!({"base": {"x": 1, "y": 2}, "c": {"x": 1, "y": 3}, "d": {"x": 1, "y": 2}})
        );
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
        let e = first_document(bomb).unwrap_err();
        assert!(e.message.contains("excessive aliasing"), "{e:?}");
    }

    #[test]
    fn list_items_carry_their_lines_and_syntax_errors_their_position() {
        let d = first_document("- kind: A\n  x: 1\n- kind: B\n-\n  kind: C\n").unwrap();
        assert_eq!(d.item_lines, vec![Some(1), Some(3), Some(5)]);
        let e = first_document("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line.is_some() && !e.message.is_empty(), "{e:?}");
    }
}
