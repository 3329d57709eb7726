//! Typed access to a parsed TOML document that turns every problem into a positioned
//! `Diagnostic` and keeps going, so that one run reports all of a file's mistakes.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Diagnostic;
use super::suggest::closest;
use super::validate::{self, Check};

pub(super) type Span = Range<usize>;

/// A string value with where it came from, for checks made after reading it (duplicates).
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub value: String,
    pub span: Span,
    pub key: String,
}

pub(super) struct Doc<'a> {
    file: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
    diagnostics: Vec<Diagnostic>,
    /// Key paths that an unknown key was taken for (`artifact.mount_path` for `mout_path`):
    /// their absence is the same mistake, already reported once.
    suggested: Vec<String>,
}

impl<'a> Doc<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Doc {
            file,
            text,
            line_starts,
            diagnostics: Vec::new(),
            suggested: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        // A span never splits a character, but be safe against one that does.
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, column + 1)
    }

    pub fn error(&mut self, at: &Span, key: impl Into<String>, message: impl Into<String>) {
        let (line, column) = self.position(at.start);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        });
    }

    pub fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }

    /// The diagnostics in file order (tables are visited in key order, not file order).
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut d = self.diagnostics;
        d.sort_by_key(|d| (d.line, d.column));
        d
    }

    /// The document's root table; `None` after recording every syntax error the parser found.
    pub fn parse(&mut self) -> Option<DeTable<'a>> {
        let (root, errors) = DeTable::parse_recoverable(self.text);
        if errors.is_empty() {
            return Some(root.into_inner());
        }
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            self.error(
                &span,
                "",
                format!("invalid TOML: {}", e.message().trim_end()),
            );
        }
        None
    }

    /// Refuses keys outside `known`, naming the closest known one.
    pub fn check_keys(&mut self, table: &DeTable<'_>, prefix: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.get_ref().as_ref()) {
                let hint = match closest(key.get_ref(), known) {
                    Some(k) => {
                        self.suggested.push(join(prefix, k));
                        format!("; did you mean `{k}`?")
                    }
                    None => format!(" (expected one of: {})", known.join(", ")),
                };
                let path = join(prefix, key.get_ref());
                let message = format!("unknown key `{}`{hint}", display_key(key.get_ref()));
                self.error(&key.span(), path, message);
            }
        }
    }

    pub fn type_error(&mut self, value: &Spanned<DeValue<'_>>, key: &str, expected: &str) {
        let got = value.get_ref().type_str();
        self.error(
            &value.span(),
            key,
            format!("expected {expected}, got {got}"),
        );
    }

    /// A table-valued key, if present and a table.
    pub fn table<'t, 'i>(
        &mut self,
        parent: &'t DeTable<'i>,
        prefix: &str,
        key: &str,
    ) -> Option<(&'t DeTable<'i>, Span)> {
        let value = parent.get(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((t, value.span())),
            _ => {
                self.type_error(value, &join(prefix, key), "a table");
                None
            }
        }
    }

    /// A string-valued key, if present, a string, and free of control characters.
    pub fn string(&mut self, table: &DeTable<'_>, prefix: &str, key: &str) -> Option<Field> {
        let value = table.get(key)?;
        self.string_value(value, join(prefix, key))
    }

    pub fn string_value(&mut self, value: &Spanned<DeValue<'_>>, key: String) -> Option<Field> {
        let Some(s) = value.get_ref().as_str() else {
            self.type_error(value, &key, "a string");
            return None;
        };
        if let Err(e) = validate::no_control(s) {
            self.error(&value.span(), key, e);
            return None;
        }
        Some(Field {
            value: s.to_string(),
            span: value.span(),
            key,
        })
    }

    /// A required key that is missing, unless a misspelling of it was reported already.
    pub fn missing(&mut self, at: &Span, path: String, message: impl Into<String>) {
        if !self.suggested.contains(&path) {
            self.error(at, path, message);
        }
    }

    /// Like `string`, but records a diagnostic at the table when the key is missing.
    pub fn required_string(
        &mut self,
        table: &DeTable<'_>,
        table_span: &Span,
        prefix: &str,
        key: &str,
    ) -> Option<Field> {
        if table.get(key).is_none() {
            let message = format!("missing required key `{key}`");
            self.missing(table_span, join(prefix, key), message);
            return None;
        }
        self.string(table, prefix, key)
    }

    /// An array of strings. Each item is read on its own, so that one bad item does not hide
    /// the others: `None` stands for an item already reported.
    pub fn string_array(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        key: &str,
    ) -> Option<Vec<Option<Field>>> {
        let value = table.get(key)?;
        let path = join(prefix, key);
        let Some(items) = value.get_ref().as_array() else {
            self.type_error(value, &path, "an array of strings");
            return None;
        };
        let fields = (items.iter().enumerate())
            .map(|(i, item)| self.string_value(item, format!("{path}[{i}]")))
            .collect();
        Some(fields)
    }

    /// Applies a grammar check, quoting the offending value in the message.
    pub fn check(&mut self, field: &Field, check: impl FnOnce(&str) -> Check) -> bool {
        self.convert(field, check).is_some()
    }

    /// Parses a value with `convert`, recording its complaint.
    pub fn convert<T>(
        &mut self,
        field: &Field,
        convert: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match convert(&field.value) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = format!("{e} (got {})", quoted(&field.value));
                self.error(&field.span, field.key.clone(), message);
                None
            }
        }
    }
}

/// A value quoted for a message, cut when long: a 10 MB value must not make a 10 MB error.
fn quoted(v: &str) -> String {
    const MAX: usize = 120;
    match v.char_indices().nth(MAX) {
        None => format!("{v:?}"),
        Some((i, _)) => format!("{:?}... ({} characters)", &v[..i], v.chars().count()),
    }
}

/// `prefix.key`, or `key` at the root.
pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        display_key(key)
    } else {
        format!("{prefix}.{}", display_key(key))
    }
}

/// Keys that are not bare TOML keys are quoted, so that the path stays unambiguous.
fn display_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}
