//! Offline check of Perses resource files: what Perses v0.54's provisioning does with each file
//! and each resource in it.
//!
//! Perses reads its provisioning folders on a timer and only logs what it refuses, so a broken
//! artifact fails silently in production. This module replays the provisioning rules on a list
//! of (relative path, bytes), so the same core works on a directory (`read_tree`) and on the
//! layers of an image read from a registry.
//!
//! Perses works in two steps, and so does this module (perses/perses v0.54):
//! 1. Decoding, file by file (`internal/cli/file/file.go`, `unmarshaller.unmarshalEntities`):
//!    files ending in `.json`, `.yaml` or `.yml` (case-sensitive) are read, anything else
//!    ignored; a file holds one object or a list of them; JSON or YAML is told from the content,
//!    not the extension, and only the first YAML document counts. Each object is decoded into
//!    its kind's struct, whose `UnmarshalJSON`/`UnmarshalYAML` validate it (name, tags, spec,
//!    layout references, dashboard variables). One object that fails makes Perses skip the
//!    whole file: the file is not `accepted`, and every resource of it is `Refused`.
//! 2. Applying, object by object (`internal/api/provisioning/provisioning.go`, `applyEntity`):
//!    Projects first, then everything else in reading order. Names and projects are lowercased
//!    (`Metadata.Flatten`, `database.case_sensitive` false by default); a resource whose project
//!    does not exist is refused, so is a kind the provisioning has no service for
//!    (EphemeralDashboard), and so is what the kind's service refuses when it creates it
//!    (variable names, a second default datasource). A refused object costs only itself: the
//!    other objects of its file load. A project-scoped resource with no project is stored
//!    outside any project (`StoredUnreachable`).
//!
//! What is not replayed: plugin schema validation (CUE), which the services also run when they
//! create a resource, and the decoding rules of plugin-free spec fields other than those listed
//! above. A resource that passes here can still be refused there, one resource at a time.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// Version of the JSON output (`Report::to_json`). 2.0: a file's `status` says whether Perses
/// reads it (`accepted`) or skips it whole; each resource has its own `status` (`loaded`,
/// `refused`, `stored-unreachable`) and `overwritten_by`.
pub const FORMAT_VERSION: &str = "2.0";

/// Longest `metadata.name` Perses accepts.
pub const MAX_NAME_LEN: usize = 75;

/// Most tags a resource may have (`Metadata.validateTags`, pkg/model/api/v1/metadata.go).
pub const MAX_TAGS: usize = 20;

/// Longest tag, in characters (`Metadata.validateTags`).
pub const MAX_TAG_LEN: usize = 50;

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

/// Kinds Perses refuses with a missing `spec` (decoding fails on a zero spec: `validate` of
/// each type in pkg/model/api/v1). Datasource and GlobalDatasource also refuse a `null` or `{}`
/// spec; a Dashboard's `{}` (and its `null` in a JSON file) decodes to a non-zero spec.
pub const SPEC_REQUIRED_KINDS: [&str; 3] = ["Dashboard", "Datasource", "GlobalDatasource"];

/// File name endings Perses reads; compared case-sensitively, as Go's `filepath.Ext` does.
pub const RESOURCE_EXTENSIONS: [&str; 3] = [".json", ".yaml", ".yml"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Perses refuses something (a file, a resource), or stores a resource where it is unusable.
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

/// What Perses does with one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Stored, in its project (or global): Perses serves it. It may still be overwritten by a
    /// later definition of the same resource (`Resource::overwritten_by`).
    Loaded,
    /// Not stored: its file is skipped, or Perses refuses this object when it applies it.
    Refused,
    /// Stored with no project (a project-scoped kind with an empty or absent
    /// `metadata.project`): the API lists it, but it belongs to no project, so the UI, which
    /// browses by project, never shows it.
    StoredUnreachable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Loaded => "loaded",
            Status::Refused => "refused",
            Status::StoredUnreachable => "stored-unreachable",
        }
    }

    /// Whether Perses stores the resource (reachable or not).
    pub fn is_stored(self) -> bool {
        self != Status::Refused
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

impl ResourceKey {
    /// The key as Perses stores it by default (`database.case_sensitive: false`): name and
    /// project lowercased (`Metadata.Flatten`, `ProjectMetadata.Flatten`, with Go's
    /// `strings.ToLower`), so `CaseDs` and `caseds` are one resource.
    pub fn stored(&self) -> ResourceKey {
        ResourceKey {
            kind: self.kind.clone(),
            project: self.project.as_deref().map(lower),
            name: lower(&self.name),
        }
    }
}

/// Go's `strings.ToLower`, rune by rune (no context-dependent rule).
fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// One object of a file, as far as it could be identified (string `kind` and `metadata.name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: String,
    /// As written; `None` for global kinds and for an empty or absent project.
    pub project: Option<String>,
    /// As written (Perses stores it lowercased: see `ResourceKey::stored`).
    pub name: String,
    /// The file, relative to the linted root, `/`-separated.
    pub path: String,
    /// Where the object starts, for objects of a list.
    pub line: Option<usize>,
    pub value: Value,
    /// What Perses does with it.
    pub status: Status,
    /// For a stored resource that a later stored definition of the same resource replaces: the
    /// file of the definition Perses ends up serving (this file, for a later item of the same
    /// list).
    pub overwritten_by: Option<String>,
}

impl Resource {
    /// The key as written in the file.
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            kind: self.kind.clone(),
            project: self.project.clone(),
            name: self.name.clone(),
        }
    }

    /// The key Perses stores it under: two resources with the same stored key are one.
    pub fn stored_key(&self) -> ResourceKey {
        self.key().stored()
    }
}

/// The verdict on one resource file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// Relative to the linted root, `/`-separated.
    pub path: String,
    /// Whether Perses reads (decodes) the file; false means it skips every object in it. A file
    /// that is read can still have refused resources: see each `Resource::status`.
    pub accepted: bool,
    /// Every identifiable object, whatever Perses does with it.
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
    /// Files Perses reads.
    pub accepted: usize,
    /// Files Perses skips whole.
    pub skipped: usize,
    pub ignored: usize,
    /// Resources Perses loads (`Status::Loaded`), overwritten ones included.
    pub resources: usize,
    /// `resources` by kind.
    pub kinds: BTreeMap<String, usize>,
    /// Resources Perses does not store (`Status::Refused`), those of skipped files included.
    pub refused: usize,
    /// Resources stored outside any project (`Status::StoredUnreachable`).
    pub unreachable: usize,
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
    /// Whether Perses decodes it as JSON (the whole content is JSON), rather than YAML.
    pub json: bool,
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
    id_problem(name).map(|p| match p {
        IdProblem::Empty => "metadata.name is empty".to_string(),
        IdProblem::Bad(why) => format!("metadata.name {name:?} {why}"),
    })
}

enum IdProblem {
    Empty,
    /// What is wrong, as the end of a sentence about the name.
    Bad(String),
}

