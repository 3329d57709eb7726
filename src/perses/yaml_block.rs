//! A fast decoder for the YAML that tools write (percli, the Go SDK, yaml.v3, serde): block
//! mappings and lists, one-line plain and quoted scalars, `|` and `>` blocks, `{}` and `[]`. It reads
//! lines, not events, at several times the speed of the event parser, and gives up (`None`) on
//! anything else (anchors, tags, flow collections, multi-line plain or quoted scalars,
//! indentation indicators, tabs, duplicate keys, anything malformed), so that `yaml::first_document` reads
//! those with the full parser, which also words every error. Where it answers, the answer is
//! the full parser's: tests/yaml_block.rs compares both on real and generated documents.

use super::yaml::{Doc, resolve};
use serde_json::{Map, Value};
use std::borrow::Cow;
use yaml_rust2::scanner::TScalarStyle;

/// Keys longer than this are not implicit keys in YAML (the spec's limit); left to the parser.
const MAX_KEY: usize = 1024;

struct Line<'a> {
    /// Spaces before the content.
    indent: usize,
    /// The line after the indentation, without its newline.
    text: &'a str,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    /// Index of the next line to read.
    at: usize,
    item_lines: Vec<Option<usize>>,
    /// The place of a resource's root: `Place::Root` when plugin specs are skipped.
    root: Place,
}

/// Where a node is, as far as `decode_checked` needs to know. The plugin specs of a
/// dashboard's panels and queries are `interface{}` in Perses' model (no plugin schema is known
/// here, and no check reads inside them), and they hold about a fifth of a dashboard's nodes:
/// lint reads them for their syntax alone. The places walk `spec.panels.*.spec`, then
/// `plugin.spec` or `queries[*].spec.plugin.spec`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Root,
    Spec,
    Panels,
    Panel,
    PanelSpec,
    PanelPlugin,
    Queries,
    Query,
    QuerySpec,
    QueryPlugin,
    /// A plugin spec itself: a collection is read for syntax and kept empty (its type is
    /// checked), a scalar is kept.
    PluginSpec,
    /// Inside a plugin spec: read for syntax, nothing kept.
    Skipped,
    /// Anywhere else: built in full.
    Other,
}

impl Place {
    fn key(self, key: &str) -> Place {
        match (self, key) {
            (Place::PluginSpec | Place::Skipped, _) => Place::Skipped,
            (Place::Root, "spec") => Place::Spec,
            (Place::Spec, "panels") => Place::Panels,
            (Place::Panels, _) => Place::Panel,
            (Place::Panel, "spec") => Place::PanelSpec,
            (Place::PanelSpec, "plugin") => Place::PanelPlugin,
            (Place::PanelSpec, "queries") => Place::Queries,
            (Place::Query, "spec") => Place::QuerySpec,
            (Place::QuerySpec, "plugin") => Place::QueryPlugin,
            (Place::PanelPlugin | Place::QueryPlugin, "spec") => Place::PluginSpec,
            _ => Place::Other,
        }
    }

    fn item(self) -> Place {
        match self {
            Place::Queries => Place::Query,
            Place::PluginSpec | Place::Skipped => Place::Skipped,
            _ => Place::Other,
        }
    }

    /// Whether the children of a collection here are read for syntax only.
    fn skips(self) -> bool {
        matches!(self, Place::PluginSpec | Place::Skipped)
    }
}

/// The first document of `text`, or `None` when it is not in the subset read here.
pub fn decode(text: &str) -> Option<Doc> {
    decode_with(text, Place::Other)
}

/// `decode` for lint: the same document, but the plugin specs of a dashboard's panels and
/// queries are read for their syntax only (every error `decode` gives up on, duplicate keys
/// included) and kept as `{}` or `[]`, or as themselves when they are scalars.
pub fn decode_checked(text: &str) -> Option<Doc> {
    decode_with(text, Place::Root)
}

