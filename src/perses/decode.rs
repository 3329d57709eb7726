//! Decoding a resource file as Perses does: JSON or YAML told from the content, one object or a
//! list of them, only the first YAML document, with the line where each list item starts.

use super::report::Problem;
use serde_json::Value;

/// One object of a parsed file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedObject {
    /// Where the object starts; known for the items of a list.
    pub line: Option<usize>,
    pub value: Value,
}

/// A file as Perses would decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFile {
    /// Whether the file holds a list (its objects then carry a line).
    pub list: bool,
    /// Whether Perses decodes it as JSON (the whole content is JSON), rather than YAML.
    pub json: bool,
    pub objects: Vec<ParsedObject>,
    /// Decoding surprises that do not stop Perses (extra YAML documents, YAML in a `.json` file).
    pub warnings: Vec<Problem>,
}

/// Decodes a resource file into its objects; the error is why Perses skips the whole file.
/// Kept apart from the checks so that a content diff can reuse it.
pub fn parse_resources(path: &str, bytes: &[u8]) -> Result<Vec<Value>, Problem> {
    parse_file(path, bytes).map(|f| f.objects.into_iter().map(|o| o.value).collect())
}

/// Like `parse_resources`, with object lines and decoding warnings.
pub fn parse_file(path: &str, bytes: &[u8]) -> Result<ParsedFile, Problem> {
    parse_file_as(path, bytes, Keep::All)
}

/// How much of each object `parse_file_as` keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    /// Everything (a content diff, `inspect`).
    All,
    /// What lint checks: in YAML, the plugin specs of a dashboard's panels and queries are read
    /// for their syntax and kept as `{}` or `[]` (see `yaml_block::decode_checked`).
    Checked,
}

/// `parse_file`, keeping `keep` of each object.
pub fn parse_file_as(path: &str, bytes: &[u8], keep: Keep) -> Result<ParsedFile, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        Problem::error(Some(line), "not valid UTF-8")
    })?;
    let bom = text.starts_with('\u{FEFF}');
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    // Perses decides by trying JSON on the whole content, whatever the extension says. Go's
    // JSON decoder refuses a byte order mark, so such a file is decoded as YAML
    // (`readAndDetect`, internal/cli/file/read.go); the objects are the same either way.
    let json_err = match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            let lines = || json_item_lines(text);
            let (list, objects) = shape(value, lines)?;
            return Ok(ParsedFile {
                list,
                json: !bom,
                objects,
                warnings: Vec::new(),
            });
        }
        Err(e) => e,
    };
    let (first, next_doc) = first_yaml_document(text);
    let read = match keep {
        Keep::All => super::yaml::first_document,
        Keep::Checked => super::yaml::first_document_checked,
    };
    let doc = match read(first) {
        Ok(d) => d,
        Err(yaml_err) => {
            // Report the syntax the author meant to write.
            return Err(if path.ends_with(".json") {
                json_problem("invalid JSON", &json_err)
            } else {
                yaml_problem("invalid YAML", &yaml_err)
            });
        }
    };
    let mut warnings = Vec::new();
    if path.ends_with(".json") {
        let p = json_problem("not valid JSON", &json_err);
        warnings.push(Problem::warning(
            p.line,
            format!(
                "{}; Perses falls back to reading it as YAML, which accepts it",
                p.message
            ),
        ));
    }
    if let Some(line) = next_doc {
        warnings.push(Problem::warning(
            Some(line),
            "another YAML document starts here: Perses v0.54 reads only the first document \
             of a file and ignores the rest (use a list, or one file per document)",
        ));
    }
    let item_lines = doc.item_lines;
    let (list, objects) = shape(doc.value, || item_lines)?;
    Ok(ParsedFile {
        list,
        json: false,
        objects,
        warnings,
    })
}

pub(crate) fn json_problem(what: &str, e: &serde_json::Error) -> Problem {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = text.strip_suffix(&suffix).unwrap_or(&text);
    let line = (e.line() > 0).then_some(e.line());
    let column = if e.column() > 0 {
        format!(" (column {})", e.column())
    } else {
        String::new()
    };
    Problem::error(line, format!("{what}: {msg}{column}"))
}

