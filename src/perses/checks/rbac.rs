//! Role, GlobalRole, RoleBinding and GlobalRoleBinding specs, as Perses decodes them
//! (pkg/model/api/v1/role.go, role/{action,permission,scope}.go, rolebinding.go); their
//! services check nothing more.

use super::types::{At, Ty, Walk, f, go_string};
use super::{Found, v1_kind};
use serde_json::Value;

static STR: Ty = Ty::Str;

const ACTIONS: [&str; 5] = ["read", "create", "update", "delete", "*"];
const SCOPES: [&str; 16] = [
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
    "*",
];
/// `role.IsGlobalScope`: compared as written (case-sensitive).
const GLOBAL_SCOPES: [&str; 6] = [
    "GlobalDatasource",
    "GlobalRole",
    "GlobalRoleBinding",
    "GlobalSecret",
    "GlobalVariable",
    "User",
];

/// `Action.validate`: non-empty, one of read, create, update, delete, `*` (any case).
static ACTION: Ty = Ty::Checked(&STR, action);
static ACTION_LIST: Ty = Ty::List(&ACTION);

fn action(v: &Value, w: &mut Walk, at: &At) {
    let a = go_string(v, w.json);
    if a.is_empty() {
        w.error(format!(
            "{at} is empty: Perses refuses an empty action (kind cannot be empty); use one of {}",
            ACTIONS.join(", ")
        ));
    } else if !ACTIONS.iter().any(|x| x.eq_ignore_ascii_case(&a)) {
        w.error(format!(
            "{at} {a:?} is not an action Perses knows: use one of {}",
            ACTIONS.join(", ")
        ));
    }
}

/// `Scope.validate`: non-empty, a kind or `*` (any case).
static SCOPE: Ty = Ty::Checked(&STR, scope);
static SCOPE_LIST: Ty = Ty::List(&SCOPE);

fn scope(v: &Value, w: &mut Walk, at: &At) {
    let s = go_string(v, w.json);
    if s.is_empty() {
        w.error(format!("{at} is empty: Perses refuses an empty scope"));
    } else if !SCOPES.iter().any(|x| x.eq_ignore_ascii_case(&s)) {
        w.error(format!(
            "{at} {s:?} is not a scope Perses knows: use a kind, such as Dashboard, or *"
        ));
    }
}

/// `Permission.validate`: at least one action and one scope (a JSON `null` permission too).
static PERMISSION: Ty = Ty::Checked(
    &Ty::Struct(&[f("actions", &ACTION_LIST), f("scopes", &SCOPE_LIST)]),
    permission,
);
static PERMISSIONS: Ty = Ty::List(&PERMISSION);
static ROLE_SPEC: Ty = Ty::Struct(&[f("permissions", &PERMISSIONS)]);

fn permission(v: &Value, w: &mut Walk, at: &At) {
    for key in ["actions", "scopes"] {
        let n = match v.get(key) {
            Some(Value::Array(items)) => items.iter().filter(|x| w.json || !x.is_null()).count(),
            _ => 0,
        };
        if n == 0 {
            w.error(format!(
                "{at}.{key} is missing or empty: Perses refuses a permission without {key}"
            ));
            return;
        }
    }
}

/// A Role's or GlobalRole's spec: `Role.validate` refuses a zero spec (no `permissions` list;
/// an empty one is fine, and so is YAML's `[null]`, which decodes to it), and in a Role a
/// global scope written exactly as Perses spells it.
pub(crate) fn check_role(kind: &str, spec: Option<&Value>, json: bool, found: &mut Found) {
    let mut w = Walk::new(json);
    if let Some(s) = spec {
        w.check(s, &ROLE_SPEC, &At::Root("spec"));
    }
    let permissions = spec.and_then(|s| s.get("permissions"));
    if w.errors.is_empty() && !matches!(permissions, Some(Value::Array(_))) {
        w.error(format!(
            "spec.permissions is missing: Perses refuses a {kind} without it (spec cannot be \
             empty); write a list of permissions, even []"
        ));
    }
    if kind == "Role"
        && let Some(Value::Array(perms)) = permissions
    {
        for (i, p) in perms.iter().enumerate() {
            let Some(Value::Array(scopes)) = p.get("scopes") else {
                continue;
            };
            for (j, s) in scopes.iter().enumerate() {
                let s = go_string(s, json);
                if GLOBAL_SCOPES.contains(&s.as_str()) {
                    w.error(format!(
                        "spec.permissions[{i}].scopes[{j}] {s:?} is a global scope: Perses \
                         refuses it in a Role (use a GlobalRole)"
                    ));
                }
            }
        }
    }
    found.decoding.extend(w.errors);
}

/// `Subject.validate`: the kind (a v1 kind, any case) must be User, the name non-empty.
static SUBJECT: Ty = Ty::Checked(
    &Ty::Struct(&[f("kind", &super::V1_KIND), f("name", &STR)]),
    subject,
);
static SUBJECTS: Ty = Ty::List(&SUBJECT);

fn subject(v: &Value, w: &mut Walk, at: &At) {
    let kind = v
        .get("kind")
        .map(|k| go_string(k, w.json))
        .unwrap_or_default();
    if v1_kind(&kind) != Some("User") {
        w.error(format!(
            "{at}.kind {kind:?} is not User: Perses binds roles to users only"
        ));
        return;
    }
    let name = v
        .get("name")
        .map(|n| go_string(n, w.json))
        .unwrap_or_default();
    if name.is_empty() {
        w.error(format!("{at}.name is missing or empty: name the user"));
    }
}

/// `RoleBindingSpec.validate` (a JSON `null` spec too): a role and at least one subject.
static BINDING_SPEC: Ty = Ty::Checked(
    &Ty::Struct(&[f("role", &STR), f("subjects", &SUBJECTS)]),
    binding,
);

fn binding(v: &Value, w: &mut Walk, at: &At) {
    let role = v
        .get("role")
        .map(|r| go_string(r, w.json))
        .unwrap_or_default();
    if role.is_empty() {
        w.error(format!(
            "{at}.role is missing or empty: Perses refuses a binding without a role"
        ));
        return;
    }
    let subjects = match v.get("subjects") {
        Some(Value::Array(items)) => items.iter().filter(|x| w.json || !x.is_null()).count(),
        _ => 0,
    };
    if subjects == 0 {
        w.error(format!(
            "{at}.subjects is missing or empty: Perses refuses a binding without subjects"
        ));
    }
}

/// A RoleBinding's or GlobalRoleBinding's spec: a missing (or YAML `null`) one is zero, which
/// `validate` refuses.
pub(crate) fn check_binding(kind: &str, spec: Option<&Value>, json: bool, found: &mut Found) {
    let mut w = Walk::new(json);
    match spec {
        None => w.error(format!(
            "spec is missing: Perses refuses a {kind} without one (spec cannot be empty)"
        )),
        Some(Value::Null) if !json => w.error(format!(
            "spec is null: Perses refuses a {kind} without one (spec cannot be empty)"
        )),
        Some(s) => w.check(s, &BINDING_SPEC, &At::Root("spec")),
    }
    found.decoding.extend(w.errors);
}
