//! The checks of one decoded object, by kind: what Perses' decoding refuses (the whole file is
//! then skipped), what its services refuse when they create the resource (only that resource),
//! and what it stores where it is unusable.

mod dashboard;
mod datasource;
#[cfg(test)]
mod kinds_tests;
mod layout;
mod rbac;
mod resources;
#[cfg(test)]
mod tests;
mod types;
#[cfg(test)]
mod types_tests;
mod variable;

use super::decode::{ParsedObject, type_name};
use super::report::{Problem, Resource, Status};
use super::{MAX_NAME_LEN, MAX_TAG_LEN, MAX_TAGS, PROJECT_SCOPED_KINDS, PROVISIONABLE_KINDS};
use dashboard::check_dashboard_spec;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use types::{At, Ty, Walk, f, go_scalar_string, go_string, scalar_problem};
use variable::{RESOURCE_VARIABLE_SPEC, variable_name_problem};

/// The problem with a `metadata.name`, if any.
pub fn check_name(name: &str) -> Option<String> {
    id_problem(name).map(|p| match p {
        IdProblem::Empty => "metadata.name is empty".to_string(),
        IdProblem::Bad(why) => format!("metadata.name {name:?} {why}"),
    })
}

pub(crate) enum IdProblem {
    Empty,
    /// What is wrong, as the end of a sentence about the name.
    Bad(String),
}

/// `ValidateID` (perses/spec go/common/validate.go): non-empty, at most 75 bytes, and
/// `^[a-zA-Z0-9_.-]+$`. Used for resource names and dashboard variable names.
pub(crate) fn id_problem(name: &str) -> Option<IdProblem> {
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

/// What one object contributes before the tree-wide checks.
pub(crate) struct Checked {
    pub(crate) resource: Option<Resource>,
    pub(crate) facts: Facts,
    /// Whether Perses decodes this object (its whole file is skipped otherwise).
    pub(crate) decodes: bool,
    /// The project a Project object defines, when it decodes (as written).
    pub(crate) defines_project: Option<String>,
    /// Prefix that names the object in messages of a multi-object file.
    pub(crate) label: String,
}

/// What the tree-wide checks need to know of one resource.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// Perses refuses the object when it applies it, whatever the rest of the tree holds.
    pub(crate) refused: bool,
    /// The project it names, when it must exist (as written, non-empty).
    pub(crate) needs_project: Option<String>,
    /// A project-scoped object with an empty or absent project: stored outside any project.
    pub(crate) no_project: bool,
    /// For a Datasource or GlobalDatasource: `spec.default` and `spec.plugin.kind`.
    pub(crate) datasource: Option<(bool, String)>,
}