fn decode_with(text: &str, root: Place) -> Option<Doc> {
    let bytes = text.as_bytes();
    if memchr::memchr2(b'\r', b'\t', bytes).is_some() {
        return None;
    }
    let mut lines = Vec::with_capacity(text.len() / 24);
    let mut start = 0;
    // As `split('\n')`: a final newline leaves a last, empty line (block scalars' chomping
    // reads it).
    for end in memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len())) {
        let raw = &bytes[start..end];
        let indent = raw.iter().take_while(|&&b| b == b' ').count();
        lines.push(Line {
            indent,
            text: &text[start + indent..end],
        });
        start = end + 1;
    }
    let mut r = Reader {
        lines,
        at: 0,
        item_lines: Vec::new(),
        root,
    };
    let first = r.significant()?;
    if r.lines[first].indent == 0 && r.lines[first].text == "---" {
        r.at = first + 1;
    }
    let start = r.significant()?;
    let l = &r.lines[start];
    if l.indent != 0 || l.text.starts_with(['%', '-', '.']) && !is_item(l.text) {
        return None;
    }
    let value = if is_item(l.text) {
        r.sequence(0, true, root)?
    } else {
        r.mapping(0, root)?
    };
    // Nothing may follow the root (first_yaml_document cut the text at the next document).
    if r.significant().is_some() {
        return None;
    }
    Some(Doc {
        value,
        item_lines: r.item_lines,
    })
}

fn is_item(t: &str) -> bool {
    t == "-" || t.starts_with("- ")
}

fn is_comment_or_blank(t: &str) -> bool {
    t.is_empty() || t.starts_with('#')
}

impl<'a> Reader<'a> {
    /// Moves to the next line with content; its index, or `None` at the end.
    fn significant(&mut self) -> Option<usize> {
        while self.at < self.lines.len() {
            if !is_comment_or_blank(self.lines[self.at].text) {
                return Some(self.at);
            }
            self.at += 1;
        }
        None
    }

    /// Indentation of the next line with content, if any.
    fn next_indent(&mut self) -> Option<usize> {
        self.significant().map(|i| self.lines[i].indent)
    }

    /// A block mapping whose keys are at column `indent`; the reader is at its first key.
    fn mapping(&mut self, indent: usize, place: Place) -> Option<Value> {
        let mut map = Map::new();
        self.mapping_into(&mut map, indent, place, None)?;
        Some(Value::Object(map))
    }

    /// A block mapping whose keys are at column `indent`, into `map`; `first` is the text of
    /// its first entry when that was on the line of a list item (`- key: value`).
    fn mapping_into(
        &mut self,
        map: &mut Map<String, Value>,
        indent: usize,
        place: Place,
        first: Option<&'a str>,
    ) -> Option<()> {
        // Where the children are skipped, their keys are only checked for duplicates.
        let mut seen = Vec::new();
        if let Some(text) = first {
            self.entry(map, &mut seen, text, indent, place)?;
        }
        while let Some(i) = self.significant() {
            let line = &self.lines[i];
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_item(line.text) {
                return None;
            }
            let text = line.text;
            self.at = i + 1;
            self.entry(map, &mut seen, text, indent, place)?;
        }
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        Some(())
    }

    /// One `key: value` at column `indent` (`text` starts at the key); the value may continue
    /// on the next lines.
    fn entry(
        &mut self,
        map: &mut Map<String, Value>,
        seen: &mut Vec<Cow<'a, str>>,
        text: &'a str,
        indent: usize,
        place: Place,
    ) -> Option<()> {
        let (key, rest) = split_key(text)?;
        let value = self.value_after(rest, indent, place.key(&key))?;
        if place.skips() {
            seen.push(key);
        } else if map.insert(key.into_owned(), value).is_some() {
            // A duplicate: the full parser words the error.
            return None;
        }
        Some(())
    }