pub(crate) fn yaml_problem(what: &str, e: &super::yaml::YamlError) -> Problem {
    let col = e
        .column
        .map(|c| format!(" (column {c})"))
        .unwrap_or_default();
    Problem::error(e.line, format!("{what}: {}{col}", e.message))
}

/// Turns a decoded document into objects, as Go's `[]map[string]interface{}` then
/// `map[string]interface{}` attempts do: anything else is a read error for the whole file.
pub(crate) fn shape(
    value: Value,
    item_lines: impl FnOnce() -> Vec<Option<usize>>,
) -> Result<(bool, Vec<ParsedObject>), Problem> {
    match value {
        Value::Null => Ok((false, Vec::new())),
        Value::Object(_) => Ok((false, vec![ParsedObject { line: None, value }])),
        Value::Array(items) => {
            let lines = item_lines();
            let mut objects = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let line = lines.get(i).copied().flatten();
                if !item.is_object() {
                    return Err(Problem::error(
                        line,
                        format!(
                            "item {} of the list is {}, not an object",
                            i + 1,
                            type_name(&item)
                        ),
                    ));
                }
                objects.push(ParsedObject { line, value: item });
            }
            Ok((true, objects))
        }
        other => Err(Problem::error(
            None,
            format!(
                "expected an object or a list of objects, found {}",
                type_name(&other)
            ),
        )),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Start lines of the items of a top-level JSON array (serde_json keeps no positions).
/// Only called on text that parsed as JSON, so strings and nesting are well-formed.
pub(crate) fn json_item_lines(text: &str) -> Vec<Option<usize>> {
    let mut lines = Vec::new();
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped, mut expecting) = (false, false, false);
    for b in text.bytes() {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if depth == 1 && expecting && b != b']' {
            lines.push(Some(line));
            expecting = false;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    expecting = true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expecting = true,
            _ => {}
        }
    }
    lines
}

/// The first YAML document of `text` (a prefix, so line numbers stay right) and the line of the
/// marker that starts a further document with content, if any. A line starting with `---` or
/// `...` at column 0 is always a document marker in YAML, so a line scan is exact.
pub(crate) fn first_yaml_document(text: &str) -> (&str, Option<usize>) {
    // Most files have no marker at all: nothing to scan for.
    if !text.starts_with("---")
        && !text.starts_with("...")
        && memchr::memmem::find(text.as_bytes(), b"\n---").is_none()
        && memchr::memmem::find(text.as_bytes(), b"\n...").is_none()
    {
        return (text, None);
    }
    let is_marker = |l: &str, m: &str| {
        l.strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    };
    let is_content = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
    };
    let mut started = false;
    let mut end = None;
    let mut offset = 0;
    let mut marker_line = None;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let l = raw.trim_end_matches(['\n', '\r']);
        let line_no = i + 1;
        match end {
            None => {
                if is_marker(l, "---") {
                    if started {
                        end = Some(offset);
                        marker_line = Some(line_no);
                    } else {
                        started = true;
                    }
                } else if is_marker(l, "...") {
                    if started {
                        end = Some(offset + raw.len());
                    }
                } else if is_content(l) {
                    started = true;
                }
            }
            Some(_) => {
                if is_marker(l, "---") {
                    marker_line = Some(line_no);
                    // Content on the marker line itself (`--- {a: 1}`) is a document too.
                    if is_content(&l[3..]) {
                        return (&text[..end.unwrap_or(offset)], marker_line);
                    }
                } else if is_marker(l, "...") {
                    marker_line = None;
                } else if is_content(l) {
                    return (
                        &text[..end.unwrap_or(offset)],
                        marker_line.or(Some(line_no)),
                    );
                }
            }
        }
        offset += raw.len();
    }
    (&text[..end.unwrap_or(text.len())], None)
}