/// `ValidateID` (perses/spec go/common/validate.go): non-empty, at most 75 bytes, and
/// `^[a-zA-Z0-9_.-]+$`. Used for resource names and dashboard variable names.
fn id_problem(name: &str) -> Option<IdProblem> {
    if name.is_empty() {
        return Some(IdProblem::Empty);
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
        Some(IdProblem::Bad(parts.join(", and ")))
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
        json: false,
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
    facts: Facts,
    /// Whether Perses decodes this object (its whole file is skipped otherwise).
    decodes: bool,
    /// The project a Project object defines, when it decodes (as written).
    defines_project: Option<String>,
    /// Prefix that names the object in messages of a multi-object file.
    label: String,
}

/// What the tree-wide checks need to know of one resource.
#[derive(Debug, Clone, Default)]
struct Facts {
    /// Perses refuses the object when it applies it, whatever the rest of the tree holds.
    refused: bool,
    /// The project it names, when it must exist (as written, non-empty).
    needs_project: Option<String>,
    /// A project-scoped object with an empty or absent project: stored outside any project.
    no_project: bool,
    /// For a Datasource or GlobalDatasource: `spec.default` and `spec.plugin.kind`.
    datasource: Option<(bool, String)>,
}

/// The problems of one object, by what they make Perses do.
#[derive(Default)]
struct Found {
    /// Decoding fails: Perses skips the whole file.
    decoding: Vec<String>,
    /// Perses refuses this object when it applies it.
    refusals: Vec<String>,
    /// Perses stores it, but where it is unusable.
    unusable: Vec<String>,
    warnings: Vec<String>,
}

fn check_object(
    path: &str,
    obj: &ParsedObject,
    index: usize,
    json: bool,
    problems: &mut Vec<Problem>,
) -> Checked {
    let line = obj.line;
    let empty = Map::new();
    let map = obj.value.as_object().unwrap_or(&empty);
    let mut found = Found::default();
    let mut facts = Facts::default();

    // The kind picks the struct to decode into (`modelV1.GetStruct`, pkg/model/api/v1/kind.go);
    // EphemeralDashboard has one, but no provisioning service (`provisioning.getService`).
    let kind = match map.get("kind") {
        None => {
            found
                .decoding
                .push("no `kind` field: Perses cannot tell what this object is".into());
            None
        }
        Some(Value::String(k)) => Some(k.clone()),
        Some(other) => {
            found.decoding.push(format!(
                "`kind` must be a string, found {}",
                type_name(other)
            ));
            None
        }
    };
    let k = kind.as_deref().unwrap_or_default();
    let provisionable = PROVISIONABLE_KINDS.contains(&k);
    let ephemeral = k == "EphemeralDashboard";
    if ephemeral {
        found.refusals.push(kind_message(k));
    } else if kind.is_some() && !provisionable {
        found.decoding.push(kind_message(k));
    }

    let metadata = match map.get("metadata") {
        Some(Value::Object(m)) => m,
        None => {
            found.decoding.push("no `metadata` object".into());
            &empty
        }
        Some(other) => {
            found.decoding.push(format!(
                "`metadata` must be an object, found {}",
                type_name(other)
            ));
            &empty
        }
    };
    let name = match metadata.get("name") {
        Some(Value::String(n)) => {
            found.decoding.extend(check_name(n));
            Some(n.clone())
        }
        None if map.contains_key("metadata") => {
            found.decoding.push("metadata.name is missing".into());
            None
        }
        None => None,
        Some(other) => {
            found.decoding.push(format!(
                "metadata.name must be a string, found {}",
                type_name(other)
            ));
            None
        }
    };
    found
        .decoding
        .extend(check_tags(metadata.get("tags"), json));

    let scoped = PROJECT_SCOPED_KINDS.contains(&k);
    let raw_project = metadata.get("project");
    let project = if scoped || ephemeral {
        match raw_project {
            Some(Value::String(p)) if !p.is_empty() => {
                facts.needs_project = Some(p.clone());
                Some(p.clone())
            }
            // `applyEntity` checks the project only when there is one
            // (internal/api/provisioning/provisioning.go): the service stores the resource
            // with an empty project.
            Some(Value::String(_)) | None | Some(Value::Null) if scoped => {
                let how = if raw_project.is_some_and(Value::is_string) {
                    "empty"
                } else {
                    "missing"
                };
                facts.no_project = true;
                found.unusable.push(format!(
                    "metadata.project is {how}: a {k} must belong to a project (Perses v0.54 \
                     stores it outside any project, where no page of the UI shows it)"
                ));
                None
            }
            Some(Value::String(_)) | None | Some(Value::Null) => None,
            Some(other) => {
                found.decoding.push(format!(
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
        if let (true, Some(p)) = (provisionable, named) {
            found.warnings.push(format!(
                "metadata.project {p:?} is ignored: {k} is not a project resource"
            ));
        }
        // Unknown kinds keep their project in the listing; it helps to recognise them.
        named.filter(|_| !provisionable).map(str::to_string)
    };

    let spec = map.get("spec");
    match k {
        "Dashboard" | "EphemeralDashboard" => check_dashboard_spec(k, spec, json, &mut found),
        "Datasource" | "GlobalDatasource" => {
            match spec {
                None => found
                    .decoding
                    .push(format!("spec is missing: Perses refuses a {k} without one")),
                Some(Value::Null) => found
                    .decoding
                    .push(format!("spec is null: Perses refuses a {k} without one")),
                Some(Value::Object(s)) if s.is_empty() => found
                    .decoding
                    .push(format!("spec is empty: Perses refuses a {k} without one")),
                Some(Value::Object(_)) => {}
                Some(other) => found.decoding.push(format!(
                    "spec must be an object, found {}",
                    type_name(other)
                )),
            }
            let spec = spec.and_then(Value::as_object).unwrap_or(&empty);
            let plugin = spec
                .get("plugin")
                .and_then(|p| p.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            facts.datasource = Some((
                spec.get("default") == Some(&Value::Bool(true)),
                plugin.to_string(),
            ));
        }
        "Variable" => {
            // The Variable service refuses the name when it creates the resource
            // (`validate.Variable`, internal/api/validate/validate.go). GlobalVariable's
            // service does not check it in v0.54 (internal/api/impl/v1/globalvariable).
            if let Some(p) = name.as_deref().and_then(variable_name_problem) {
                found
                    .refusals
                    .push(format!("{p}; the Variable service refuses it"));
            }
        }
        _ => {}
    }

    let resource = match (&kind, &name) {
        (Some(k), Some(n)) => Some(Resource {
            kind: k.clone(),
            project: project.filter(|p| !p.is_empty()),
            name: n.clone(),
            path: path.to_string(),
            line,
            // Filled in by `check_file` when the caller keeps values: moving the object there
            // avoids a deep copy of every dashboard.
            value: Value::Null,
            status: Status::Refused,
            overwritten_by: None,
        }),
        _ => None,
    };
    let label = match &resource {
        Some(r) if !r.name.is_empty() => format!("{}: ", r.key()),
        _ => format!("object {}: ", index + 1),
    };
    let decodes = found.decoding.is_empty();
    facts.refused = !found.refusals.is_empty();
    let errors = found
        .decoding
        .iter()
        .chain(&found.refusals)
        .chain(&found.unusable);
    for e in errors {
        problems.push(Problem::error(line, format!("{label}{e}")));
    }
    for w in &found.warnings {
        problems.push(Problem::warning(line, format!("{label}{w}")));
    }
    let defines_project = match (&resource, decodes) {
        (Some(r), true) if r.kind == "Project" => Some(r.name.clone()),
        _ => None,
    };
    Checked {
        resource,
        facts,
        decodes,
        defines_project,
        label,
    }
}

/// `metadata.tags`, as `Metadata.validateTags` (pkg/model/api/v1/metadata.go) checks them while
/// decoding any kind: a set (duplicates count once) of at most 20 tags, none empty, none with
/// leading or trailing whitespace (Go's `strings.TrimSpace`), none longer than 50 characters.
fn check_tags(tags: Option<&Value>, json: bool) -> Vec<String> {
    let items = match tags {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return vec![format!(
                "metadata.tags must be a list of strings, found {}",
                type_name(other)
            )];
        }
    };
    let mut problems = Vec::new();
    let mut set: Vec<String> = Vec::new();
    for item in items {
        let tag = match item {
            Value::String(s) => s.clone(),
            // A null element decodes to "" in JSON and in YAML.
            Value::Null => String::new(),
            // YAML decodes a scalar into a string (`1` is "1"); JSON refuses it.
            Value::Number(n) if !json => n.to_string(),
            Value::Bool(b) if !json => b.to_string(),
            other => {
                problems.push(format!(
                    "metadata.tags must hold strings, found {}",
                    type_name(other)
                ));
                continue;
            }
        };
        if !set.contains(&tag) {
            set.push(tag);
        }
    }
    if set.len() > MAX_TAGS {
        problems.push(format!(
            "metadata.tags holds {} different tags; Perses allows at most {MAX_TAGS}",
            set.len()
        ));
    }
    for tag in &set {
        let trimmed = tag.trim();
        if trimmed.is_empty() {
            problems.push(format!("tag {tag:?} is empty: Perses refuses empty tags"));
        } else if trimmed != tag {
            problems.push(format!(
                "tag {tag:?} starts or ends with whitespace, which Perses refuses"
            ));
        } else if tag.chars().count() > MAX_TAG_LEN {
            problems.push(format!(
                "tag {tag:?} is {} characters long; Perses allows at most {MAX_TAG_LEN}",
                tag.chars().count()
            ));
        }
    }
    problems
}

/// A Dashboard's (or EphemeralDashboard's) `spec`, as decoding checks it (`Dashboard.validate`,
/// pkg/model/api/v1/dashboard.go, and the spec types of perses/spec go/dashboard), plus the
/// variable names the Dashboard service checks when it creates it.
fn check_dashboard_spec(kind: &str, spec: Option<&Value>, json: bool, found: &mut Found) {
    let spec = match spec {
        // `reflect.DeepEqual(d.Spec, Spec{})`: a missing spec is the zero value.
        None => {
            found.decoding.push(format!(
                "spec is missing: Perses refuses a {kind} without one"
            ));
            return;
        }
        // In JSON, `null` reaches `Spec.UnmarshalJSON`, which sets the default duration, so the
        // spec is not zero; yaml.v3 never calls `UnmarshalYAML` for a null node, so it is.
        Some(Value::Null) if json => {
            found.warnings.push(format!(
                "spec is null: Perses stores this {kind} with an empty spec (no panel)"
            ));
            return;
        }
        Some(Value::Null) => {
            found.decoding.push(format!(
                "spec is null: Perses refuses a {kind} without a spec in a YAML file (it \
                 would store an empty one from a JSON file)"
            ));
            return;
        }
        Some(Value::Object(s)) => s,
        Some(other) => {
            found.decoding.push(format!(
                "spec must be an object, found {}",
                type_name(other)
            ));
            return;
        }
    };
    if spec.is_empty() {
        found.warnings.push(format!(
            "spec is empty: Perses stores this {kind} with an empty spec (no panel)"
        ));
    }
    found.decoding.extend(check_layouts(spec));
    check_dashboard_variables(spec, kind == "Dashboard", found);
}

/// Layouts, as decoding checks them: the kind (`LayoutKind.validate`, `Layout.unmarshal`,
/// perses/spec go/dashboard/layout.go), the form of every `content.$ref` (`JSONRef.validate`,
/// perses/spec go/common/jsonref.go), and, in Grid layouts, that it names a panel of
/// `spec.panels` (`verifyAndSetJSONReferences`, `checkAndSetRef`, pkg/model/api/v1/dashboard.go;
/// Tabs layouts are not resolved there).
fn check_layouts(spec: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(Value::Array(layouts)) = spec.get("layouts") else {
        return problems;
    };
    let panels = spec.get("panels").and_then(Value::as_object);
    for (i, layout) in layouts.iter().enumerate() {
        let at = format!("spec.layouts[{i}]");
        let Some(layout) = layout.as_object() else {
            continue;
        };
        let kind = layout
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let lspec = layout.get("spec").and_then(Value::as_object);
        let items_of = |v: Option<&Value>| -> Vec<Value> {
            v.and_then(Value::as_array).cloned().unwrap_or_default()
        };
        let (items, resolve): (Vec<(String, Value)>, bool) = match kind {
            "Grid" => (
                items_of(lspec.and_then(|s| s.get("items")))
                    .into_iter()
                    .enumerate()
                    .map(|(j, it)| (format!("{at}.spec.items[{j}]"), it))
                    .collect(),
                true,
            ),
            "Tabs" => (
                items_of(lspec.and_then(|s| s.get("tabs")))
                    .iter()
                    .enumerate()
                    .flat_map(|(t, tab)| {
                        let at = &at;
                        items_of(tab.get("items"))
                            .into_iter()
                            .enumerate()
                            .map(move |(j, it)| (format!("{at}.spec.tabs[{t}].items[{j}]"), it))
                    })
                    .collect(),
                false,
            ),
            "" => {
                problems.push(format!("{at}: the layout kind is missing (Grid or Tabs)"));
                continue;
            }
            other => {
                problems.push(format!(
                    "{at}: unknown layout kind {other:?}; Perses knows Grid and Tabs"
                ));
                continue;
            }
        };
        for (at, item) in items {
            let content = match item.get("content") {
                Some(Value::Object(c)) => c,
                // `checkAndSetRef` dereferences the missing reference: Perses v0.54 panics
                // (nil pointer) while decoding the file, and the whole server stops, at every
                // start. Tabs items are not resolved, so they do not crash it.
                None | Some(Value::Null) if resolve => {
                    problems.push(format!(
                        "{at}: the item has no content: Perses v0.54 crashes on it (nil pointer \
                         in checkAndSetRef while decoding the dashboard), which stops the whole \
                         server, at every start"
                    ));
                    continue;
                }
                None | Some(Value::Null) => continue,
                Some(other) => {
                    problems.push(format!(
                        "{at}: content must be an object, found {}",
                        type_name(other)
                    ));
                    continue;
                }
            };
            let reference = content
                .get("$ref")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(path) = json_ref_path(reference) else {
                problems.push(format!(
                    "{at}: content.$ref {reference:?} is not a reference Perses accepts \
                     (`#/spec/panels/NAME`)"
                ));
                continue;
            };
            if !resolve {
                continue;
            }
            if path.len() != 3 || path[0] != "spec" || path[1] != "panels" {
                problems.push(format!(
                    "{at}: content.$ref {reference:?} does not point into spec.panels"
                ));
            } else if !panels.is_some_and(|p| p.contains_key(path[2])) {
                problems.push(format!(
                    "{at}: content.$ref {reference:?} names no panel of spec.panels: Perses \
                     refuses the dashboard (no panel found for ref {:?})",
                    path[2]
                ));
            }
        }
    }
    problems
}

/// The parts of a JSON reference if it matches `^#?/([a-zA-Z0-9_-]+)(?:/([a-zA-Z0-9_-]+))*$`.
fn json_ref_path(reference: &str) -> Option<Vec<&str>> {
    let rest = reference.strip_prefix('#').unwrap_or(reference);
    let rest = rest.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    ok.then_some(parts)
}

/// Dashboard variables: their kind, name and unicity while decoding (`Variable.unmarshal`,
/// `ListVariableSpec.validate`, `TextVariableSpec.validate`, `Spec.validate` in perses/spec
/// go/dashboard), then the name rule of the Dashboard service (`validateVariableNames`, via
/// `validate.DashboardSpecWithVars`, internal/api/validate/validate.go), which refuses the
/// object only.
fn check_dashboard_variables(spec: &Map<String, Value>, service: bool, found: &mut Found) {
    let Some(Value::Array(variables)) = spec.get("variables") else {
        return;
    };
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, v) in variables.iter().enumerate() {
        let at = format!("spec.variables[{i}]");
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != "ListVariable" && kind != "TextVariable" {
            found.decoding.push(format!(
                "{at}: variable kind {kind:?} is neither ListVariable nor TextVariable"
            ));
            continue;
        }
        let name = v
            .get("spec")
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match id_problem(name) {
            Some(IdProblem::Empty) => {
                found
                    .decoding
                    .push(format!("{at}: the variable has no name"));
                continue;
            }
            Some(IdProblem::Bad(why)) => {
                found
                    .decoding
                    .push(format!("{at}: variable name {name:?} {why}"));
                continue;
            }
            None => {}
        }
        // `strconv.Atoi` succeeds.
        if kind == "TextVariable" && name.parse::<i64>().is_ok() {
            found.decoding.push(format!(
                "{at}: variable name {name:?} holds only digits, which Perses refuses"
            ));
            continue;
        }
        if !seen.insert(name) {
            found.decoding.push(format!(
                "{at}: variable {name:?} is defined twice in this dashboard"
            ));
            continue;
        }
        // An EphemeralDashboard never reaches a service: provisioning refuses its kind.
        if let Some(p) = variable_name_problem(name).filter(|_| service) {
            found.refusals.push(format!(
                "{at}: {p}; the Dashboard service refuses the dashboard"
            ));
        }
    }
}

/// `validateVariableName` (internal/api/validate/validate.go): the name must match
/// `^\w*?[^0-9]\w*$` (Go's `\w` is `[0-9A-Za-z_]`: at most one other character, and not only
/// digits), and must not start with `__`, the prefix of builtin variables.
fn variable_name_problem(name: &str) -> Option<String> {
    let word = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    let matches = match name.chars().filter(|c| !word(c)).count() {
        0 => name.chars().any(|c| !c.is_ascii_digit()),
        1 => true,
        _ => false,
    };
    if !matches {
        return Some(format!(
            "variable name {name:?} is not valid: Perses allows letters, digits, '_' and at \
             most one other character, and not only digits (`^\\w*?[^0-9]\\w*$`)"
        ));
    }
    if name.starts_with("__") {
        return Some(format!(
            "variable name {name:?} starts with `__`, the prefix of Perses' builtin variables"
        ));
    }
    None
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
    /// One entry per resource of `report.resources`.
    facts: Vec<Facts>,
    /// (project, line, label) of each project reference.
    needs: Vec<(String, Option<usize>, String)>,
    defines: Vec<String>,
}

/// A Datasource or GlobalDatasource Perses has stored, for the default-datasource rule.
struct StoredDatasource {
    kind: String,
    /// Lowercased; `None` for a GlobalDatasource or a project-less Datasource.
    project: Option<String>,
    /// Lowercased.
    name: String,
    default: bool,
    plugin: String,
    /// As written, for messages.
    shown: String,
    path: String,
}

/// The identifiable objects of one file, with their values (statuses are not computed: they
/// depend on the rest of the tree). For content diffs, which look at one file at a time.
pub fn file_resources(path: &str, bytes: &[u8]) -> Vec<Resource> {
    check_file(path, bytes, true).report.resources
}

/// A lint fed one file at a time, so that a tree is never held in memory: each file is parsed
/// and checked when it is added, and only what the tree-wide checks need (keys, project
/// references, problems) is kept. `finish` runs those checks in Perses' reading order, whatever
/// order the files came in.
#[derive(Default)]
pub struct Linter {
    keep_values: bool,
    pending: Vec<Pending>,
    ignored: Vec<String>,
    warnings: Vec<Note>,
}

impl Linter {
    pub fn new() -> Linter {
        Linter::default()
    }

    /// Keeps each resource's decoded value in the report (`Resource::value`); off by default,
    /// as it holds the whole tree in memory.
    pub fn keep_values(mut self) -> Linter {
        self.keep_values = true;
        self
    }

    /// Adds one file (a relative `/`-separated path). Non-resource files are counted as ignored.
    pub fn add(&mut self, path: &str, bytes: &[u8]) {
        if !is_resource_file(path) {
            let lower = path.to_ascii_lowercase();
            if RESOURCE_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
                self.warnings.push(Note {
                    path: path.to_string(),
                    message: "ignored: Perses only reads names ending in lowercase .json, \
                              .yaml or .yml"
                        .into(),
                });
            }
            self.ignored.push(path.to_string());
            return;
        }
        self.pending.push(check_file(path, bytes, self.keep_values));
    }

    /// Takes in what another linter of the same tree was given (lint split over threads).
    pub fn merge(&mut self, other: Linter) {
        self.pending.extend(other.pending);
        self.ignored.extend(other.ignored);
        self.warnings.extend(other.warnings);
    }

    /// Runs the tree-wide checks. `known_projects` are projects that already exist on the
    /// Perses server.
    pub fn finish(self, known_projects: &[String]) -> Report {
        let Linter {
            mut pending,
            mut ignored,
            mut warnings,
            ..
        } = self;
        pending.sort_by(|a, b| cmp_paths(&a.report.path, &b.report.path));
        ignored.sort_by(|a, b| cmp_paths(a, b));
        warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
        let report = Report {
            ignored,
            warnings,
            ..Report::default()
        };
        tree_checks(pending, report, known_projects)
    }
}

/// Lints a whole tree of files (relative `/`-separated paths; non-resource files are counted as
/// ignored). `known_projects` are projects that already exist on the Perses server. Resource
/// values are not kept (see `Linter::keep_values`).
pub fn lint_files(files: &[(String, Vec<u8>)], known_projects: &[String]) -> Report {
    let mut linter = Linter::new();
    for (path, bytes) in files {
        linter.add(path, bytes);
    }
    linter.finish(known_projects)
}

fn tree_checks(mut pending: Vec<Pending>, mut report: Report, known_projects: &[String]) -> Report {
    // A project exists if the server has it or a Project of a file Perses reads defines it;
    // `applyEntity` creates every Project before anything else, so the order of the files does
    // not matter. Names are compared lowercased, as Perses stores them.
    let available: BTreeSet<String> = known_projects
        .iter()
        .map(|p| lower(p))
        .chain(
            pending
                .iter()
                .filter(|p| !p.broken)
                .flat_map(|p| p.defines.iter().map(|d| lower(d))),
        )
        .collect();
    let defined_in: BTreeMap<String, Vec<&str>> =
        pending.iter().fold(BTreeMap::new(), |mut m, p| {
            for d in &p.defines {
                m.entry(lower(d))
                    .or_insert_with(Vec::new)
                    .push(p.report.path.as_str());
            }
            m
        });
    let mut missing: Vec<(usize, Problem)> = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        for (project, line, label) in &p.needs {
            if available.contains(&lower(project)) {
                continue;
            }
            let message = match defined_in.get(&lower(project)) {
                Some(files) => format!(
                    "{label}project {project:?} is defined in {}, which Perses skips, so \
                     Perses refuses this resource; fix that file (or pass --known-project \
                     {project} if the project already exists)",
                    files.join(", ")
                ),
                None => format!(
                    "{label}project {project:?} does not exist, so Perses refuses this \
                     resource: add a Project named {project} to the tree, or pass \
                     --known-project {project} if it already exists on the server"
                ),
            };
            missing.push((i, Problem::error(*line, message)));
        }
    }
    for (i, problem) in missing {
        pending[i].report.problems.push(problem);
    }

    // Statuses, in the order Perses applies the objects (the Projects it moves first are never
    // refused here, so reading order is enough).
    let mut datasources: Vec<StoredDatasource> = Vec::new();
    for p in &mut pending {
        p.report.accepted = !p.broken;
        for (r, facts) in p.report.resources.iter_mut().zip(&p.facts) {
            let project_missing = facts
                .needs_project
                .as_ref()
                .is_some_and(|n| !available.contains(&lower(n)));
            if p.broken || facts.refused || project_missing {
                r.status = Status::Refused;
                continue;
            }
            if let Some((default, plugin)) = &facts.datasource {
                if let Some(problem) = default_conflict(r, *default, plugin, &datasources) {
                    p.report.problems.push(problem);
                    r.status = Status::Refused;
                    continue;
                }
                store_datasource(&mut datasources, r, *default, plugin);
            }
            r.status = if facts.no_project {
                Status::StoredUnreachable
            } else {
                Status::Loaded
            };
        }
    }

    report_duplicates(&mut pending);
    report.files = pending.into_iter().map(|p| p.report).collect();
    report
}

/// A default datasource is refused when one of the same plugin kind, with another name, is
/// already stored where the service looks: `validateUnicityOfDefaultDTS`
/// (internal/api/validate/validate.go), called by the Datasource and GlobalDatasource services
/// on create and update with the list of the project's datasources (every GlobalDatasource for
/// a GlobalDatasource). For a Datasource with no project, Perses' file database lists the
/// datasources of every project.
fn default_conflict(
    r: &Resource,
    default: bool,
    plugin: &str,
    stored: &[StoredDatasource],
) -> Option<Problem> {
    if !default {
        return None;
    }
    let key = r.stored_key();
    let other = stored.iter().find(|d| {
        d.kind == r.kind
            && (key.project.is_none() || d.project == key.project)
            && d.name != key.name
            && d.default
            && d.plugin == plugin
    })?;
    let scope = match (&r.kind[..], &r.project) {
        ("GlobalDatasource", _) => "".to_string(),
        (_, Some(p)) => format!(" in project {p}"),
        (_, None) => " (with no project, the check sees every project)".to_string(),
    };
    Some(Problem::error(
        r.line,
        format!(
            "{}: a default {plugin:?} {} already exists{scope}: {} ({}); Perses refuses a second \
             one (set \"default\": false on one of them)",
            r.key(),
            r.kind,
            other.shown,
            other.path
        ),
    ))
}

fn store_datasource(stored: &mut Vec<StoredDatasource>, r: &Resource, default: bool, plugin: &str) {
    let key = r.stored_key();
    let entry = StoredDatasource {
        kind: r.kind.clone(),
        project: key.project.clone(),
        name: key.name.clone(),
        default,
        plugin: plugin.to_string(),
        shown: r.key().to_string(),
        path: r.path.clone(),
    };
    match stored
        .iter_mut()
        .find(|d| d.kind == entry.kind && d.project == entry.project && d.name == entry.name)
    {
        Some(d) => *d = entry,
        None => stored.push(entry),
    }
}

fn check_file(path: &str, bytes: &[u8], keep_values: bool) -> Pending {
    let mut pending = Pending {
        report: FileReport {
            path: path.to_string(),
            accepted: true,
            resources: Vec::new(),
            problems: Vec::new(),
        },
        broken: false,
        facts: Vec::new(),
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
    for (i, obj) in parsed.objects.into_iter().enumerate() {
        let mut checked = check_object(path, &obj, i, parsed.json, &mut pending.report.problems);
        if keep_values && let Some(r) = &mut checked.resource {
            r.value = obj.value;
        }
        if !checked.decodes {
            pending.broken = true;
        }
        if let Some(p) = &checked.facts.needs_project {
            pending.needs.push((p.clone(), obj.line, checked.label));
        }
        pending.defines.extend(checked.defines_project);
        if let Some(r) = checked.resource {
            pending.report.resources.push(r);
            pending.facts.push(checked.facts);
        }
    }
    // Kept until the end of the tree, one per file: a vector grown by one push holds room for
    // four (about 1.4 KB per one-dashboard file, 60 MB for 45,000 files), so trim it.
    pending.report.resources.shrink_to_fit();
    pending.report.problems.shrink_to_fit();
    pending.facts.shrink_to_fit();
    pending.needs.shrink_to_fit();
    pending.defines.shrink_to_fit();
    pending
}

/// Perses creates the first definition of a key and updates it with each later one, so the
/// definition stored last wins (and the resource changes back and forth if they differ). Keys
/// are compared as Perses stores them (lowercased); only stored resources can clash.
fn report_duplicates(pending: &mut [Pending]) {
    let mut seen: BTreeMap<ResourceKey, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, p) in pending.iter().enumerate() {
        for (j, r) in p.report.resources.iter().enumerate() {
            if r.status.is_stored() {
                seen.entry(r.stored_key()).or_default().push((i, j));
            }
        }
    }
    for places in seen.into_values() {
        if places.len() < 2 {
            continue;
        }
        let (last_f, last_r) = places[places.len() - 1];
        let last_path = pending[last_f].report.path.clone();
        for &(f, r) in &places[..places.len() - 1] {
            pending[f].report.resources[r].overwritten_by = Some(last_path.clone());
        }
        let spellings: BTreeSet<String> = places
            .iter()
            .map(|&(f, r)| pending[f].report.resources[r].key().to_string())
            .collect();
        let case = if spellings.len() > 1 {
            let listed: Vec<String> = spellings.iter().map(|s| format!("`{s}`")).collect();
            format!(
                " ({} are one resource: Perses lowercases names and projects)",
                listed.join(" and ")
            )
        } else {
            String::new()
        };
        let files: BTreeSet<usize> = places.iter().map(|(f, _)| *f).collect();
        if files.len() == 1 {
            let lines: Vec<String> = places
                .iter()
                .filter_map(|&(f, r)| pending[f].report.resources[r].line.map(|l| l.to_string()))
                .collect();
            let at = if lines.is_empty() {
                String::new()
            } else {
                format!(" (lines {})", lines.join(", "))
            };
            let key = pending[last_f].report.resources[last_r].key();
            let line = pending[last_f].report.resources[last_r].line;
            pending[last_f].report.problems.push(Problem::warning(
                line,
                format!(
                    "{key} is defined {} times in this file{at}{case}; the last one wins",
                    places.len()
                ),
            ));
            continue;
        }
        let mut firsts: HashMap<usize, usize> = HashMap::new();
        for &(f, r) in &places {
            firsts.entry(f).or_insert(r);
        }
        for &f in &files {
            let others: Vec<&str> = files
                .iter()
                .filter(|o| **o != f)
                .map(|o| pending[*o].report.path.as_str())
                .collect();
            let first = &pending[f].report.resources[firsts[&f]];
            let message = format!(
                "{} is also defined in {}{case}: Perses stores each definition and the last \
                 one read ({last_path}) overwrites the others",
                first.key(),
                others.join(", ")
            );
            let line = first.line;
            pending[f]
                .report
                .problems
                .push(Problem::error(line, message));
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
    /// Whether anything would be refused, stored where it is unusable, or loaded in a way the
    /// author did not mean.
    pub fn has_errors(&self) -> bool {
        self.files.iter().any(FileReport::has_errors)
    }

    /// Every resource, in reading order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.files.iter().flat_map(|f| f.resources.iter())
    }

    /// Resources Perses loads in their project (or globally), in reading order.
    pub fn loaded(&self) -> impl Iterator<Item = &Resource> {
        self.resources().filter(|r| r.status == Status::Loaded)
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
        for r in self.resources() {
            match r.status {
                Status::Loaded => {
                    s.resources += 1;
                    *s.kinds.entry(r.kind.clone()).or_default() += 1;
                }
                Status::Refused => s.refused += 1,
                Status::StoredUnreachable => s.unreachable += 1,
            }
        }
        for p in self.files.iter().flat_map(|f| &f.problems) {
            match p.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
            }
        }
        s
    }

    /// The stable JSON form (`format_version` 2.0), as a value (keys sorted).
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
                            status: r.status.as_str(),
                            overwritten_by: r.overwritten_by.as_deref(),
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
                refused: s.refused,
                stored_unreachable: s.unreachable,
                errors: s.errors,
                warnings: s.warnings,
            },
        }
    }

    /// One line per problem (`path:line: severity: message`), a note per file with resources
    /// Perses does not load where they belong, then the summary line.
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
            for note in file_notes(f) {
                out.push_str(&format!("{}: note: {note}\n", f.path));
            }
        }
        let s = self.summary();
        let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let kinds = if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        };
        out.push_str(&format!(
            "{}: {} accepted, {} skipped; {} loaded{kinds}, {} refused, {} outside any project; \
             {}, {}; {} ignored\n",
            plural(s.files, "file"),
            s.accepted,
            s.skipped,
            plural(s.resources, "resource"),
            s.refused,
            s.unreachable,
            plural(s.errors, "error"),
            plural(s.warnings, "warning"),
            plural(s.ignored, "other file"),
        ));
        out
    }
}