    /// The value of an entry or list item whose inline part is `rest` (after `: ` or `- `), in
    /// a collection at column `indent`.
    fn value_after(&mut self, rest: &'a str, indent: usize, place: Place) -> Option<Value> {
        let rest = strip_comment(rest)?;
        if rest.is_empty() {
            // On the next lines: more indented, or a list at the same column.
            return match self.significant() {
                Some(j) if self.lines[j].indent > indent => {
                    self.node(self.lines[j].indent, j, place)
                }
                Some(j) if self.lines[j].indent == indent && is_item(self.lines[j].text) => {
                    self.sequence(indent, false, place)
                }
                _ => Some(Value::Null),
            };
        }
        if let Some(header) = rest.strip_prefix('|') {
            return self.block_scalar(header, indent, false);
        }
        if let Some(header) = rest.strip_prefix('>') {
            return self.block_scalar(header, indent, true);
        }
        let v = inline_scalar(rest, place == Place::Skipped)?;
        // A more indented line would continue the scalar (or be an error): not read here.
        if self.next_indent().is_some_and(|n| n > indent) {
            return None;
        }
        Some(v)
    }

    /// A block node starting at line `j`, column `indent`.
    fn node(&mut self, indent: usize, j: usize, place: Place) -> Option<Value> {
        if is_item(self.lines[j].text) {
            self.sequence(indent, false, place)
        } else {
            self.mapping(indent, place)
        }
    }