/// The problems of one object, by what they make Perses do.
#[derive(Default)]
pub(crate) struct Found {
    /// Decoding fails: Perses skips the whole file.
    pub(crate) decoding: Vec<String>,
    /// Perses refuses this object when it applies it.
    pub(crate) refusals: Vec<String>,
    /// Perses stores it, but where it is unusable.
    pub(crate) unusable: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

pub(crate) fn check_object(
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

    // `Metadata.UnmarshalJSON`/`UnmarshalYAML` (pkg/model/api/v1/metadata.go) validate the
    // name and tags. A missing `metadata`, or a YAML `metadata: null`, never reaches them: the
    // object decodes with an empty name, and Perses stores it under a broken key of its file
    // database, or refuses it as a later "update" of one (model spec §1.8).
    let metadata = match map.get("metadata") {
        Some(Value::Object(m)) => Some(m),
        None => None,
        Some(Value::Null) if !json => None,
        Some(Value::Null) => {
            found.decoding.push(
                "metadata is null: Perses refuses an object without a name (name cannot be \
                 empty)"
                    .into(),
            );
            None
        }
        Some(other) => {
            found.decoding.push(format!(
                "`metadata` must be an object, found {}",
                type_name(other)
            ));
            None
        }
    };
    let nameless = match map.get("metadata") {
        None => true,
        Some(Value::Null) => !json,
        Some(_) => false,
    };
    let name = match metadata.map(|m| m.get("name")) {
        Some(Some(n)) => match scalar_problem_opt(n, json) {
            Some(e) => {
                found.decoding.push(format!("metadata.name {e}"));
                None
            }
            None => {
                let n = go_string(n, json);
                found.decoding.extend(check_name(&n));
                if n == "." || n == ".." {
                    found.refusals.push(format!(
                        "metadata.name {n:?} is a path, not a name: Perses' file database \
                         stores such a {k} in the wrong place, or refuses it as an update of \
                         another resource; choose another name"
                    ));
                }
                Some(n)
            }
        },
        Some(None) => {
            found.decoding.push("metadata.name is missing".into());
            None
        }
        None if nameless && kind.is_some() => {
            found.refusals.push(format!(
                "no `metadata`{}: Perses decodes this {k} with an empty name, then stores it \
                 under a broken key of its file database or refuses it; give it a metadata.name",
                if map.contains_key("metadata") {
                    " (null)"
                } else {
                    ""
                }
            ));
            Some(String::new())
        }
        None => None,
    };
    let empty_meta = Map::new();
    let metadata = metadata.unwrap_or(&empty_meta);
    found
        .decoding
        .extend(check_tags(metadata.get("tags"), json));
    let mut w = Walk::new(json);
    w.fields(metadata, &METADATA_FIELDS, &At::Root("metadata"));
    found.decoding.extend(w.errors);

    let scoped = PROJECT_SCOPED_KINDS.contains(&k);
    let raw_project = metadata.get("project");
    let project = if scoped || ephemeral {
        let typed = raw_project.and_then(|p| scalar_problem_opt(p, json));
        let p = raw_project.map(|p| go_string(p, json)).unwrap_or_default();
        match typed {
            Some(e) => {
                found.decoding.push(format!("metadata.project {e}"));
                None
            }
            None if !p.is_empty() => {
                facts.needs_project = Some(p.clone());
                Some(p)
            }
            // `applyEntity` checks the project only when there is one
            // (internal/api/provisioning/provisioning.go): the service stores the resource
            // with an empty project.
            None if scoped && !nameless => {
                let how = if raw_project.is_some_and(|p| !p.is_null()) {
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
            None => None,
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
            datasource::check_datasource(k, spec, json, &mut found);
            let spec = spec.and_then(Value::as_object).unwrap_or(&empty);
            let plugin = spec
                .get("plugin")
                .and_then(|p| p.get("kind"))
                .map(|p| go_string(p, json))
                .unwrap_or_default();
            facts.datasource = Some((
                spec.get("default")
                    .is_some_and(|d| variable::go_bool(d, json)),
                plugin,
            ));
        }
        "Variable" | "GlobalVariable" => {
            let mut w = Walk::new(json);
            if let Some(s) = spec {
                w.check(s, &RESOURCE_VARIABLE_SPEC, &At::Root("spec"));
            }
            let decodes = w.errors.is_empty();
            found.decoding.extend(w.errors);
            // The Variable service refuses the name when it creates the resource
            // (`validate.Variable`, internal/api/validate/validate.go). GlobalVariable's
            // service does not check it in v0.54 (internal/api/impl/v1/globalvariable).
            if k == "Variable"
                && let Some(p) = name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .and_then(variable_name_problem)
            {
                found
                    .refusals
                    .push(format!("{p}; the Variable service refuses it"));
            }
            // Both services check a list variable's plugin against the plugin schemas
            // (`ValidateVariable`, `ValidateGlobalVariable`).
            let list =
                spec.and_then(|s| s.get("kind")).and_then(Value::as_str) == Some("ListVariable");
            if decodes && list {
                let inner = spec.and_then(|s| s.get("spec"));
                let service = format!("the {k} service refuses it");
                found.refusals.extend(plugin_refusals(
                    inner.and_then(|s| s.get("plugin")),
                    &At::Root("spec.spec.plugin"),
                    json,
                    &service,
                ));
            }
        }
        "Project" => resources::check_project(spec, json, &mut found),
        "Folder" => resources::check_folder(spec, json, &mut found),
        "Secret" | "GlobalSecret" => resources::check_secret(spec, json, &mut found),
        "Role" | "GlobalRole" => rbac::check_role(k, spec, json, &mut found),
        "RoleBinding" | "GlobalRoleBinding" => rbac::check_binding(k, spec, json, &mut found),
        "User" => resources::check_user(spec, json, &mut found),
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
        Some(r) if !r.name.is_empty() && !r.kind.is_empty() => format!("{}: ", r.key()),
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
pub(crate) fn check_tags(tags: Option<&Value>, json: bool) -> Vec<String> {
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
            // A null element decodes to "" in JSON; yaml.v3 drops it.
            Value::Null if json => String::new(),
            Value::Null => continue,
            // YAML decodes a scalar into a string (`1` is "1"); JSON refuses it.
            Value::Number(_) | Value::Bool(_) if !json => {
                go_scalar_string(item).unwrap_or_default()
            }
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

pub(crate) fn kind_message(kind: &str) -> String {
    if kind.is_empty() {
        return "`kind` is empty: Perses cannot tell what this object is (write Dashboard, \
                Project, ...)"
            .into();
    }
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

static TIME: Ty = Ty::Time;
static UINT: Ty = Ty::Uint;
/// The fields of `Metadata` besides name and tags (checked above): times and the version,
/// which Perses overwrites but still decodes.
static METADATA_FIELDS: [types::Field; 3] = [
    f("createdAt", &TIME),
    f("updatedAt", &TIME),
    f("version", &UINT),
];

/// `scalar_problem` for a string field, `null` included (it decodes to "").
fn scalar_problem_opt(v: &Value, json: bool) -> Option<String> {
    if v.is_null() {
        return None;
    }
    scalar_problem(v, &Ty::Str, json)
}

/// The kinds of pkg/model/api/v1/kind.go, for `Kind` fields inside a spec (a folder item, a
/// binding subject): `GetKind` matches them case-insensitively.
const V1_KINDS: [&str; 15] = [
    "Dashboard",
    "Datasource",
    "EphemeralDashboard",
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

/// The canonical spelling of a v1 kind written in any case.
pub(crate) fn v1_kind(kind: &str) -> Option<&'static str> {
    V1_KINDS
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(kind))
}

/// `Kind.validate`: non-empty and a v1 kind (any case), for a JSON `null` too.
pub(crate) static V1_KIND: Ty = Ty::Checked(&Ty::Str, v1_kind_hook);

fn v1_kind_hook(v: &Value, w: &mut Walk, at: &At) {
    let kind = go_string(v, w.json);
    if kind.is_empty() {
        w.error(format!(
            "{at} is empty: Perses refuses it (kind cannot be empty)"
        ));
    } else if v1_kind(&kind).is_none() {
        w.error(format!(
            "{at} {kind:?} is not a kind Perses knows (unknown kind)"
        ));
    }
}

/// What a service refuses in a plugin that decodes, before any schema can judge it: no plugin
/// at all (missing, or a YAML `null`: its kind is empty, and no plugin schema matches an empty
/// kind), or a `spec` that is no object (every Perses plugin schema describes an object).
/// Whether a plugin of that kind exists is left to the plugin schemas.
pub(crate) fn plugin_refusals(
    plugin: Option<&Value>,
    at: &At,
    json: bool,
    service: &str,
) -> Vec<String> {
    match plugin {
        None => vec![format!(
            "{at} is missing: no plugin schema matches a plugin without a kind (schema not \
             found); {service}"
        )],
        Some(Value::Null) if !json => vec![format!(
            "{at} is null: no plugin schema matches a plugin without a kind (schema not \
             found); {service}"
        )],
        Some(Value::Object(p)) => match p.get("spec") {
            Some(s) if !s.is_null() && !s.is_object() => vec![format!(
                "{at}.spec must be an object, found {}: every plugin schema describes one; \
                 {service}",
                type_name(s)
            )],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