/// What Perses does with a file, when it is not "load every resource": notes for `human`.
fn file_notes(f: &FileReport) -> Vec<String> {
    let mut notes = Vec::new();
    if !f.accepted {
        let lost = match f.resources.len() {
            0 => String::new(),
            n => format!(" ({} not loaded)", plural(n, "resource")),
        };
        notes.push(format!("Perses skips this whole file{lost}"));
        return notes;
    }
    let n = f.resources.len();
    let of = |status: Status| -> Vec<String> {
        f.resources
            .iter()
            .filter(|r| r.status == status)
            .map(|r| r.key().to_string())
            .collect()
    };
    let refused = of(Status::Refused);
    if !refused.is_empty() {
        let what = match (refused.len(), n) {
            (1, 1) => "its only resource".to_string(),
            (r, n) if r == n => format!("all {n} of its resources"),
            (r, n) => format!("{r} of its {n} resources"),
        };
        let rest = if refused.len() < n {
            "; the others load"
        } else {
            ""
        };
        notes.push(format!(
            "Perses reads this file but refuses {what}: {}{rest}",
            listing(&refused)
        ));
    }
    let unreachable = of(Status::StoredUnreachable);
    if !unreachable.is_empty() {
        notes.push(format!(
            "Perses stores {} with no project: only the API reaches {}",
            listing(&unreachable),
            if unreachable.len() == 1 { "it" } else { "them" },
        ));
    }
    notes
}

