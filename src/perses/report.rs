//! The lint report: problems, resources and their statuses, per file, and its JSON and human
//! forms.

use super::FORMAT_VERSION;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

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
pub(crate) fn lower(s: &str) -> String {
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
pub(crate) fn file_notes(f: &FileReport) -> Vec<String> {
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
pub(crate) fn listing(items: &[String]) -> String {
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

pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
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
