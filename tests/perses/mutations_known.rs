//! The disagreements between `perses-oci lint` and the Perses v0.54.0 server that
//! `tests/perses_mutations.rs` expects, each with its reason.

#![allow(dead_code)]

use super::mutate::{Format, Mutation};

/// What happens to one mutation file (one resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The file does not decode: Perses skips it whole.
    Skipped,
    /// The file decodes, the resource is refused when applied.
    Refused,
    /// Stored in its project (or globally).
    Stored,
    /// Stored with no project (a project-scoped kind).
    Orphan,
    /// lint only: stored, but lint reports an error (it exits 1).
    Flagged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Skipped => "skipped",
            Outcome::Refused => "refused",
            Outcome::Stored => "stored",
            Outcome::Orphan => "stored, no project",
            Outcome::Flagged => "stored, lint error",
        }
    }
}

/// Why lint and Perses differ on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// Plugin kinds and specs: only the plugin's CUE schema knows them.
    PluginSchemas,
    /// Perses stores it where nothing can use it; lint refuses it.
    UselessStore,
    /// Dashboard variables that use a variable nobody defines.
    VariableReferences,
    /// One resource defined in two files: an error for lint.
    Duplicates,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::PluginSchemas => "plugin schemas",
            Why::UselessStore => "stored uselessly (lint stricter)",
            Why::VariableReferences => "variable references (not replayed)",
            Why::Duplicates => "duplicates across files (lint stricter)",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Why::PluginSchemas => {
                "Perses refuses a plugin kind no installed plugin provides, and a plugin spec \
                 its CUE schema refuses (`schema not found for plugin ...`). lint has no plugin \
                 schemas: which plugins exist depends on the server, so it predicts such a \
                 resource stored (`percli lint --plugin.path` or `--online` checks them). A \
                 YAML plugin kind written as a number or a bool is read as its text (`5`, \
                 `true`), a name no plugin has."
            }
            Why::UselessStore => {
                "A project resource named `.` is accepted by Perses' name rule \
                 (`^[a-zA-Z0-9_.-]+$`), and its file database stores it as \
                 `KIND/PROJECT.json`, outside the project's folder: the API lists it, nothing \
                 reads it back as the resource it is. lint refuses `.` and `..` (a global `.`, \
                 or any `..`, Perses refuses itself as an update of another file)."
            }
            Why::VariableReferences => {
                "Renaming (or, in YAML, nulling) the dashboard variable `job` leaves `$job` in the plugin spec of \
                 the variable `instance` undefined, so the Dashboard service refuses the \
                 dashboard (`BuildVariableOrder`, pkg/model/api/v1/utils/\
                 variable_build_order.go). Which variables exist depends on the Variables and \
                 GlobalVariables the server stores, and on the order it applies the files in: \
                 lint does not replay it (as in tests/perses_judge.rs)."
            }
            Why::Duplicates => {
                "The JSON and the YAML mutation of `metadata.name` to the same valid name (`-`, \
                 `MiXeD-Case`, and for a GlobalVariable the names only Variables refuse) define \
                 one resource in two files. Perses stores both in turn and serves the one it \
                 reads last; lint predicts the same (loaded, `overwritten_by` on the first), \
                 and reports each definition as an error, since a tree whose files overwrite \
                 each other is a mistake."
            }
        }
    }
}

/// An expected disagreement: the mutations it covers (`*` in `kind`, `gpath` and `what`
/// matches anything) and both outcomes.
pub struct Known {
    pub kind: &'static str,
    pub gpath: &'static str,
    pub what: &'static str,
    /// `None`: both formats.
    pub format: Option<Format>,
    pub lint: Outcome,
    pub perses: Outcome,
    pub why: Why,
}

impl Known {
    pub fn matches(&self, m: &Mutation, lint: Outcome, perses: Outcome) -> bool {
        glob(self.kind, m.kind)
            && glob(self.gpath, &m.gpath)
            && glob(self.what, &m.what)
            && self.format.is_none_or(|f| f == m.format)
            && self.lint == lint
            && self.perses == perses
    }
}

/// `*` matches any run of characters.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

use Outcome::{Flagged, Refused, Stored};

const fn k(
    kind: &'static str,
    gpath: &'static str,
    what: &'static str,
    format: Option<Format>,
    lint: Outcome,
    perses: Outcome,
    why: Why,
) -> Known {
    Known {
        kind,
        gpath,
        what,
        format,
        lint,
        perses,
        why,
    }
}

const YAML: Option<Format> = Some(Format::Yaml);

/// Every expected disagreement: (kind, generalised field, mutation, format, lint, Perses, why).
#[rustfmt::skip]
pub fn known() -> Vec<Known> {
    use Why::*;
    vec![
        k("*", "*plugin.kind", "\"Foo\"", None, Stored, Refused, PluginSchemas),
        k("*", "*plugin.kind", "5", YAML, Stored, Refused, PluginSchemas),
        k("*", "*plugin.kind", "true", YAML, Stored, Refused, PluginSchemas),
        k("*", "metadata.name", "\".\"", None, Refused, Stored, UselessStore),
        k("*", "metadata.name", "*", None, Flagged, Stored, Duplicates),
        k("Dashboard", "spec.variables[ListVariable].spec.name", "*", None, Stored, Refused, VariableReferences),
        // yaml.v3 drops a null item of a list: the variable job is gone.
        k("Dashboard", "spec.variables[ListVariable]", "null", YAML, Stored, Refused, VariableReferences),
    ]
}