/// Up to five items, then how many more.
fn listing(items: &[String]) -> String {
    const SHOWN: usize = 5;
    if items.len() <= SHOWN {
        return items.join(", ");
    }
    format!(
        "{} and {} more",
        items[..SHOWN].join(", "),
        items.len() - SHOWN
    )
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
    let mut tree = Tree::default();
    let mut files = Vec::new();
    tree.warnings = visit_tree(dir, &mut |rel, bytes| files.push((rel, bytes)))?;
    files.sort_by(|a, b| cmp_paths(&a.0, &b.0));
    tree.files = files;
    Ok(tree)
}

/// Calls `each` with every regular file under `dir` (relative path, content), one at a time,
/// so that a caller can process a tree larger than memory; returns the warnings about what was
/// not read, sorted. Files come in directory order, not Perses' reading order.
pub fn visit_tree(
    dir: &Path,
    each: &mut dyn FnMut(String, Vec<u8>),
) -> Result<Vec<Note>, LintError> {
    let meta = std::fs::metadata(dir).map_err(|e| not_found_or_io(dir, e))?;
    if !meta.is_dir() {
        return Err(LintError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut warnings = Vec::new();
    walk(dir, "", each, &mut warnings)?;
    warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    Ok(warnings)
}

/// Lints the directory `dir` (at `sub_path`), reading one file at a time: memory stays at the
/// size of the largest files in flight plus the keys of the tree. Files are parsed on every
/// core while this thread reads the next ones.
pub fn lint_dir(
    dir: &Path,
    sub_path: Option<&str>,
    known_projects: &[String],
) -> Result<Report, LintError> {
    let root = resolve_sub_path(dir, sub_path)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    // A few files per worker in flight: enough to keep them busy, little memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(4 * workers);
    let rx = std::sync::Mutex::new(rx);
    let (linter, warnings) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = &rx;
                scope.spawn(move || {
                    let mut linter = Linter::new();
                    loop {
                        let next = rx.lock().expect("no worker panics").recv();
                        match next {
                            Ok((path, bytes)) => linter.add(&path, &bytes),
                            Err(_) => return linter,
                        }
                    }
                })
            })
            .collect();
        let warnings = visit_tree(&root, &mut |rel, bytes| {
            // A send fails only if every worker is gone, i.e. has panicked: join reports it.
            let _ = tx.send((rel, bytes));
        });
        drop(tx);
        let mut all = Linter::new();
        for h in handles {
            all.merge(h.join().expect("lint does not panic"));
        }
        (all, warnings)
    });
    let warnings = warnings?;
    let mut report = linter.finish(known_projects);
    report.warnings.extend(warnings);
    report.warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    Ok(report)
}

