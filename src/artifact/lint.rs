//! Offline check of Perses resource files: which files Perses v0.54's provisioning would load.
//!
//! Perses reads its provisioning folders on a timer and only logs what it refuses, so a broken
//! artifact fails silently in production. This module replays the provisioning rules on a list
//! of (relative path, bytes), so the same core works on a directory (`read_tree`) and, later, on
//! the layers of an image read from a registry.
//!
//! Rules, from perses/perses v0.54 (`internal/cli/file`, `internal/api/provisioning`):
//! - files ending in `.json`, `.yaml` or `.yml` (case-sensitive) are read, anything else ignored;
//! - a file holds one object or a list of them; JSON or YAML is told from the content, not the
//!   extension, and only the first YAML document counts;
//! - one object that fails the checks below makes Perses skip the whole file.
//!
//! What is not replayed: plugin schema validation (CUE), which Perses' services run when they
//! create a resource. A file that passes here can still be refused there, one resource at a time.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// Version of the JSON output (`Report::to_json`); bumped on incompatible changes only.
pub const FORMAT_VERSION: &str = "1.0";

/// Longest `metadata.name` Perses accepts.
pub const MAX_NAME_LEN: usize = 75;

/// Kinds the provisioning service creates; everything else is refused.
pub const PROVISIONABLE_KINDS: [&str; 14] = [
    "Dashboard",
    "Datasource",
    "Folder",
    "GlobalDatasource",
    "GlobalRole",
    "GlobalRoleBinding",
    "GlobalSecret",
    "GlobalVariable",
    "Project",
    "Role",
    "RoleBinding",
    "Secret",
    "User",
    "Variable",
];

/// Kinds that live in a project: they need `metadata.project` naming a project that exists.
pub const PROJECT_SCOPED_KINDS: [&str; 7] = [
    "Dashboard",
    "Datasource",
    "Folder",
    "Role",
    "RoleBinding",
    "Secret",
    "Variable",
];

/// Kinds Perses refuses with a missing, null or empty `spec`.
pub const SPEC_REQUIRED_KINDS: [&str; 3] = ["Dashboard", "Datasource", "GlobalDatasource"];

/// File name endings Perses reads; compared case-sensitively, as Go's `filepath.Ext` does.
pub const RESOURCE_EXTENSIONS: [&str; 3] = [".json", ".yaml", ".yml"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Perses refuses something: the file (or a resource) is not loaded as written.
    Error,
    /// Perses loads the file, but probably not as its author meant.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// 1-based; `None` when the problem concerns the whole file or a single top-level object.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn error(line: Option<usize>, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            line,
            message: message.into(),
        }
    }

    pub fn warning(line: Option<usize>, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            line,
            message: message.into(),
        }
    }
}