    /// A block list whose `-` are at column `indent`; `top` records each item's line.
    fn sequence(&mut self, indent: usize, top: bool, place: Place) -> Option<Value> {
        let mut items = Vec::new();
        // Each item of the top list is a resource.
        let child = if top { self.root } else { place.item() };
        while let Some(i) = self.significant() {
            let line = &self.lines[i];
            if line.indent < indent || (line.indent == indent && !is_item(line.text)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let text = line.text;
            self.at = i + 1;
            let after = &text[1..];
            let spaces = after.bytes().take_while(|&b| b == b' ').count();
            let content = &after[spaces..];
            let column = indent + 1 + spaces;
            if is_comment_or_blank(content) {
                // `-` alone: the item is on the next lines, more indented.
                let v = match self.significant() {
                    Some(j) if self.lines[j].indent > indent => {
                        if top {
                            if is_item(self.lines[j].text) {
                                return None;
                            }
                            self.item_lines.push(Some(j + 1));
                        }
                        self.node(self.lines[j].indent, j, child)?
                    }
                    // A null item of the top list is an error the full parser places.
                    _ if top => return None,
                    _ => Value::Null,
                };
                if !place.skips() {
                    items.push(v);
                }
                continue;
            }
            if top {
                self.item_lines.push(Some(i + 1));
            }
            if is_item(content) {
                return None;
            }
            if split_key(content).is_some() {
                // `- key: value`: a mapping whose keys are at `column`.
                let mut map = Map::new();
                self.mapping_into(&mut map, column, child, Some(content))?;
                if !place.skips() {
                    items.push(Value::Object(map));
                }
            } else if top {
                // A top list item that is no object is an error the full parser places.
                return None;
            } else {
                let v = self.value_after(content, indent, child)?;
                if !place.skips() {
                    items.push(v);
                }
            }
        }
        Some(Value::Array(items))
    }

    /// A block scalar (`|` literal or `>` folded, chomping `-`/`+`) under a collection at
    /// column `indent`.
    fn block_scalar(&mut self, header: &str, indent: usize, folded: bool) -> Option<Value> {
        let (chomp, after) = match header.as_bytes().first() {
            Some(b'-') => (Chomp::Strip, &header[1..]),
            Some(b'+') => (Chomp::Keep, &header[1..]),
            _ => (Chomp::Clip, header),
        };
        // Only a comment may follow the header; an indentation indicator is left to the parser.
        if !(after.is_empty() || after.starts_with(' ')) || !strip_comment(after)?.is_empty() {
            return None;
        }
        // The content's indentation is the first non-empty line's.
        let mut j = self.at;
        let mut lead_max = 0;
        while j < self.lines.len() && self.lines[j].text.is_empty() {
            lead_max = lead_max.max(self.lines[j].indent);
            j += 1;
        }
        let content = if j < self.lines.len() && self.lines[j].indent > indent {
            self.lines[j].indent
        } else {
            // Empty block: the next content line is not part of it. Kept blank lines, or
            // spaces on them, are left to the parser.
            if lead_max > indent || matches!(chomp, Chomp::Keep) {
                return None;
            }
            self.at = j.min(self.lines.len());
            return Some(Value::String(String::new()));
        };
        if lead_max > content {
            return None;
        }
        let mut k = self.at;
        let mut end = self.at;
        while k < self.lines.len() {
            let l = &self.lines[k];
            if !l.text.is_empty() && l.indent < content {
                break;
            }
            k += 1;
            if !l.text.is_empty() {
                end = k;
            }
        }
        let mut trailing: usize = 0;
        let mut t = end;
        while t < self.lines.len() && self.lines[t].text.is_empty() {
            if self.lines[t].indent > content {
                // Spaces past the indentation on a trailing line are content: not read here.
                return None;
            }
            trailing += 1;
            t += 1;
        }
        if t == self.lines.len() {
            // `split('\n')` yields a last, empty piece after a final newline; without one, the
            // last line has no line break, which chomping would see: left to the parser.
            if end == self.lines.len() {
                return None;
            }
            trailing -= 1;
        }
        let mut body = String::new();
        // Folding joins two lines at the content's indentation with a space (or with the empty
        // lines between them, as newlines); more-indented lines keep their breaks.
        let mut prev_normal = false;
        let mut empty = 0;
        let mut first = true;
        for l in &self.lines[self.at..end] {
            if l.text.is_empty() {
                if l.indent > content {
                    if folded {
                        return None;
                    }
                    // Literal: spaces past the indentation are content.
                    for _ in 0..empty {
                        body.push('\n');
                    }
                    empty = 0;
                    if !first {
                        body.push('\n');
                    }
                    first = false;
                    body.push_str(&" ".repeat(l.indent - content));
                    prev_normal = false;
                    continue;
                }
                empty += 1;
                continue;
            }
            let more = l.indent > content;
            if first {
                for _ in 0..empty {
                    body.push('\n');
                }
            } else if folded && prev_normal && !more {
                if empty == 0 {
                    body.push(' ');
                }
                for _ in 0..empty {
                    body.push('\n');
                }
            } else {
                for _ in 0..=empty {
                    body.push('\n');
                }
            }
            first = false;
            empty = 0;
            body.push_str(&" ".repeat(l.indent - content));
            body.push_str(l.text);
            prev_normal = !more;
        }
        self.at = end;
        match chomp {
            Chomp::Strip => {}
            Chomp::Clip => body.push('\n'),
            Chomp::Keep => {
                for _ in 0..=trailing {
                    body.push('\n');
                }
            }
        }
        Some(Value::String(body))
    }
}

enum Chomp {
    Strip,
    Clip,
    Keep,
}

/// `key: rest` or `key:` (the key plain or quoted); `None` when `text` is no such entry.
fn split_key(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let b = text.as_bytes();
    match b.first()? {
        b'"' | b'\'' => {
            let (key, used) = quoted(text)?;
            let rest = &text[used..];
            let rest = rest.strip_prefix(':')?;
            if !(rest.is_empty() || rest.starts_with(' ')) {
                return None;
            }
            (key.len() <= MAX_KEY).then_some((Cow::Owned(key), rest))
        }
        c if is_indicator(*c) => None,
        _ => {
            // A byte loop: keys are a few bytes long, too short for memchr to pay off.
            let mut i = 0;
            loop {
                let c = *b.get(i)?;
                if c == b':' && (i + 1 == b.len() || b[i + 1] == b' ') {
                    break;
                }
                if c == b'#' && i > 0 && b[i - 1] == b' ' {
                    return None;
                }
                i += 1;
            }
            let key = &text[..i];
            if key.ends_with(' ') || key.len() > MAX_KEY || key == "<<" {
                return None;
            }
            let key = if is_null(key) { "" } else { key };
            Some((Cow::Borrowed(key), &text[i + 1..]))
        }
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "~" | "null" | "Null" | "NULL")
}

/// Characters that start something other than a plain scalar.
fn is_indicator(c: u8) -> bool {
    matches!(
        c,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// `rest` without leading spaces and a trailing comment; `None` when a quoted scalar in it
/// does not close (the comment cannot be told apart then).
fn strip_comment(rest: &str) -> Option<&str> {
    let rest = rest.trim_start_matches(' ');
    if rest.starts_with(['"', '\'']) {
        let (_, used) = quoted(rest)?;
        let after = &rest[used..];
        let tail = after.trim_start_matches(' ');
        // A comment needs a space before it, even after a closing quote.
        return if tail.is_empty() || (tail.starts_with('#') && after.starts_with(' ')) {
            Some(&rest[..used])
        } else {
            None
        };
    }
    let b = rest.as_bytes();
    if b.first() == Some(&b'#') {
        return Some("");
    }
    let end = (1..b.len())
        .find(|&i| b[i] == b'#' && b[i - 1] == b' ')
        .unwrap_or(b.len());
    Some(rest[..end].trim_end_matches(' '))
}

/// A one-line scalar (no comment, no surrounding spaces) as the full parser resolves it; with
/// `discard`, only checked (`Null` stands for it).
fn inline_scalar(s: &str, discard: bool) -> Option<Value> {
    let b = s.as_bytes();
    match b[0] {
        b'"' | b'\'' => {
            let (text, used) = quoted(s)?;
            (used == s.len()).then_some(Value::String(text))
        }
        b'{' if s == "{}" => Some(Value::Object(Map::new())),
        b'[' if s == "[]" => Some(Value::Array(Vec::new())),
        b'-' | b'?' | b':' => {
            // `-5`, `-x` and `:x` are plain scalars; `- `, `? `, `: ` are not.
            if b.len() == 1 || b[1] == b' ' {
                None
            } else {
                plain(s, discard)
            }
        }
        c if is_indicator(c) => None,
        _ => plain(s, discard),
    }
}

fn plain(s: &str, discard: bool) -> Option<Value> {
    // `a: b` inside a value is a syntax error in block context.
    let b = s.as_bytes();
    if (0..b.len()).any(|i| b[i] == b':' && b.get(i + 1).is_none_or(|&c| c == b' ')) {
        return None;
    }
    // Any other plain scalar resolves (to a string at worst).
    if discard {
        return Some(Value::Null);
    }
    // Most plain scalars are words: only these first characters can make something else.
    if !matches!(
        b[0],
        b'~' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'+' | b'-' | b'.' | b'0'..=b'9'
    ) {
        return Some(Value::String(s.to_string()));
    }
    resolve(s.to_string(), TScalarStyle::Plain, None).ok()
}

/// A quoted scalar at the start of `s` on one line: its text and the bytes it took.
fn quoted(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let q = b[0];
    let mut out = String::new();
    let mut i = 1;
    let mut run = 1;
    while i < b.len() {
        let c = b[i];
        if q == b'\'' {
            if c == b'\'' {
                out.push_str(&s[run..i]);
                if b.get(i + 1) == Some(&b'\'') {
                    out.push('\'');
                    i += 2;
                    run = i;
                    continue;
                }
                return Some((out, i + 1));
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                out.push_str(&s[run..i]);
                return Some((out, i + 1));
            }
            b'\\' => {
                out.push_str(&s[run..i]);
                let e = *b.get(i + 1)?;
                let (ch, len) = match e {
                    b'\\' => ('\\', 2),
                    b'"' => ('"', 2),
                    b'/' => ('/', 2),
                    b'n' => ('\n', 2),
                    b't' => ('\t', 2),
                    b'r' => ('\r', 2),
                    b'0' => ('\0', 2),
                    b'b' => ('\u{8}', 2),
                    b'f' => ('\u{c}', 2),
                    b'u' => (hex(s.get(i + 2..i + 6)?)?, 6),
                    _ => return None,
                };
                out.push(ch);
                i += len;
                run = i;
            }
            _ => i += 1,
        }
    }
    None
}

fn hex(digits: &str) -> Option<char> {
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, 16).ok()?)
}
