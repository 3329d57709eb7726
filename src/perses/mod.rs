//! The Perses domain: resource kinds, decoding files as Perses does (JSON and YAML, with
//! lines), the checks of each kind, and the lint report: what Perses v0.54's provisioning does
//! with each file and each resource in it.
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
//!    layout references, dashboard variables), and whose Go types the two decoders enforce in
//!    their own ways (`checks/types.rs`: JSON is strict, YAML turns scalars into strings, reads
//!    `yes` as a bool, truncates floats into integers, and skips the decoder of a `null`). One
//!    object that fails makes Perses skip the whole file: the file is not `accepted`, and every
//!    resource of it is `Refused`.
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
//! create a resource (only the shape every schema shares is checked: a plugin has a kind, its
//! spec is an object), and dashboard variable references (`$name`), which depend on what the
//! server stores. A resource that passes here can still be refused there, one at a time.

mod checks;
mod decode;
mod linter;
mod report;
mod tree;
pub mod yaml;
pub mod yaml_block;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use checks::check_name;
pub use decode::{ParsedFile, ParsedObject, parse_file, parse_resources};
pub use linter::{LintPool, Linter, file_resources, lint_files, lint_tree};
pub use report::{
    FileReport, Note, Problem, Report, Resource, ResourceKey, Severity, Status, Summary,
};
pub use tree::{
    LintError, Tree, lint_dir, normalize_sub_path, read_tree, read_tree_at, select_sub_path,
    visit_tree,
};

use std::cmp::Ordering;

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
/// spec, Role and GlobalRole one without `permissions`, the bindings one without a role; a
/// Dashboard's `{}` (and its `null` in a JSON file) decodes to a non-zero spec.
pub const SPEC_REQUIRED_KINDS: [&str; 7] = [
    "Dashboard",
    "Datasource",
    "GlobalDatasource",
    "GlobalRole",
    "GlobalRoleBinding",
    "Role",
    "RoleBinding",
];

/// File name endings Perses reads; compared case-sensitively, as Go's `filepath.Ext` does.
pub const RESOURCE_EXTENSIONS: [&str; 3] = [".json", ".yaml", ".yml"];

/// Whether Perses reads a file with this name.
pub fn is_resource_file(path: &str) -> bool {
    RESOURCE_EXTENSIONS.iter().any(|ext| path.ends_with(ext))
}

/// Orders paths as Go's `filepath.Walk` visits them (name by name), so that "the last file read"
/// in a message is the one Perses reads last: `a/b.json` comes before `a.json`.
pub fn cmp_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}