/// `read_tree` of `dir/sub_path`; an error if the sub-path does not exist, as the container
/// runtime would fail to start the pod.
pub fn read_tree_at(dir: &Path, sub_path: Option<&str>) -> Result<Tree, LintError> {
    read_tree(&resolve_sub_path(dir, sub_path)?)
}

/// `dir/sub_path`, checked: an error if the sub-path does not exist.
fn resolve_sub_path(dir: &Path, sub_path: Option<&str>) -> Result<PathBuf, LintError> {
    let Some(sub) = sub_path else {
        return Ok(dir.to_path_buf());
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
        Ok(_) => Ok(target),
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

fn walk(
    dir: &Path,
    prefix: &str,
    each: &mut dyn FnMut(String, Vec<u8>),
    warnings: &mut Vec<Note>,
) -> Result<(), LintError> {
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
            warnings.push(Note {
                path: rel,
                message: "symbolic link not followed, so not linted (Perses reads a linked \
                          file, but does not enter a linked folder)"
                    .into(),
            });
        } else if file_type.is_dir() {
            walk(&path, &rel, each, warnings)?;
        } else if file_type.is_file() {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            each(rel, bytes);
        } else {
            warnings.push(Note {
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
        pub status: &'static str,
        pub overwritten_by: Option<&'a str>,
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
        pub refused: usize,
        pub stored_unreachable: usize,
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

    /// The threaded, streaming `lint_dir` gives the report of the whole-tree `lint_files`,
    /// whatever order the workers finish in: duplicates across files (last one read wins),
    /// projects defined in a later file, a skipped file, ignored files.
    #[test]
    fn lint_dir_matches_the_whole_tree_lint() {
        let tmp = tempfile::tempdir().unwrap();
        let mut files: Vec<(String, String)> = Vec::new();
        for i in 0..60 {
            let project = if i % 7 == 0 { "missing" } else { "team" };
            files.push((
                format!("d{}/dash-{i:02}.json", i % 5),
                json!({"kind": "Dashboard", "metadata": {"name": format!("d{}", i % 40), "project": project},
                       "spec": {"duration": "1h", "display": {"name": format!("D {i}")}}})
                .to_string(),
            ));
        }
        files.push((
            "z/project.yaml".into(),
            "kind: Project\nmetadata:\n  name: team\n".into(),
        ));
        files.push(("broken.json".into(), "{\"kind\": ".into()));
        files.push(("README.md".into(), "not linted".into()));
        files.push(("UPPER.JSON".into(), "{}".into()));
        for (p, c) in &files {
            let path = tmp.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let whole = lint_tree(&read_tree(tmp.path()).unwrap(), &[]);
        assert!(whole.has_errors(), "the tree has problems to agree on");
        assert!(
            whole
                .files
                .iter()
                .any(|f| f.resources.iter().any(|r| r.overwritten_by.is_some()))
        );
        for _ in 0..5 {
            assert_eq!(lint_dir(tmp.path(), None, &[]).unwrap(), whole);
        }
        assert_eq!(
            lint_dir(tmp.path(), Some("d1"), &[]).unwrap(),
            lint_tree(&read_tree(&tmp.path().join("d1")).unwrap(), &[])
        );
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
    fn spec_rules_depend_on_the_kind_and_the_format() {
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
                    "empty-ds.json",
                    r#"{"kind":"Datasource","metadata":{"name":"c","project":"p"},"spec":{}}"#,
                ),
                (
                    "string.json",
                    r#"{"kind":"Datasource","metadata":{"name":"d","project":"p"},"spec":"x"}"#,
                ),
                (
                    "dash-missing.json",
                    r#"{"kind":"Dashboard","metadata":{"name":"e","project":"p"}}"#,
                ),
                (
                    "dash-null.yaml",
                    "kind: Dashboard\nmetadata: {name: f, project: p}\nspec: null\n",
                ),
                (
                    "dash-empty.json",
                    r#"{"kind":"Dashboard","metadata":{"name":"g","project":"p"},"spec":{}}"#,
                ),
                (
                    "dash-null.json",
                    r#"{"kind":"Dashboard","metadata":{"name":"h","project":"p"},"spec":null}"#,
                ),
                (
                    "dash-empty.yaml",
                    "kind: Dashboard\nmetadata: {name: i, project: p}\nspec: {}\n",
                ),
                (
                    "variable.json",
                    r#"{"kind":"GlobalVariable","metadata":{"name":"j"}}"#,
                ),
                ("project.json", PROJECT_P),
            ],
            &[],
        );
        for (path, text) in [
            ("missing.json", "spec is missing"),
            ("null.json", "spec is null"),
            (
                "empty-ds.json",
                "spec is empty: Perses refuses a Datasource",
            ),
            ("string.json", "spec must be an object"),
            (
                "dash-missing.json",
                "spec is missing: Perses refuses a Dashboard",
            ),
            (
                "dash-null.yaml",
                "spec is null: Perses refuses a Dashboard without a spec in a YAML file",
            ),
        ] {
            let f = file(&r, path);
            assert!(!f.accepted, "{path}");
            assert_eq!(errors(f).len(), 1, "{path}: {:?}", errors(f));
            assert!(errors(f)[0].contains(text), "{path}: {:?}", errors(f));
        }
        // A Dashboard's `{}`, or its `null` in JSON, decodes to a non-zero spec: Perses stores an
        // empty dashboard.
        for path in ["dash-empty.json", "dash-null.json", "dash-empty.yaml"] {
            let f = file(&r, path);
            assert!(f.accepted, "{path}");
            assert_eq!(f.resources[0].status, Status::Loaded, "{path}");
            assert!(errors(f).is_empty(), "{path}: {:?}", errors(f));
            assert!(
                warnings(f)[0].contains("Perses stores this Dashboard with an empty spec"),
                "{path}: {:?}",
                warnings(f)
            );
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
        // Perses decodes an EphemeralDashboard, then has no service to create it: the file is
        // read, the object refused.
        let e = file(&r, "e.json");
        assert!(e.accepted);
        assert_eq!(errors(e).len(), 1);
        assert!(errors(e)[0].contains("EphemeralDashboard cannot be provisioned"));
        assert_eq!(e.resources[0].project.as_deref(), Some("p"));
        assert_eq!(e.resources[0].status, Status::Refused);
        assert!(
            r.human()
                .contains("e.json: note: Perses reads this file but refuses its only resource: EphemeralDashboard p/t\n")
        );
        // Unknown kinds fail decoding: the whole file is skipped.
        for path in ["x.json", "c.json", "n.json"] {
            assert!(!file(&r, path).accepted, "{path}");
        }
        assert!(errors(file(&r, "x.json"))[0].contains("\"Panel\" cannot be provisioned"));
        assert!(errors(file(&r, "c.json"))[0].contains("did you mean Dashboard?"));
        assert!(errors(file(&r, "n.json"))[0].contains("no `kind` field"));
        assert!(file(&r, "p.json").accepted);
        // An EphemeralDashboard that does not decode (no spec) skips its whole file.
        let list = format!(
            r#"[{}, {{"kind":"EphemeralDashboard","metadata":{{"name":"t","project":"p"}}}}]"#,
            dashboard("p", "d")
        );
        let r = lint(&[("l.json", &list)], &["p"]);
        let f = file(&r, "l.json");
        assert!(!f.accepted);
        assert!(f.resources.iter().all(|r| r.status == Status::Refused));
        assert_eq!(errors(f).len(), 2, "{:?}", errors(f));
    }

    #[test]
    fn project_scoped_kinds_without_a_project_are_stored_outside_any() {
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
                (
                    "list.json",
                    &format!("[{}, {}]", dashboard("", "lost"), dashboard("p", "kept")),
                ),
            ],
            &["p"],
        );
        assert!(errors(file(&r, "empty.json"))[0].contains("metadata.project is empty"));
        assert!(errors(file(&r, "missing.json"))[0].contains("metadata.project is missing"));
        assert!(
            errors(file(&r, "missing.json"))[0]
                .contains("(Perses v0.54 stores it outside any project")
        );
        // Perses reads the files and stores the resources with no project: an error, since no
        // project shows them, but not a reason to drop the other objects of the file.
        assert!(r.files.iter().all(|f| f.accepted));
        let statuses: Vec<Status> = r.resources().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            // empty.json, list.json (lost, kept), missing.json
            vec![
                Status::StoredUnreachable,
                Status::StoredUnreachable,
                Status::Loaded,
                Status::StoredUnreachable,
            ]
        );
        let s = r.summary();
        assert_eq!((s.resources, s.refused, s.unreachable), (1, 0, 3));
        assert!(r.has_errors());
        assert!(r.human().contains(
            "list.json: note: Perses stores Dashboard lost with no project: only the API reaches it\n"
        ));
    }

    #[test]
    fn the_project_must_exist_in_the_tree_or_be_known() {
        let dash = dashboard("p", "d");
        let alone = lint(&[("d.json", &dash)], &[]);
        let f = file(&alone, "d.json");
        // Perses reads the file and refuses the object (`applyEntity`).
        assert!(f.accepted);
        assert_eq!(f.resources[0].status, Status::Refused);
        assert_eq!(errors(f).len(), 1);
        assert!(errors(f)[0].contains("project \"p\" does not exist"));
        assert!(errors(f)[0].contains("--known-project p"));

        let known = lint(&[("d.json", &dash)], &["p"]);
        assert_eq!(file(&known, "d.json").resources[0].status, Status::Loaded);
        assert!(!known.has_errors());

        let tree = lint(
            &[
                ("sub/d.json", &dash),
                ("z-project.yaml", "kind: Project\nmetadata:\n  name: p\n"),
            ],
            &[],
        );
        assert_eq!(
            file(&tree, "sub/d.json").resources[0].status,
            Status::Loaded
        );
        assert!(!tree.has_errors(), "{tree:#?}");

        // Only the object in the missing project is refused; the rest of its file loads.
        let list = format!(
            "[{}, {}]",
            dashboard("p", "one"),
            dashboard("nowhere", "two")
        );
        let r = lint(&[("l.json", &list)], &["p"]);
        let f = file(&r, "l.json");
        assert!(f.accepted);
        let statuses: Vec<Status> = f.resources.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![Status::Loaded, Status::Refused]);
        assert!(r.human().contains(
            "l.json: note: Perses reads this file but refuses 1 of its 2 resources: Dashboard nowhere/two; the others load"
        ));
        let s = r.summary();
        assert_eq!(
            (s.accepted, s.skipped, s.resources, s.refused),
            (1, 0, 1, 1)
        );
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
        assert!(d.accepted);
        assert_eq!(d.resources[0].status, Status::Refused);
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
        assert_eq!(file(&r, "d.json").resources[0].status, Status::Loaded);
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
        assert!(f.resources.iter().all(|r| r.status == Status::Refused));
        // The problems of the bad object, at its line, and nothing for the good ones.
        assert!(
            f.problems.iter().all(|p| p.line == Some(3)),
            "{:?}",
            f.problems
        );
        assert_eq!(errors(f).len(), 1, "{:?}", f.problems);
        assert!(errors(f)[0].contains("metadata.name \"bad name\""));
        assert!(warnings(f)[0].contains("spec is empty"));
        let s = r.summary();
        assert_eq!((s.files, s.accepted, s.skipped), (2, 1, 1));
        assert_eq!(s.resources, 1, "only the Project of p.json is loaded");
        assert_eq!(s.refused, 3);
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
                ("m.json", &dashboard("q", "m")),
                ("broken.json", "{"),
                ("notes.txt", "x"),
            ],
            &[],
        );
        let v = r.to_json();
        assert_eq!(v["format_version"], "2.0");
        let files = v["files"].as_array().unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            vec!["bad.json", "broken.json", "d.json", "m.json", "p.json"]
        );
        assert_eq!(files[0]["status"], "accepted");
        assert_eq!(
            files[0]["resources"][0],
            json!({"kind": "Dashboard", "project": null, "name": "x",
                   "status": "stored-unreachable", "overwritten_by": null})
        );
        assert_eq!(files[0]["problems"][0]["severity"], "error");
        assert_eq!(files[0]["problems"][0]["line"], Value::Null);
        assert_eq!(files[1]["status"], "skipped");
        assert_eq!(files[2]["status"], "accepted");
        assert_eq!(
            files[2]["resources"][0],
            json!({"kind": "Dashboard", "project": "p", "name": "d", "status": "loaded",
                   "overwritten_by": null})
        );
        assert_eq!(files[3]["resources"][0]["status"], "refused");
        assert_eq!(files[4]["resources"][0]["project"], Value::Null);
        assert_eq!(
            v["summary"],
            json!({"files": 5, "accepted": 4, "skipped": 1, "ignored": 1, "resources": 2,
                   "kinds": {"Dashboard": 1, "Project": 1}, "refused": 1,
                   "stored_unreachable": 1, "errors": 3, "warnings": 0})
        );
        assert_eq!(v["ignored"], json!(["notes.txt"]));
        // The printed form keeps the documented key order and parses to the same value.
        let text = r.to_json_string();
        assert!(text.starts_with("{\n  \"format_version\": \"2.0\",\n  \"root\": \"\","));
        assert!(text.contains(
            "\"name\": \"d\",\n          \"status\": \"loaded\",\n          \"overwritten_by\": null"
        ), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn human_output_has_one_line_per_problem_and_a_summary() {
        let r = lint(
            &[
                ("p.json", PROJECT_P),
                ("d.json", &dashboard("p", "d")),
                ("bad.json", &dashboard("", "x")),
                ("m.json", &dashboard("q", "m")),
                ("broken.json", "{"),
            ],
            &[],
        );
        let text = r.human();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert!(
            lines[0].starts_with("bad.json: error: Dashboard x: metadata.project is empty"),
            "{text}"
        );
        assert!(
            lines[1]
                == "bad.json: note: Perses stores Dashboard x with no project: only the API reaches it",
            "{text}"
        );
        assert!(lines[2].starts_with("broken.json:"), "{text}");
        assert_eq!(lines[3], "broken.json: note: Perses skips this whole file");
        assert!(
            lines[4].starts_with("m.json: error: Dashboard q/m: project \"q\" does not exist"),
            "{text}"
        );
        assert_eq!(
            lines[5],
            "m.json: note: Perses reads this file but refuses its only resource: Dashboard q/m"
        );
        assert_eq!(
            lines[6],
            "5 files: 4 accepted, 1 skipped; 2 resources loaded (1 Dashboard, 1 Project), 1 refused, 1 outside any project; 3 errors, 0 warnings; 0 other files ignored"
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

    #[test]
    fn names_and_projects_are_compared_as_perses_stores_them() {
        let r = lint(
            &[
                ("a.json", &dashboard("p", "CaseDash")),
                ("b.json", &dashboard("P", "casedash")),
                ("c.json", &dashboard("JUDGE", "d")),
                ("j.yaml", "kind: Project\nmetadata:\n  name: judge\n"),
            ],
            &["p"],
        );
        let a = file(&r, "a.json");
        assert_eq!(a.resources[0].status, Status::Loaded);
        assert_eq!(a.resources[0].overwritten_by.as_deref(), Some("b.json"));
        assert_eq!(file(&r, "b.json").resources[0].overwritten_by, None);
        assert!(
            errors(a)[0].contains(
                "Dashboard p/CaseDash is also defined in b.json (`Dashboard P/casedash` and \
                 `Dashboard p/CaseDash` are one resource: Perses lowercases names and projects)"
            ),
            "{:?}",
            errors(a)
        );
        // Project JUDGE is project judge.
        let c = file(&r, "c.json");
        assert_eq!(c.resources[0].status, Status::Loaded);
        assert!(errors(c).is_empty(), "{:?}", errors(c));
        // So is a known project.
        let r = lint(&[("d.json", &dashboard("perses", "d"))], &["Perses"]);
        assert!(!r.has_errors());
        assert_eq!(
            r.resources().next().unwrap().stored_key().to_string(),
            "Dashboard perses/d"
        );
    }

    #[test]
    fn duplicates_in_one_list_mark_the_earlier_ones_overwritten() {
        let list = format!(
            "[{}, {}, {}]",
            dashboard("p", "d"),
            dashboard("p", "D"),
            dashboard("p", "e")
        );
        let r = lint(&[("l.json", &list)], &["p"]);
        let f = file(&r, "l.json");
        let over: Vec<Option<&str>> = f
            .resources
            .iter()
            .map(|r| r.overwritten_by.as_deref())
            .collect();
        assert_eq!(over, vec![Some("l.json"), None, None]);
        assert!(warnings(f)[0].contains("defined 2 times in this file"));
        // A refused definition overwrites nothing.
        let list = format!(
            "[{}, {}]",
            dashboard("p", "d"),
            r#"{"kind":"EphemeralDashboard","metadata":{"name":"d","project":"p"},"spec":{}}"#
        );
        let r = lint(&[("l.json", &list)], &["p"]);
        assert!(r.resources().all(|r| r.overwritten_by.is_none()));
    }

    fn secret_with_tags(tags: &str) -> String {
        format!(r#"{{"kind":"GlobalSecret","metadata":{{"name":"s","tags":{tags}}},"spec":{{}}}}"#)
    }

    #[test]
    fn tags_are_checked_as_perses_decodes_them() {
        let many = |n: usize| {
            let t: Vec<String> = (0..n).map(|i| format!("\"t{i}\"")).collect();
            format!("[{}]", t.join(","))
        };
        let twenty_and_a_duplicate = format!("{},\"t0\"]", many(20).trim_end_matches(']'));
        let long = format!("[\"{}\"]", "é".repeat(51));
        let fifty = format!("[\"{}\"]", "é".repeat(50));
        let cases: Vec<(String, Option<&str>)> = vec![
            ("null".into(), None),
            ("[]".into(), None),
            (fifty, None),
            (twenty_and_a_duplicate, None),
            (
                many(21),
                Some("holds 21 different tags; Perses allows at most 20"),
            ),
            (
                long,
                Some("is 51 characters long; Perses allows at most 50"),
            ),
            (
                "[\" padded\"]".into(),
                Some("starts or ends with whitespace"),
            ),
            (
                "[\"x\\u00a0\"]".into(),
                Some("starts or ends with whitespace"),
            ),
            ("[\"  \"]".into(), Some("is empty")),
            ("[null]".into(), Some("is empty")),
            ("[1]".into(), Some("must hold strings, found a number")),
            (
                "\"a\"".into(),
                Some("must be a list of strings, found a string"),
            ),
        ];
        for (tags, expected) in cases {
            let r = lint(&[("s.json", &secret_with_tags(&tags))], &[]);
            let f = file(&r, "s.json");
            match expected {
                None => {
                    assert!(f.accepted, "{tags}: {:?}", f.problems);
                    assert!(f.problems.is_empty(), "{tags}: {:?}", f.problems);
                }
                Some(text) => {
                    assert!(!f.accepted, "{tags}");
                    assert!(errors(f)[0].contains(text), "{tags}: {:?}", errors(f));
                }
            }
        }
        // YAML turns a scalar into a string; JSON does not (see the `[1]` case above).
        let yaml = "kind: GlobalSecret\nmetadata:\n  name: s\n  tags: [1, true]\nspec: {}\n";
        let r = lint(&[("s.yaml", yaml)], &[]);
        assert!(file(&r, "s.yaml").accepted, "{r:#?}");
        // Tags are checked on every kind, and skip the whole file.
        let mut tagged: Value = serde_json::from_str(&dashboard("p", "t")).unwrap();
        tagged["metadata"]["tags"] = json!([""]);
        let list = format!("[{}, {tagged}]", dashboard("p", "beside"));
        let r = lint(&[("l.json", &list)], &["p"]);
        assert!(!file(&r, "l.json").accepted);
    }

    fn dashboard_with_spec(spec: Value) -> String {
        json!({"kind": "Dashboard", "metadata": {"name": "d", "project": "p"}, "spec": spec})
            .to_string()
    }

    #[test]
    fn layout_references_must_name_a_panel() {
        let grid = |reference: &str| {
            json!({"panels": {"a": {"kind": "Panel", "spec": {}}},
                   "layouts": [{"kind": "Grid", "spec": {"items": [
                       {"x": 0, "y": 0, "width": 1, "height": 1,
                        "content": {"$ref": reference}}]}}]})
        };
        let tabs = |reference: &str| {
            json!({"panels": {}, "layouts": [{"kind": "Tabs", "spec": {"tabs": [{"name": "t",
                   "items": [{"content": {"$ref": reference}}]}]}}]})
        };
        let cases = [
            (grid("#/spec/panels/a"), None),
            (grid("/spec/panels/a"), None),
            (
                grid("#/spec/panels/nope"),
                Some("names no panel of spec.panels"),
            ),
            (
                grid("#/spec/other/a"),
                Some("does not point into spec.panels"),
            ),
            (
                grid("#/spec/panels/a/b"),
                Some("does not point into spec.panels"),
            ),
            (
                grid("#/spec/panels/a.b"),
                Some("is not a reference Perses accepts"),
            ),
            (grid(""), Some("is not a reference Perses accepts")),
            // Perses resolves the references of Grid layouts only.
            (tabs("#/spec/panels/nope"), None),
            (
                tabs("#/spec/panels/a b"),
                Some("is not a reference Perses accepts"),
            ),
            // Checked by hand against Perses v0.54: the server panics and exits.
            (
                json!({"layouts": [{"kind": "Grid", "spec": {"items": [{"x": 0}]}}]}),
                Some("the item has no content: Perses v0.54 crashes on it"),
            ),
            (
                json!({"layouts": [{"kind": "Tabs", "spec": {"tabs": [{"items": [{"x": 0}]}]}}]}),
                None,
            ),
            (
                json!({"layouts": [{"kind": "Grid", "spec": {"items": [{"content": "a"}]}}]}),
                Some("content must be an object, found a string"),
            ),
            (
                json!({"layouts": [{"kind": "Rows", "spec": {}}]}),
                Some("unknown layout kind \"Rows\""),
            ),
        ];
        for (spec, expected) in cases {
            let r = lint(&[("d.json", &dashboard_with_spec(spec.clone()))], &["p"]);
            let f = file(&r, "d.json");
            match expected {
                None => assert!(f.accepted && !r.has_errors(), "{spec}: {:?}", f.problems),
                Some(text) => {
                    assert!(!f.accepted, "{spec}");
                    assert!(errors(f)[0].contains(text), "{spec}: {:?}", errors(f));
                }
            }
        }
    }

    #[test]
    fn the_variable_name_rule_is_perses_regexp() {
        for ok in ["job", "my-var", "a.b", "_", "x1", "1x", "-", "1-", "123a"] {
            assert_eq!(variable_name_problem(ok), None, "{ok}");
        }
        for bad in ["", "123", "a-b-c", "node-exporter-job", "a.b.c", "0"] {
            assert!(
                variable_name_problem(bad).unwrap().contains("is not valid"),
                "{bad}"
            );
        }
        assert!(variable_name_problem("__x").unwrap().contains("`__`"));
    }

    #[test]
    fn variable_names_refuse_one_object_or_skip_the_file() {
        let variable = |name: &str| {
            format!(
                r#"{{"kind":"Variable","metadata":{{"name":"{name}","project":"p"}},"spec":{{}}}}"#
            )
        };
        let global = r#"{"kind":"GlobalVariable","metadata":{"name":"a-b-c"},"spec":{}}"#;
        let list = format!("[{}, {}, {global}]", variable("ok-var"), variable("a-b-c"));
        let r = lint(&[("v.json", &list)], &["p"]);
        let f = file(&r, "v.json");
        assert!(f.accepted);
        let statuses: Vec<Status> = f.resources.iter().map(|r| r.status).collect();
        // The Variable service checks the name; the GlobalVariable service does not (v0.54).
        assert_eq!(
            statuses,
            vec![Status::Loaded, Status::Refused, Status::Loaded]
        );
        assert_eq!(errors(f).len(), 1);
        assert!(errors(f)[0].contains("Variable p/a-b-c: variable name \"a-b-c\" is not valid"));

        let var = |kind: &str, name: &str| json!({"kind": kind, "spec": {"name": name}});
        // (variables, what Perses does, error): the service's refusal costs the dashboard, a
        // decoding error its whole file.
        enum Outcome {
            Loaded,
            ObjectRefused(&'static str),
            FileSkipped(&'static str),
        }
        use Outcome::{FileSkipped, ObjectRefused};
        let cases = [
            (vec![var("TextVariable", "a-b")], Outcome::Loaded),
            (
                vec![var("TextVariable", "a-b-c")],
                ObjectRefused("the Dashboard service refuses the dashboard"),
            ),
            (vec![var("ListVariable", "__x")], ObjectRefused("`__`")),
            // Only digits: TextVariable fails decoding, ListVariable the service's rule.
            (
                vec![var("TextVariable", "123")],
                FileSkipped("holds only digits"),
            ),
            (
                vec![var("ListVariable", "123")],
                ObjectRefused("is not valid"),
            ),
            (
                vec![var("TextVariable", "a b")],
                FileSkipped("contains ' '"),
            ),
            (vec![var("TextVariable", "")], FileSkipped("has no name")),
            (vec![var("Other", "a")], FileSkipped("neither ListVariable")),
            (
                vec![var("TextVariable", "a"), var("ListVariable", "a")],
                FileSkipped("defined twice"),
            ),
        ];
        for (variables, outcome) in cases {
            let spec = json!({"variables": variables});
            let list = format!(
                "[{}, {}]",
                dashboard_with_spec(spec.clone()),
                dashboard("p", "e")
            );
            let r = lint(&[("d.json", &list)], &["p"]);
            let f = file(&r, "d.json");
            let statuses: Vec<Status> = f.resources.iter().map(|r| r.status).collect();
            let (accepted, expected, text) = match outcome {
                Outcome::Loaded => (true, vec![Status::Loaded, Status::Loaded], None),
                ObjectRefused(t) => (true, vec![Status::Refused, Status::Loaded], Some(t)),
                FileSkipped(t) => (false, vec![Status::Refused, Status::Refused], Some(t)),
            };
            assert_eq!(f.accepted, accepted, "{spec}");
            assert_eq!(statuses, expected, "{spec}");
            match text {
                Some(t) => assert!(errors(f)[0].contains(t), "{spec}: {:?}", errors(f)),
                None => assert!(errors(f).is_empty(), "{spec}: {:?}", errors(f)),
            }
        }
    }

    fn datasource(
        kind: &str,
        project: Option<&str>,
        name: &str,
        plugin: &str,
        default: bool,
    ) -> String {
        let mut v = json!({"kind": kind, "metadata": {"name": name},
                           "spec": {"default": default, "plugin": {"kind": plugin, "spec": {}}}});
        if let Some(p) = project {
            v["metadata"]["project"] = json!(p);
        }
        v.to_string()
    }

    #[test]
    fn one_default_datasource_per_plugin_kind_and_project() {
        let ds = |p: &str, n: &str, plugin: &str, d: bool| {
            datasource("Datasource", Some(p), n, plugin, d)
        };
        let r = lint(
            &[
                ("a.json", &ds("p", "one", "Prom", true)),
                ("b.json", &ds("p", "two", "Prom", true)),
                ("c.json", &ds("p", "loki", "Loki", true)),
                ("d.json", &ds("q", "other-project", "Prom", true)),
                ("e.json", &ds("p", "not-default", "Prom", false)),
                // Redefining the default one is an update, not a second default.
                ("f.json", &ds("p", "ONE", "Prom", true)),
            ],
            &["p", "q"],
        );
        let status = |path: &str| file(&r, path).resources[0].status;
        assert_eq!(status("a.json"), Status::Loaded);
        assert_eq!(status("b.json"), Status::Refused);
        for path in ["c.json", "d.json", "e.json", "f.json"] {
            assert_eq!(status(path), Status::Loaded, "{path}");
        }
        let b = errors(file(&r, "b.json"));
        assert_eq!(b.len(), 1);
        assert!(
            b[0].contains(
                "a default \"Prom\" Datasource already exists in project p: Datasource p/one (a.json)"
            ),
            "{b:?}"
        );
        // The error of a duplicate is still there (a.json and f.json define one resource).
        assert!(errors(file(&r, "a.json"))[0].contains("also defined in f.json"));

        // Once the first default is no longer one, another may be.
        let r = lint(
            &[
                ("a.json", &ds("p", "one", "Prom", true)),
                ("b.json", &ds("p", "one", "Prom", false)),
                ("c.json", &ds("p", "two", "Prom", true)),
            ],
            &["p"],
        );
        assert!(r.resources().all(|r| r.status == Status::Loaded));

        // A project-less default meets the defaults of every project (the file database lists
        // them all); a GlobalDatasource only other GlobalDatasources.
        let r = lint(
            &[
                ("a.json", &ds("p", "one", "Prom", true)),
                (
                    "b.json",
                    &datasource("Datasource", None, "lost", "Prom", true),
                ),
                (
                    "c.json",
                    &datasource("GlobalDatasource", None, "g1", "Prom", true),
                ),
                (
                    "d.json",
                    &datasource("GlobalDatasource", None, "g2", "Prom", true),
                ),
            ],
            &["p"],
        );
        let statuses: Vec<Status> = r.resources().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            vec![
                Status::Loaded,
                Status::Refused,
                Status::Loaded,
                Status::Refused
            ]
        );
    }
}