/// What Perses identifies a resource by: two files with the same key overwrite each other.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    pub kind: String,
    /// `None` for global kinds.
    pub project: Option<String>,
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.project {
            Some(p) => write!(f, "{} {}/{}", self.kind, p, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One object of a file, as far as it could be identified (string `kind` and `metadata.name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: String,
    pub project: Option<String>,
    pub name: String,
    /// The file, relative to the linted root, `/`-separated.
    pub path: String,
    /// Where the object starts, for objects of a list.
    pub line: Option<usize>,
    pub value: Value,
}

impl Resource {
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            kind: self.kind.clone(),
            project: self.project.clone(),
            name: self.name.clone(),
        }
    }
}

/// The verdict on one resource file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// Relative to the linted root, `/`-separated.
    pub path: String,
    /// Whether Perses would load the file; false means it skips every object in it.
    pub accepted: bool,
    /// Every identifiable object, whether or not Perses loads it.
    pub resources: Vec<Resource>,
    pub problems: Vec<Problem>,
}

impl FileReport {
    pub fn status(&self) -> &'static str {
        if self.accepted { "accepted" } else { "skipped" }
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// A warning about a path that is not linted (a symbolic link, a `.JSON` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub path: String,
    pub message: String,
}

/// The outcome of a lint: one entry per resource file, in the order Perses reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// What was linted, as the caller names it (a directory, an image reference); for output only.
    pub root: String,
    pub files: Vec<FileReport>,
    /// Files Perses does not read (not `.json`, `.yaml` or `.yml`).
    pub ignored: Vec<String>,
    /// Warnings about paths that are not resource files.
    pub warnings: Vec<Note>,
}

/// Counts for the summary line and the `summary` object of the JSON output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub accepted: usize,
    pub skipped: usize,
    pub ignored: usize,
    /// Resources in accepted files: what Perses would load.
    pub resources: usize,
    pub kinds: BTreeMap<String, usize>,
    pub errors: usize,
    pub warnings: usize,
}

/// Why a tree could not be read at all (as opposed to problems in its files).
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid sub-path {sub_path:?}: {reason}")]
    BadSubPath {
        sub_path: String,
        reason: &'static str,
    },
    #[error("sub-path {sub_path:?} does not exist in {root}")]
    SubPathNotFound { sub_path: String, root: String },
}

/// The files of a directory, plus what was not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    /// Every regular file, relative and `/`-separated, in Perses' reading order.
    pub files: Vec<(String, Vec<u8>)>,
    pub warnings: Vec<Note>,
}

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
    pub objects: Vec<ParsedObject>,
    /// Decoding surprises that do not stop Perses (extra YAML documents, YAML in a `.json` file).
    pub warnings: Vec<Problem>,
}

/// Whether Perses reads a file with this name.
pub fn is_resource_file(path: &str) -> bool {
    RESOURCE_EXTENSIONS.iter().any(|ext| path.ends_with(ext))
}

/// Orders paths as Go's `filepath.Walk` visits them (name by name), so that "the last file read"
/// in a message is the one Perses reads last: `a/b.json` comes before `a.json`.
pub fn cmp_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The problem with a `metadata.name`, if any.
pub fn check_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("metadata.name is empty".into());
    }
    let len = name.chars().count();
    let bad: BTreeSet<char> = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .collect();
    let mut parts = Vec::new();
    if len > MAX_NAME_LEN {
        parts.push(format!(
            "is {len} characters long; Perses allows at most {MAX_NAME_LEN}"
        ));
    }
    if !bad.is_empty() {
        let listed: Vec<String> = bad.iter().map(|c| format!("{c:?}")).collect();
        parts.push(format!(
            "contains {}; only letters, digits, '_', '.' and '-' are allowed",
            listed.join(", ")
        ));
    }
    if parts.is_empty() {
        None
    } else {
        Some(format!("metadata.name {name:?} {}", parts.join(", and ")))
    }
}

/// Decodes a resource file into its objects; the error is why Perses skips the whole file.
/// Kept apart from the checks so that a content diff can reuse it.
pub fn parse_resources(path: &str, bytes: &[u8]) -> Result<Vec<Value>, Problem> {
    parse_file(path, bytes).map(|f| f.objects.into_iter().map(|o| o.value).collect())
}

/// Like `parse_resources`, with object lines and decoding warnings.
pub fn parse_file(path: &str, bytes: &[u8]) -> Result<ParsedFile, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        Problem::error(Some(line), "not valid UTF-8")
    })?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    // Perses decides by trying JSON on the whole content, whatever the extension says.
    let json_err = match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            let lines = || json_item_lines(text);
            let (list, objects) = shape(value, lines)?;
            return Ok(ParsedFile {
                list,
                objects,
                warnings: Vec::new(),
            });
        }
        Err(e) => e,
    };
    let (first, next_doc) = first_yaml_document(text);
    let value = match serde_saphyr::from_str::<Value>(first) {
        Ok(v) => v,
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
    let lines = || yaml_item_lines(first);
    let (list, objects) = shape(value, lines)?;
    Ok(ParsedFile {
        list,
        objects,
        warnings,
    })
}

fn json_problem(what: &str, e: &serde_json::Error) -> Problem {
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

fn yaml_problem(what: &str, e: &serde_saphyr::Error) -> Problem {
    let formatter = serde_saphyr::UserMessageFormatter;
    let text = e.render_with_options(serde_saphyr::render_options! {
        formatter: &formatter,
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let (line, column) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((0, 0));
    let suffix = format!(" at line {line}, column {column}");
    let msg = text.strip_suffix(&suffix).unwrap_or(&text);
    let col = if column > 0 {
        format!(" (column {column})")
    } else {
        String::new()
    };
    Problem::error((line > 0).then_some(line), format!("{what}: {msg}{col}"))
}

/// Turns a decoded document into objects, as Go's `[]map[string]interface{}` then
/// `map[string]interface{}` attempts do: anything else is a read error for the whole file.
fn shape(
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

fn type_name(v: &Value) -> &'static str {
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
fn json_item_lines(text: &str) -> Vec<Option<usize>> {
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

fn yaml_item_lines(first_doc: &str) -> Vec<Option<usize>> {
    use serde::de::IgnoredAny;
    serde_saphyr::from_str::<Vec<serde_saphyr::Spanned<IgnoredAny>>>(first_doc)
        .map(|items| {
            items
                .iter()
                .map(|s| {
                    let l = s.referenced.line() as usize;
                    (l > 0).then_some(l)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first YAML document of `text` (a prefix, so line numbers stay right) and the line of the
/// marker that starts a further document with content, if any. A line starting with `---` or
/// `...` at column 0 is always a document marker in YAML, so a line scan is exact.
fn first_yaml_document(text: &str) -> (&str, Option<usize>) {
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

/// What one object contributes before the tree-wide checks.
struct Checked {
    resource: Option<Resource>,
    /// Whether Perses would decode this object (its file is skipped otherwise).
    ok: bool,
    /// The project a project-scoped object needs, when it names one.
    needs_project: Option<String>,
    /// The project a valid Project object defines.
    defines_project: Option<String>,
    /// Prefix that names the object in messages of a multi-object file.
    label: String,
}

fn check_object(
    path: &str,
    obj: &ParsedObject,
    index: usize,
    problems: &mut Vec<Problem>,
) -> Checked {
    let line = obj.line;
    let empty = Map::new();
    let map = obj.value.as_object().unwrap_or(&empty);
    let mut ok = true;
    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    let kind = match map.get("kind") {
        None => {
            errors.push("no `kind` field: Perses cannot tell what this object is".into());
            None
        }
        Some(Value::String(k)) => Some(k.clone()),
        Some(other) => {
            errors.push(format!(
                "`kind` must be a string, found {}",
                type_name(other)
            ));
            None
        }
    };
    let provisionable = kind
        .as_deref()
        .is_some_and(|k| PROVISIONABLE_KINDS.contains(&k));
    if let Some(k) = kind.as_deref().filter(|_| !provisionable) {
        errors.push(kind_message(k));
    }

    let metadata = match map.get("metadata") {
        Some(Value::Object(m)) => m,
        None => {
            errors.push("no `metadata` object".into());
            &empty
        }
        Some(other) => {
            errors.push(format!(
                "`metadata` must be an object, found {}",
                type_name(other)
            ));
            &empty
        }
    };
    let name = match metadata.get("name") {
        Some(Value::String(n)) => {
            if let Some(m) = check_name(n) {
                errors.push(m);
            }
            Some(n.clone())
        }
        None if map.contains_key("metadata") => {
            errors.push("metadata.name is missing".into());
            None
        }
        None => None,
        Some(other) => {
            errors.push(format!(
                "metadata.name must be a string, found {}",
                type_name(other)
            ));
            None
        }
    };

    let scoped = kind
        .as_deref()
        .is_some_and(|k| PROJECT_SCOPED_KINDS.contains(&k));
    let raw_project = metadata.get("project");
    let mut needs_project = None;
    let project = if scoped {
        let k = kind.as_deref().unwrap_or_default();
        match raw_project {
            Some(Value::String(p)) if !p.is_empty() => {
                needs_project = Some(p.clone());
                Some(p.clone())
            }
            Some(Value::String(p)) => {
                errors.push(format!(
                    "metadata.project is empty: a {k} must belong to a project"
                ));
                Some(p.clone())
            }
            None | Some(Value::Null) => {
                errors.push(format!(
                    "metadata.project is missing: a {k} must belong to a project"
                ));
                None
            }
            Some(other) => {
                errors.push(format!(
                    "metadata.project must be a string, found {}",
                    type_name(other)
                ));
                None
            }
        }
    } else {
        let named = raw_project
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        if let (true, Some(k), Some(p)) = (provisionable, kind.as_deref(), named) {
            warnings.push(format!(
                "metadata.project {p:?} is ignored: {k} is not a project resource"
            ));
        }
        // Unknown kinds keep their project in the listing; it helps to recognise them.
        named.filter(|_| !provisionable).map(str::to_string)
    };

    if let Some(k) = kind.as_deref().filter(|k| SPEC_REQUIRED_KINDS.contains(k)) {
        match map.get("spec") {
            None => errors.push(format!("spec is missing: Perses refuses a {k} without one")),
            Some(Value::Null) => {
                errors.push(format!("spec is null: Perses refuses a {k} without one"))
            }
            Some(Value::Object(s)) if s.is_empty() => {
                errors.push(format!("spec is empty: Perses refuses a {k} without one"))
            }
            Some(Value::Object(_)) => {}
            Some(other) => errors.push(format!(
                "spec must be an object, found {}",
                type_name(other)
            )),
        }
    }

    let resource = match (&kind, &name) {
        (Some(k), Some(n)) => Some(Resource {
            kind: k.clone(),
            project: project.filter(|p| !p.is_empty()),
            name: n.clone(),
            path: path.to_string(),
            line,
            value: obj.value.clone(),
        }),
        _ => None,
    };
    let label = match &resource {
        Some(r) if !r.name.is_empty() => format!("{}: ", r.key()),
        _ => format!("object {}: ", index + 1),
    };
    if !errors.is_empty() {
        ok = false;
    }
    for e in errors {
        problems.push(Problem::error(line, format!("{label}{e}")));
    }
    for w in warnings {
        problems.push(Problem::warning(line, format!("{label}{w}")));
    }
    let defines_project = match (&resource, ok) {
        (Some(r), true) if r.kind == "Project" => Some(r.name.clone()),
        _ => None,
    };
    Checked {
        resource,
        ok,
        needs_project,
        defines_project,
        label,
    }
}

fn kind_message(kind: &str) -> String {
    if kind == "EphemeralDashboard" {
        return "kind EphemeralDashboard cannot be provisioned: Perses refuses it (create it \
                through the API instead)"
            .into();
    }
    if let Some(k) = PROVISIONABLE_KINDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(kind))
    {
        return format!("unknown kind {kind:?}: kinds are case-sensitive, did you mean {k}?");
    }
    format!(
        "kind {kind:?} cannot be provisioned; Perses provisions {}",
        PROVISIONABLE_KINDS.join(", ")
    )
}

/// Per-file state while the tree-wide checks run.
struct Pending {
    report: FileReport,
    /// Perses fails to decode the file, whatever the rest of the tree holds.
    broken: bool,
    /// (project, line, label) of each project reference.
    needs: Vec<(String, Option<usize>, String)>,
    defines: Vec<String>,
}

/// Lints a whole tree of files (relative `/`-separated paths; non-resource files are counted as
/// ignored). `known_projects` are projects that already exist on the Perses server.
pub fn lint_files(files: &[(String, Vec<u8>)], known_projects: &[String]) -> Report {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| cmp_paths(&a.0, &b.0));

    let mut report = Report::default();
    let mut pending: Vec<Pending> = Vec::new();
    for (path, bytes) in sorted {
        if !is_resource_file(path) {
            let lower = path.to_ascii_lowercase();
            if RESOURCE_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
                report.warnings.push(Note {
                    path: path.clone(),
                    message: "ignored: Perses only reads names ending in lowercase .json, \
                              .yaml or .yml"
                        .into(),
                });
            }
            report.ignored.push(path.clone());
            continue;
        }
        pending.push(check_file(path, bytes));
    }

    // A project exists if the server has it or a Project in a loaded file defines it. Skipping a
    // file can remove a project and so skip more files: iterate until nothing changes.
    let known: BTreeSet<&str> = known_projects.iter().map(String::as_str).collect();
    let mut skipped: Vec<bool> = pending.iter().map(|p| p.broken).collect();
    let available = loop {
        let available: BTreeSet<&str> = pending
            .iter()
            .zip(&skipped)
            .filter(|(_, s)| !**s)
            .flat_map(|(p, _)| p.defines.iter().map(String::as_str))
            .chain(known.iter().copied())
            .collect();
        let next: Vec<bool> = pending
            .iter()
            .map(|p| {
                p.broken
                    || p.needs
                        .iter()
                        .any(|(n, _, _)| !available.contains(n.as_str()))
            })
            .collect();
        if next == skipped {
            break available;
        }
        skipped = next;
    };
    let defined_in: BTreeMap<&str, Vec<&str>> = pending.iter().fold(BTreeMap::new(), |mut m, p| {
        for d in &p.defines {
            m.entry(d.as_str())
                .or_insert_with(Vec::new)
                .push(p.report.path.as_str());
        }
        m
    });
    let mut missing: Vec<(usize, Problem)> = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        for (project, line, label) in &p.needs {
            if available.contains(project.as_str()) {
                continue;
            }
            let message = match defined_in.get(project.as_str()) {
                Some(files) => format!(
                    "{label}project {project:?} is defined in {}, which Perses skips; fix that \
                     file (or pass --known-project {project} if the project already exists)",
                    files.join(", ")
                ),
                None => format!(
                    "{label}project {project:?} does not exist: add a Project named {project} \
                     to the tree, or pass --known-project {project} if it already exists on the \
                     server"
                ),
            };
            missing.push((i, Problem::error(*line, message)));
        }
    }
    for (i, problem) in missing {
        pending[i].report.problems.push(problem);
    }
    for (p, s) in pending.iter_mut().zip(&skipped) {
        p.report.accepted = !*s;
    }

    report_duplicates(&mut pending);
    report.files = pending.into_iter().map(|p| p.report).collect();
    report
}

fn check_file(path: &str, bytes: &[u8]) -> Pending {
    let mut pending = Pending {
        report: FileReport {
            path: path.to_string(),
            accepted: true,
            resources: Vec::new(),
            problems: Vec::new(),
        },
        broken: false,
        needs: Vec::new(),
        defines: Vec::new(),
    };
    let parsed = match parse_file(path, bytes) {
        Ok(p) => p,
        Err(problem) => {
            pending.report.problems.push(problem);
            pending.broken = true;
            return pending;
        }
    };
    pending.report.problems.extend(parsed.warnings);
    if parsed.objects.is_empty() {
        pending.report.problems.push(Problem::error(
            None,
            "the file holds no object: Perses refuses an empty file",
        ));
        pending.broken = true;
        return pending;
    }
    for (i, obj) in parsed.objects.iter().enumerate() {
        let checked = check_object(path, obj, i, &mut pending.report.problems);
        if !checked.ok {
            pending.broken = true;
        }
        if let Some(p) = checked.needs_project {
            pending.needs.push((p, obj.line, checked.label));
        }
        pending.defines.extend(checked.defines_project);
        pending.report.resources.extend(checked.resource);
    }
    pending
}

/// Perses creates the first definition of a key and updates it with each later one, so the
/// file read last wins (and the resource changes back and forth if the files differ). Only
/// files Perses loads can clash.
fn report_duplicates(pending: &mut [Pending]) {
    let mut seen: BTreeMap<ResourceKey, Vec<(usize, Option<usize>)>> = BTreeMap::new();
    for (i, p) in pending.iter().enumerate() {
        if !p.report.accepted {
            continue;
        }
        for r in &p.report.resources {
            seen.entry(r.key()).or_default().push((i, r.line));
        }
    }
    for (key, places) in seen {
        if places.len() < 2 {
            continue;
        }
        let files: BTreeSet<usize> = places.iter().map(|(f, _)| *f).collect();
        if files.len() == 1 {
            let lines: Vec<String> = places
                .iter()
                .filter_map(|(_, l)| l.map(|l| l.to_string()))
                .collect();
            let at = if lines.is_empty() {
                String::new()
            } else {
                format!(" (lines {})", lines.join(", "))
            };
            let (f, line) = places[places.len() - 1];
            pending[f].report.problems.push(Problem::warning(
                line,
                format!(
                    "{key} is defined {} times in this file{at}; the last one wins",
                    places.len()
                ),
            ));
            continue;
        }
        let last = pending[*files.iter().next_back().unwrap_or(&0)]
            .report
            .path
            .clone();
        let mut firsts: HashMap<usize, Option<usize>> = HashMap::new();
        for (f, line) in &places {
            firsts.entry(*f).or_insert(*line);
        }
        for &f in &files {
            let others: Vec<&str> = files
                .iter()
                .filter(|o| **o != f)
                .map(|o| pending[*o].report.path.as_str())
                .collect();
            pending[f].report.problems.push(Problem::error(
                firsts[&f],
                format!(
                    "{key} is also defined in {}: Perses loads both files and the last one \
                     read ({last}) overwrites the others",
                    others.join(", ")
                ),
            ));
        }
    }
}

/// `lint_files` on a tree read by `read_tree`, keeping its warnings.
pub fn lint_tree(tree: &Tree, known_projects: &[String]) -> Report {
    let mut report = lint_files(&tree.files, known_projects);
    report.warnings.extend(tree.warnings.iter().cloned());
    report.warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    report
}

impl Report {
    /// Whether anything would be refused, or loaded in a way the author did not mean.
    pub fn has_errors(&self) -> bool {
        self.files.iter().any(FileReport::has_errors)
    }

    /// Resources Perses would load, in reading order.
    pub fn loaded(&self) -> impl Iterator<Item = &Resource> {
        self.files
            .iter()
            .filter(|f| f.accepted)
            .flat_map(|f| f.resources.iter())
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            files: self.files.len(),
            accepted: self.files.iter().filter(|f| f.accepted).count(),
            ignored: self.ignored.len(),
            warnings: self.warnings.len(),
            ..Summary::default()
        };
        s.skipped = s.files - s.accepted;
        for r in self.loaded() {
            s.resources += 1;
            *s.kinds.entry(r.kind.clone()).or_default() += 1;
        }
        for p in self.files.iter().flat_map(|f| &f.problems) {
            match p.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
            }
        }
        s
    }

    /// The stable JSON form (`format_version` 1.0), as a value (keys sorted).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.json_doc()).unwrap_or(Value::Null)
    }

    /// The stable JSON form, pretty-printed with its keys in documentation order.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.json_doc()).unwrap_or_default() + "\n"
    }

    fn json_doc(&self) -> out::Doc<'_> {
        let s = self.summary();
        out::Doc {
            format_version: FORMAT_VERSION,
            root: &self.root,
            files: self
                .files
                .iter()
                .map(|f| out::File {
                    path: &f.path,
                    status: f.status(),
                    resources: f
                        .resources
                        .iter()
                        .map(|r| out::Resource {
                            kind: &r.kind,
                            project: r.project.as_deref(),
                            name: &r.name,
                        })
                        .collect(),
                    problems: f
                        .problems
                        .iter()
                        .map(|p| out::Problem {
                            severity: p.severity.as_str(),
                            line: p.line,
                            message: &p.message,
                        })
                        .collect(),
                })
                .collect(),
            ignored: &self.ignored,
            warnings: self
                .warnings
                .iter()
                .map(|n| out::Note {
                    path: &n.path,
                    message: &n.message,
                })
                .collect(),
            summary: out::Summary {
                files: s.files,
                accepted: s.accepted,
                skipped: s.skipped,
                ignored: s.ignored,
                resources: s.resources,
                kinds: s.kinds,
                errors: s.errors,
                warnings: s.warnings,
            },
        }
    }

    /// One line per problem (`path:line: severity: message`), a note per skipped file, then the
    /// summary line.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for n in &self.warnings {
            out.push_str(&format!("{}: warning: {}\n", n.path, n.message));
        }
        for f in &self.files {
            for p in &f.problems {
                match p.line {
                    Some(l) => out.push_str(&format!("{}:{l}: ", f.path)),
                    None => out.push_str(&format!("{}: ", f.path)),
                }
                out.push_str(&format!("{}: {}\n", p.severity.as_str(), p.message));
            }
            if !f.accepted {
                let lost = match f.resources.len() {
                    0 => String::new(),
                    n => format!(" ({} not loaded)", plural(n, "resource")),
                };
                out.push_str(&format!(
                    "{}: note: Perses skips this whole file{lost}\n",
                    f.path
                ));
            }
        }
        let s = self.summary();
        let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let kinds = if kinds.is_empty() {
            String::new()
        } else {
            format!(": {}", kinds.join(", "))
        };
        out.push_str(&format!(
            "{}: {} accepted, {} skipped ({}{kinds}); {}, {}; {} ignored\n",
            plural(s.files, "file"),
            s.accepted,
            s.skipped,
            plural(s.resources, "resource"),
            plural(s.errors, "error"),
            plural(s.warnings, "warning"),
            plural(s.ignored, "other file"),
        ));
        out
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A `--sub-path` as Kubernetes takes it: relative, no `..`; `.` and empty parts dropped.
/// The empty string means the root itself.
pub fn normalize_sub_path(sub_path: &str) -> Result<String, LintError> {
    let bad = |reason| LintError::BadSubPath {
        sub_path: sub_path.to_string(),
        reason,
    };
    if sub_path.starts_with('/') || sub_path.starts_with('\\') {
        return Err(bad("it must be relative"));
    }
    let mut parts = Vec::new();
    for part in sub_path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it must not contain '..'")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The files under `sub_path` of an in-memory tree, with paths relative to it: what a
/// container sees when the volume is mounted with that `subPath`.
pub fn select_sub_path(
    files: Vec<(String, Vec<u8>)>,
    sub_path: &str,
    root: &str,
) -> Result<Vec<(String, Vec<u8>)>, LintError> {
    let norm = normalize_sub_path(sub_path)?;
    if norm.is_empty() {
        return Ok(files);
    }
    let prefix = format!("{norm}/");
    let selected: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter_map(|(p, b)| p.strip_prefix(&prefix).map(|rest| (rest.to_string(), b)))
        .collect();
    if selected.is_empty() {
        return Err(LintError::SubPathNotFound {
            sub_path: sub_path.to_string(),
            root: root.to_string(),
        });
    }
    Ok(selected)
}

/// Reads every regular file under `dir`, recursively. Symbolic links are not followed (a link
/// in an image volume may point outside it); each one is reported as a warning instead.
pub fn read_tree(dir: &Path) -> Result<Tree, LintError> {
    let meta = std::fs::metadata(dir).map_err(|e| not_found_or_io(dir, e))?;
    if !meta.is_dir() {
        return Err(LintError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut tree = Tree::default();
    walk(dir, "", &mut tree)?;
    tree.files.sort_by(|a, b| cmp_paths(&a.0, &b.0));
    tree.warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    Ok(tree)
}

/// `read_tree` of `dir/sub_path`; an error if the sub-path does not exist, as the container
/// runtime would fail to start the pod.
pub fn read_tree_at(dir: &Path, sub_path: Option<&str>) -> Result<Tree, LintError> {
    let Some(sub) = sub_path else {
        return read_tree(dir);
    };
    let norm = normalize_sub_path(sub)?;
    std::fs::metadata(dir).map_err(|e| not_found_or_io(dir, e))?;
    let target = norm.split('/').fold(dir.to_path_buf(), |p, c| p.join(c));
    match std::fs::metadata(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LintError::SubPathNotFound {
            sub_path: sub.to_string(),
            root: dir.display().to_string(),
        }),
        Err(e) => Err(LintError::Io {
            path: target,
            source: e,
        }),
        Ok(_) => read_tree(&target),
    }
}

fn not_found_or_io(path: &Path, e: std::io::Error) -> LintError {
    if e.kind() == std::io::ErrorKind::NotFound {
        LintError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        LintError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

fn walk(dir: &Path, prefix: &str, tree: &mut Tree) -> Result<(), LintError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LintError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let file_type = entry.file_type().map_err(io(&path))?;
        if file_type.is_symlink() {
            tree.warnings.push(Note {
                path: rel,
                message: "symbolic link not followed, so not linted (Perses reads a linked \
                          file, but does not enter a linked folder)"
                    .into(),
            });
        } else if file_type.is_dir() {
            walk(&path, &rel, tree)?;
        } else if file_type.is_file() {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            tree.files.push((rel, bytes));
        } else {
            tree.warnings.push(Note {
                path: rel,
                message: "not a regular file: skipped".into(),
            });
        }
    }
    Ok(())
}

/// The JSON document; field order is the order of the output.
mod out {
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    pub struct Doc<'a> {
        pub format_version: &'static str,
        pub root: &'a str,
        pub files: Vec<File<'a>>,
        pub ignored: &'a [String],
        pub warnings: Vec<Note<'a>>,
        pub summary: Summary,
    }

    #[derive(Serialize)]
    pub struct File<'a> {
        pub path: &'a str,
        pub status: &'static str,
        pub resources: Vec<Resource<'a>>,
        pub problems: Vec<Problem<'a>>,
    }

    #[derive(Serialize)]
    pub struct Resource<'a> {
        pub kind: &'a str,
        pub project: Option<&'a str>,
        pub name: &'a str,
    }

    #[derive(Serialize)]
    pub struct Problem<'a> {
        pub severity: &'static str,
        pub line: Option<usize>,
        pub message: &'a str,
    }

    #[derive(Serialize)]
    pub struct Note<'a> {
        pub path: &'a str,
        pub message: &'a str,
    }

    #[derive(Serialize)]
    pub struct Summary {
        pub files: usize,
        pub accepted: usize,
        pub skipped: usize,
        pub ignored: usize,
        pub resources: usize,
        pub kinds: BTreeMap<String, usize>,
        pub errors: usize,
        pub warnings: usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn files(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect()
    }

    fn lint(list: &[(&str, &str)], known: &[&str]) -> Report {
        let known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
        lint_files(&files(list), &known)
    }

    fn file<'a>(r: &'a Report, path: &str) -> &'a FileReport {
        r.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no report for {path}: {r:#?}"))
    }

    fn errors(f: &FileReport) -> Vec<&str> {
        f.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.message.as_str())
            .collect()
    }

    fn warnings(f: &FileReport) -> Vec<&str> {
        f.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .map(|p| p.message.as_str())
            .collect()
    }

    fn dashboard(project: &str, name: &str) -> String {
        format!(
            r#"{{"kind":"Dashboard","metadata":{{"name":"{name}","project":"{project}"}},"spec":{{"duration":"1h"}}}}"#
        )
    }

    const PROJECT_P: &str = r#"{"kind":"Project","metadata":{"name":"p"},"spec":{}}"#;

    #[test]
    fn a_valid_global_resource_is_accepted() {
        let r = lint(
            &[(
                "gd.json",
                r#"{"kind":"GlobalDatasource","metadata":{"name":"prom"},"spec":{"plugin":{}}}"#,
            )],
            &[],
        );
        let f = file(&r, "gd.json");
        assert!(f.accepted);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.resources[0].key().to_string(), "GlobalDatasource prom");
        assert!(!r.has_errors());
    }

    #[test]
    fn names_of_75_characters_pass_and_76_fail() {
        let ok = "a".repeat(75);
        let long = "a".repeat(76);
        let body =
            |n: &str| format!(r#"{{"kind":"GlobalRole","metadata":{{"name":"{n}"}},"spec":{{}}}}"#);
        let r = lint(&[("ok.json", &body(&ok)), ("long.json", &body(&long))], &[]);
        assert!(file(&r, "ok.json").accepted);
        let f = file(&r, "long.json");
        assert!(!f.accepted);
        assert_eq!(errors(f).len(), 1);
        assert!(
            errors(f)[0].contains("76 characters long"),
            "{:?}",
            errors(f)
        );
        assert!(errors(f)[0].contains("at most 75"));
    }

    #[test]
    fn names_with_other_characters_are_refused() {
        assert_eq!(check_name("a-b_c.D9"), None);
        let m = check_name("my dash/board").unwrap();
        assert!(m.contains("' '") && m.contains("'/'"), "{m}");
        assert!(check_name("").unwrap().contains("empty"));
        assert!(check_name("é").unwrap().contains("'é'"));
        let r = lint(
            &[(
                "u.yaml",
                "kind: User\nmetadata:\n  name: \"bob smith\"\nspec: {}\n",
            )],
            &[],
        );
        let f = file(&r, "u.yaml");
        assert!(!f.accepted);
        assert!(
            errors(f)[0].starts_with("User bob smith: metadata.name \"bob smith\" contains ' '")
        );
    }

    #[test]
    fn missing_or_empty_name_is_refused() {
        let r = lint(
            &[
                ("a.json", r#"{"kind":"GlobalRole","metadata":{"name":""}}"#),
                ("b.json", r#"{"kind":"GlobalRole","metadata":{}}"#),
                ("c.json", r#"{"kind":"GlobalRole"}"#),
            ],
            &[],
        );
        assert!(errors(file(&r, "a.json"))[0].contains("metadata.name is empty"));
        assert!(errors(file(&r, "b.json"))[0].contains("metadata.name is missing"));
        assert!(errors(file(&r, "c.json"))[0].contains("no `metadata` object"));
        assert!(r.files.iter().all(|f| !f.accepted));
    }

    #[test]
    fn empty_spec_is_refused_for_dashboards_and_datasources_only() {
        let r = lint(
            &[
                (
                    "missing.json",
                    r#"{"kind":"GlobalDatasource","metadata":{"name":"a"}}"#,
                ),
                (
                    "null.json",
                    r#"{"kind":"GlobalDatasource","metadata":{"name":"b"},"spec":null}"#,
                ),
                (
                    "empty.json",
                    r#"{"kind":"Dashboard","metadata":{"name":"c","project":"p"},"spec":{}}"#,
                ),
                (
                    "string.json",
                    r#"{"kind":"Datasource","metadata":{"name":"d","project":"p"},"spec":"x"}"#,
                ),
                (
                    "variable.json",
                    r#"{"kind":"GlobalVariable","metadata":{"name":"e"}}"#,
                ),
                ("project.json", PROJECT_P),
            ],
            &[],
        );
        for (path, text) in [
            ("missing.json", "spec is missing"),
            ("null.json", "spec is null"),
            ("empty.json", "spec is empty: Perses refuses a Dashboard"),
            ("string.json", "spec must be an object"),
        ] {
            let f = file(&r, path);
            assert!(!f.accepted, "{path}");
            assert_eq!(errors(f).len(), 1, "{path}: {:?}", errors(f));
            assert!(errors(f)[0].contains(text), "{path}: {:?}", errors(f));
        }
        assert!(file(&r, "variable.json").accepted);
    }

    #[test]
    fn unknown_and_ephemeral_kinds_are_refused() {
        let r = lint(
            &[
                (
                    "e.json",
                    r#"{"kind":"EphemeralDashboard","metadata":{"name":"t","project":"p"},"spec":{"ttl":"1d"}}"#,
                ),
                ("x.json", r#"{"kind":"Panel","metadata":{"name":"t"}}"#),
                ("c.json", r#"{"kind":"dashboard","metadata":{"name":"t"}}"#),
                ("n.json", r#"{"metadata":{"name":"t"}}"#),
                ("p.json", PROJECT_P),
            ],
            &[],
        );
        let e = file(&r, "e.json");
        assert!(!e.accepted);
        assert_eq!(errors(e).len(), 1);
        assert!(errors(e)[0].contains("EphemeralDashboard cannot be provisioned"));
        assert_eq!(e.resources[0].project.as_deref(), Some("p"));
        assert!(errors(file(&r, "x.json"))[0].contains("\"Panel\" cannot be provisioned"));
        assert!(errors(file(&r, "c.json"))[0].contains("did you mean Dashboard?"));
        assert!(errors(file(&r, "n.json"))[0].contains("no `kind` field"));
        assert!(file(&r, "p.json").accepted);
    }

    #[test]
    fn project_scoped_kinds_need_a_project() {
        let r = lint(
            &[
                (
                    "empty.json",
                    r#"{"kind":"Secret","metadata":{"name":"s","project":""},"spec":{}}"#,
                ),
                (
                    "missing.json",
                    r#"{"kind":"Variable","metadata":{"name":"v"},"spec":{}}"#,
                ),
            ],
            &[],
        );
        assert!(errors(file(&r, "empty.json"))[0].contains("metadata.project is empty"));
        assert!(errors(file(&r, "missing.json"))[0].contains("metadata.project is missing"));
        assert!(r.files.iter().all(|f| !f.accepted));
    }

    #[test]
    fn the_project_must_exist_in_the_tree_or_be_known() {
        let dash = dashboard("p", "d");
        let alone = lint(&[("d.json", &dash)], &[]);
        let f = file(&alone, "d.json");
        assert!(!f.accepted);
        assert_eq!(errors(f).len(), 1);
        assert!(errors(f)[0].contains("project \"p\" does not exist"));
        assert!(errors(f)[0].contains("--known-project p"));

        let known = lint(&[("d.json", &dash)], &["p"]);
        assert!(file(&known, "d.json").accepted);
        assert!(!known.has_errors());

        let tree = lint(
            &[
                ("sub/d.json", &dash),
                ("z-project.yaml", "kind: Project\nmetadata:\n  name: p\n"),
            ],
            &[],
        );
        assert!(file(&tree, "sub/d.json").accepted, "{tree:#?}");
        assert!(!tree.has_errors());
    }

    #[test]
    fn a_project_in_a_skipped_file_does_not_exist() {
        // The Project is fine, but its file also holds a broken object, so the dashboard's
        // project is never created.
        let projects = format!(r#"[{PROJECT_P}, {{"kind":"Bogus","metadata":{{"name":"x"}}}}]"#);
        let r = lint(
            &[
                ("projects.json", &projects),
                ("d.json", &dashboard("p", "d")),
            ],
            &[],
        );
        assert!(!file(&r, "projects.json").accepted);
        let d = file(&r, "d.json");
        assert!(!d.accepted);
        assert!(
            errors(d)[0].contains("defined in projects.json, which Perses skips"),
            "{:?}",
            errors(d)
        );
        // A known project does not depend on the file.
        let r = lint(
            &[
                ("projects.json", &projects),
                ("d.json", &dashboard("p", "d")),
            ],
            &["p"],
        );
        assert!(file(&r, "d.json").accepted);
    }

    #[test]
    fn the_same_key_in_two_files_is_an_error_naming_both() {
        let r = lint(
            &[
                ("a.json", &dashboard("p", "same")),
                ("b/c.json", &dashboard("p", "same")),
                ("other.json", &dashboard("p", "other")),
                ("p.json", PROJECT_P),
            ],
            &[],
        );
        // Perses walks a.json before b/, so b/c.json is the one read last.
        let a = file(&r, "a.json");
        let c = file(&r, "b/c.json");
        assert_eq!(errors(a).len(), 1);
        assert!(
            errors(a)[0].contains("Dashboard p/same is also defined in b/c.json"),
            "{:?}",
            errors(a)
        );
        assert!(errors(a)[0].contains("(b/c.json) overwrites"));
        assert!(errors(c)[0].contains("also defined in a.json"));
        // Both files still load: the status says what Perses does, the error why it is wrong.
        assert!(a.accepted && c.accepted);
        assert!(errors(file(&r, "other.json")).is_empty());
        assert!(r.has_errors());
        // Different projects, or a different kind, are different resources.
        let r = lint(
            &[
                ("a.json", &dashboard("p", "same")),
                ("b.json", &dashboard("q", "same")),
            ],
            &["p", "q"],
        );
        assert!(!r.has_errors());
    }

    #[test]
    fn the_same_key_twice_in_one_file_is_a_warning() {
        let list = format!("[{}, {}]", dashboard("p", "d"), dashboard("p", "d"));
        let r = lint(&[("l.json", &list)], &["p"]);
        let f = file(&r, "l.json");
        assert!(f.accepted);
        assert!(!r.has_errors());
        assert!(
            warnings(f)[0].contains("defined 2 times in this file"),
            "{:?}",
            warnings(f)
        );
    }

    #[test]
    fn one_bad_object_skips_the_whole_list_file() {
        let text = format!(
            "[\n  {},\n  {{\"kind\": \"Dashboard\", \"metadata\": {{\"name\": \"bad name\", \"project\": \"p\"}}, \"spec\": {{}}}},\n  {}\n]\n",
            dashboard("p", "one"),
            dashboard("p", "three")
        );
        let r = lint(&[("list.json", &text), ("p.json", PROJECT_P)], &[]);
        let f = file(&r, "list.json");
        assert!(!f.accepted);
        assert_eq!(f.resources.len(), 3, "every identifiable object is listed");
        // Both problems of the bad object, at its line, and nothing for the good ones.
        let errs: Vec<&Problem> = f.problems.iter().collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|p| p.line == Some(3)));
        assert!(errs[0].message.contains("metadata.name \"bad name\""));
        assert!(errs[1].message.contains("spec is empty"));
        let s = r.summary();
        assert_eq!((s.files, s.accepted, s.skipped), (2, 1, 1));
        assert_eq!(s.resources, 1, "only the Project of p.json is loaded");
        assert!(
            r.human()
                .contains("list.json: note: Perses skips this whole file (3 resources not loaded)")
        );
    }

    #[test]
    fn yaml_with_several_documents_warns_and_counts_only_the_first() {
        let text = "# comment\nkind: GlobalRole\nmetadata:\n  name: first\n---\nkind: GlobalRole\nmetadata:\n  name: second\n";
        let r = lint(&[("roles.yaml", text)], &[]);
        let f = file(&r, "roles.yaml");
        assert!(f.accepted);
        assert_eq!(f.resources.len(), 1);
        assert_eq!(f.resources[0].name, "first");
        assert_eq!(f.problems.len(), 1);
        assert_eq!(f.problems[0].severity, Severity::Warning);
        assert_eq!(f.problems[0].line, Some(5));
        assert!(
            f.problems[0]
                .message
                .contains("reads only the first document")
        );
        assert!(!r.has_errors());

        // Markers around a single document, or an empty trailing one, are not worth a warning.
        for single in [
            "---\nkind: GlobalRole\nmetadata:\n  name: a\n",
            "---\nkind: GlobalRole\nmetadata:\n  name: a\n...\n",
            "kind: GlobalRole\nmetadata:\n  name: a\n---\n# nothing\n",
        ] {
            let p = parse_file("x.yaml", single.as_bytes()).unwrap();
            assert!(p.warnings.is_empty(), "{single:?}: {:?}", p.warnings);
            assert_eq!(p.objects.len(), 1);
        }
        // A syntax error in an ignored document does not matter to Perses.
        let p = parse_file(
            "x.yaml",
            b"kind: GlobalRole\nmetadata: {name: a}\n---\n[oops\n",
        )
        .unwrap();
        assert_eq!(p.objects.len(), 1);
        assert_eq!(p.warnings[0].line, Some(3));
    }

    #[test]
    fn json_parse_errors_carry_the_line() {
        let text = "{\n  \"kind\": \"GlobalRole\",\n  \"metadata\": {\"name\": \"a\"\n}\n";
        let r = lint(&[("bad.json", text)], &[]);
        let f = file(&r, "bad.json");
        assert!(!f.accepted);
        assert_eq!(f.problems.len(), 1);
        assert_eq!(f.problems[0].line, Some(5), "{:?}", f.problems);
        assert!(
            f.problems[0].message.starts_with("invalid JSON: "),
            "{:?}",
            f.problems
        );
        assert!(r.human().contains("bad.json:5: error: invalid JSON: "));
    }

    #[test]
    fn yaml_parse_errors_carry_the_line() {
        let text = "kind: GlobalRole\nmetadata:\n  name: a\n   bad: indent\n";
        let r = lint(&[("bad.yml", text)], &[]);
        let f = file(&r, "bad.yml");
        assert!(!f.accepted);
        assert_eq!(f.problems.len(), 1);
        assert_eq!(f.problems[0].line, Some(4), "{:?}", f.problems);
        assert!(
            f.problems[0].message.starts_with("invalid YAML: "),
            "{:?}",
            f.problems
        );
        assert!(
            !f.problems[0].message.contains("at line"),
            "no doubled position"
        );
    }

    #[test]
    fn a_json_file_holding_yaml_is_read_as_yaml_with_a_warning() {
        // Trailing comma: invalid JSON, valid YAML flow syntax; Perses falls back to YAML.
        let text = "[\n  {\"kind\": \"GlobalRole\", \"metadata\": {\"name\": \"a\"},}\n]\n";
        let r = lint(&[("trailing.json", text)], &[]);
        let f = file(&r, "trailing.json");
        assert!(f.accepted);
        assert_eq!(f.resources.len(), 1);
        assert_eq!(warnings(f).len(), 1);
        assert!(warnings(f)[0].contains("reading it as YAML"));
        // And a .yaml file that is plain JSON is fine as it is.
        let p = parse_file(
            "x.yaml",
            br#"{"kind":"GlobalRole","metadata":{"name":"a"}}"#,
        )
        .unwrap();
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn list_items_carry_their_start_line() {
        let json = "[\n  {\"kind\": \"A\", \"s\": \"[,{\\\"\"},\n\n  {\"kind\": \"B\"}\n]";
        let p = parse_file("l.json", json.as_bytes()).unwrap();
        assert!(p.list);
        let lines: Vec<_> = p.objects.iter().map(|o| o.line).collect();
        assert_eq!(lines, vec![Some(2), Some(4)]);
        let yaml = "- kind: A\n  metadata: {}\n-\n  kind: B\n";
        let p = parse_file("l.yaml", yaml.as_bytes()).unwrap();
        let lines: Vec<_> = p.objects.iter().map(|o| o.line).collect();
        assert_eq!(lines, vec![Some(1), Some(4)]);
    }

    #[test]
    fn empty_files_lists_and_non_objects_are_refused() {
        let r = lint(
            &[
                ("empty.yaml", ""),
                ("list.json", "[]"),
                ("scalar.json", "\"x\""),
                (
                    "mixed.json",
                    "[{\"kind\":\"GlobalRole\",\"metadata\":{\"name\":\"a\"}},\n 3]",
                ),
            ],
            &[],
        );
        assert!(errors(file(&r, "empty.yaml"))[0].contains("holds no object"));
        assert!(errors(file(&r, "list.json"))[0].contains("holds no object"));
        assert!(errors(file(&r, "scalar.json"))[0].contains("found a string"));
        let m = file(&r, "mixed.json");
        assert_eq!(m.problems[0].line, Some(2));
        assert!(
            m.problems[0]
                .message
                .contains("item 2 of the list is a number")
        );
        assert!(r.files.iter().all(|f| !f.accepted));
        assert!(parse_resources("x.json", b"[]").unwrap().is_empty());
    }

    #[test]
    fn other_files_are_ignored_and_upper_case_extensions_warned() {
        let r = lint(
            &[
                ("README.md", "# hi"),
                ("Chart.JSON", "{}"),
                ("r.yml", "kind: GlobalRole\nmetadata:\n  name: a\n"),
            ],
            &[],
        );
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.ignored, vec!["Chart.JSON", "README.md"]);
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].path, "Chart.JSON");
        assert!(!r.has_errors());
        let s = r.summary();
        assert_eq!((s.ignored, s.warnings), (2, 1));
    }

    #[test]
    fn global_kinds_ignore_a_project_with_a_warning() {
        let r = lint(
            &[(
                "g.json",
                r#"{"kind":"GlobalVariable","metadata":{"name":"v","project":"p"},"spec":{}}"#,
            )],
            &[],
        );
        let f = file(&r, "g.json");
        assert!(f.accepted);
        assert_eq!(f.resources[0].project, None);
        assert!(warnings(f)[0].contains("is ignored: GlobalVariable is not a project resource"));
    }

    #[test]
    fn paths_are_ordered_as_perses_walks_them() {
        let mut v = vec!["a.json", "a/b.json", "B.json", "a-b.json"];
        v.sort_by(|a, b| cmp_paths(a, b));
        assert_eq!(v, vec!["B.json", "a/b.json", "a-b.json", "a.json"]);
    }

    #[test]
    fn json_output_is_stable() {
        let r = lint(
            &[
                ("p.json", PROJECT_P),
                ("d.json", &dashboard("p", "d")),
                ("bad.json", &dashboard("", "x")),
                ("notes.txt", "x"),
            ],
            &[],
        );
        let v = r.to_json();
        assert_eq!(v["format_version"], "1.0");
        let files = v["files"].as_array().unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(paths, vec!["bad.json", "d.json", "p.json"]);
        assert_eq!(files[0]["status"], "skipped");
        assert_eq!(files[0]["problems"][0]["severity"], "error");
        assert_eq!(files[0]["problems"][0]["line"], Value::Null);
        assert_eq!(files[1]["status"], "accepted");
        assert_eq!(
            files[1]["resources"][0],
            json!({"kind": "Dashboard", "project": "p", "name": "d"})
        );
        assert_eq!(files[2]["resources"][0]["project"], Value::Null);
        assert_eq!(
            v["summary"],
            json!({"files": 3, "accepted": 2, "skipped": 1, "ignored": 1, "resources": 2,
                   "kinds": {"Dashboard": 1, "Project": 1}, "errors": 1, "warnings": 0})
        );
        assert_eq!(v["ignored"], json!(["notes.txt"]));
        // The printed form keeps the documented key order and parses to the same value.
        let text = r.to_json_string();
        assert!(text.starts_with("{\n  \"format_version\": \"1.0\",\n  \"root\": \"\","));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn human_output_has_one_line_per_problem_and_a_summary() {
        let r = lint(
            &[
                ("p.json", PROJECT_P),
                ("d.json", &dashboard("p", "d")),
                ("bad.json", &dashboard("", "x")),
            ],
            &[],
        );
        let text = r.human();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("bad.json: error: Dashboard x: metadata.project is empty"),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "bad.json: note: Perses skips this whole file (1 resource not loaded)"
        );
        assert_eq!(
            lines[2],
            "3 files: 2 accepted, 1 skipped (2 resources: 1 Dashboard, 1 Project); 1 error, 0 warnings; 0 other files ignored"
        );
    }

    #[test]
    fn sub_paths_are_relative_and_must_exist() {
        assert_eq!(normalize_sub_path("./prod//dash/").unwrap(), "prod/dash");
        assert_eq!(normalize_sub_path(".").unwrap(), "");
        assert!(matches!(
            normalize_sub_path("../x"),
            Err(LintError::BadSubPath { .. })
        ));
        assert!(matches!(
            normalize_sub_path("/x"),
            Err(LintError::BadSubPath { .. })
        ));
        let tree = files(&[("prod/a.json", "1"), ("prod2/b.json", "2"), ("c.json", "3")]);
        let sel = select_sub_path(tree.clone(), "prod/", "img").unwrap();
        assert_eq!(sel, files(&[("a.json", "1")]));
        let err = select_sub_path(tree, "dev", "img").unwrap_err();
        assert_eq!(err.to_string(), "sub-path \"dev\" does not exist in img");
    }

    #[test]
    fn read_tree_reads_recursively_in_walk_order_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/deep")).unwrap();
        std::fs::write(root.join("a.json"), "1").unwrap();
        std::fs::write(root.join("a/deep/x.yaml"), "2").unwrap();
        std::fs::write(root.join("notes.txt"), "3").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("a.json"), root.join("link.json")).unwrap();
        let tree = read_tree(root).unwrap();
        let paths: Vec<&str> = tree.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["a/deep/x.yaml", "a.json", "notes.txt"]);
        assert_eq!(tree.files[1].1, b"1");
        #[cfg(unix)]
        {
            assert_eq!(tree.warnings.len(), 1);
            assert_eq!(tree.warnings[0].path, "link.json");
            let report = lint_tree(&tree, &[]);
            assert!(
                report
                    .human()
                    .starts_with("link.json: warning: symbolic link not followed")
            );
        }

        let sub = read_tree_at(root, Some("a")).unwrap();
        assert_eq!(sub.files[0].0, "deep/x.yaml");
        assert!(matches!(
            read_tree_at(root, Some("nope")),
            Err(LintError::SubPathNotFound { .. })
        ));
        assert!(matches!(
            read_tree(&root.join("missing")),
            Err(LintError::NotFound { .. })
        ));
        assert!(matches!(
            read_tree(&root.join("a.json")),
            Err(LintError::NotADirectory { .. })
        ));
    }
}
