//! Variables: those of a dashboard (perses/spec go/dashboard/variable.go and
//! go/dashboard/variable/*.go), and the specs of the Variable and GlobalVariable kinds
//! (`VariableSpec`, pkg/model/api/v1/variable.go), which reuse the same list and text specs
//! without their `Validate`.

use super::datasource::PLUGIN;
use super::types::{At, Ty, Walk, f, go_string};
use super::{IdProblem, id_problem};
use serde_json::Value;

static STR: Ty = Ty::Str;
static BOOL: Ty = Ty::Bool;
static ANY: Ty = Ty::Any;

/// perses/spec `variable.Display`.
static DISPLAY: Ty = Ty::Ptr(&Ty::Struct(&[
    f("name", &STR),
    f("description", &STR),
    f("hidden", &BOOL),
]));

/// perses/spec `variable.Kind`: `validate` runs for a JSON `null` too.
pub(crate) static VARIABLE_KIND: Ty = Ty::Checked(&STR, variable_kind);

fn variable_kind(v: &Value, w: &mut Walk, at: &At) {
    let kind = go_string(v, w.json);
    if kind.is_empty() {
        w.error(format!(
            "{at} is empty: Perses refuses a variable without a kind (variable.kind cannot be \
             empty); write ListVariable or TextVariable"
        ));
    } else if kind != "ListVariable" && kind != "TextVariable" {
        w.error(unknown_kind(at, &kind));
    }
}

fn unknown_kind(at: &At, kind: &str) -> String {
    let hint = ["ListVariable", "TextVariable"]
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(kind))
        .map(|k| format!(" (kinds are case-sensitive: {k})"))
        .unwrap_or_default();
    format!(
        "{at} {kind:?} is neither ListVariable nor TextVariable: Perses refuses it (unknown \
         variable.kind){hint}"
    )
}

static SORT: Ty = Ty::Ptr(&Ty::Checked(&STR, sort));
static DEFAULT_VALUE: Ty = Ty::Ptr(&Ty::Checked(&ANY, default_value));

/// `variable.Sort.validate` (perses/spec go/dashboard/variable/list.go).
fn sort(v: &Value, w: &mut Walk, at: &At) {
    const SORTS: [&str; 7] = [
        "none",
        "alphabetical-asc",
        "alphabetical-desc",
        "numerical-asc",
        "numerical-desc",
        "alphabetical-ci-asc",
        "alphabetical-ci-desc",
    ];
    let s = go_string(v, w.json);
    if !s.is_empty() && !SORTS.contains(&s.as_str()) {
        w.error(format!(
            "{at} {s:?} is not a sort Perses knows (unknown sort method): use one of {}",
            SORTS.join(", ")
        ));
    }
}

/// `DefaultValue.UnmarshalJSON`/`UnmarshalYAML`: a string or a list of strings. In YAML any
/// scalar reads as a string, so only a map (or a list holding one) fails.
fn default_value(v: &Value, w: &mut Walk, at: &At) {
    let scalar = |x: &Value| match x {
        Value::String(_) | Value::Null => true,
        Value::Number(_) | Value::Bool(_) => !w.json,
        _ => false,
    };
    let ok = match v {
        Value::Array(items) => items.iter().all(scalar),
        other => scalar(other),
    };
    if !ok {
        w.error(format!(
            "{at} must be a string or a list of strings: Perses refuses anything else (unable \
             to unmarshal defaultValue)"
        ));
    }
}

static TEXT_FIELDS: [super::types::Field; 4] = [
    f("name", &STR),
    f("display", &DISPLAY),
    f("value", &STR),
    f("constant", &BOOL),
];
static LIST_FIELDS: [super::types::Field; 9] = [
    f("name", &STR),
    f("display", &DISPLAY),
    f("defaultValue", &DEFAULT_VALUE),
    f("allowAllValue", &BOOL),
    f("allowMultiple", &BOOL),
    f("customAllValue", &STR),
    f("capturingRegexp", &STR),
    f("sort", &SORT),
    f("plugin", &PLUGIN),
];

/// A dashboard's `TextVariableSpec` and `ListVariableSpec`: decoded, then `validate`d (the
/// name, and the spec's own `Validate`), for a JSON `null` too.
static TEXT_VARIABLE_SPEC: Ty = Ty::Checked(&Ty::Struct(&TEXT_FIELDS), text_variable);
static LIST_VARIABLE_SPEC: Ty = Ty::Checked(&Ty::Struct(&LIST_FIELDS), list_variable);

/// A Variable's or GlobalVariable's inner spec: perses/spec `TextSpec` and `ListSpec`, which
/// have no decoder of their own (so `Validate` never runs); `name` is not one of their fields.
static TEXT_SPEC: Ty = Ty::Struct(&TEXT_FIELDS);
static LIST_SPEC: Ty = Ty::Struct(&LIST_FIELDS);

/// A dashboard variable (`Variable.unmarshal`): the kind picks the spec type; the spec is
/// re-encoded and decoded into it. A JSON `null` or missing spec still reaches the spec's
/// decoder; in YAML it leaves the spec zero (no name: the service refuses it, and a zero
/// ListVariable crashes Perses, see `dashboard.rs`).
pub(crate) static DASHBOARD_VARIABLE: Ty = Ty::Checked(
    &Ty::Struct(&[f("kind", &VARIABLE_KIND), f("spec", &ANY)]),
    dashboard_variable,
);

fn dashboard_variable(v: &Value, w: &mut Walk, at: &At) {
    let kind = v
        .get("kind")
        .map(|k| go_string(k, w.json))
        .unwrap_or_default();
    let ty = match kind.as_str() {
        "TextVariable" => &TEXT_VARIABLE_SPEC,
        "ListVariable" => &LIST_VARIABLE_SPEC,
        "" => {
            w.error(format!(
                "{at}.kind is missing: Perses refuses a variable without a kind (unknown \
                 variable.kind \"\"); write ListVariable or TextVariable"
            ));
            return;
        }
        other => {
            w.error(unknown_kind(&at.key("kind"), other));
            return;
        }
    };
    let spec = v.get("spec").unwrap_or(&Value::Null);
    w.check(spec, ty, &at.key("spec"));
}

/// The name rules of `ValidateID` (perses/spec go/common/validate.go), as decoding checks a
/// dashboard variable's name.
fn variable_id(name: &str, w: &mut Walk, at: &At) -> bool {
    match id_problem(name) {
        Some(IdProblem::Empty) => {
            w.error(format!(
                "{at}.name is missing or empty: Perses refuses a variable without a name"
            ));
            false
        }
        Some(IdProblem::Bad(why)) => {
            w.error(format!("{at}.name {name:?} {why}"));
            false
        }
        None => true,
    }
}

/// `TextVariableSpec.validate`: the name, not only digits (`strconv.Atoi`), and a constant's
/// value (`TextSpec.Validate`).
fn text_variable(v: &Value, w: &mut Walk, at: &At) {
    let name = v
        .get("name")
        .map(|n| go_string(n, w.json))
        .unwrap_or_default();
    if !variable_id(&name, w, at) {
        return;
    }
    if go_atoi(&name) {
        w.error(format!(
            "{at}.name {name:?} holds only digits, which Perses refuses for a text variable"
        ));
        return;
    }
    let constant = v.get("constant").is_some_and(|c| go_bool(c, w.json));
    let value = v
        .get("value")
        .map(|x| go_string(x, w.json))
        .unwrap_or_default();
    if constant && value.is_empty() {
        w.error(format!(
            "{at}: a constant text variable needs a value (value for a constant text variable \
             cannot be empty)"
        ));
    }
}

/// `ListVariableSpec.validate`: the name, then `ListSpec.Validate`: `customAllValue` needs
/// `allowAllValue`, and several default values need `allowMultiple`.
fn list_variable(v: &Value, w: &mut Walk, at: &At) {
    let name = v
        .get("name")
        .map(|n| go_string(n, w.json))
        .unwrap_or_default();
    if !variable_id(&name, w, at) {
        return;
    }
    let flag = |k: &str| v.get(k).is_some_and(|b| go_bool(b, w.json));
    let custom = v
        .get("customAllValue")
        .map(|x| go_string(x, w.json))
        .unwrap_or_default();
    if !custom.is_empty() && !flag("allowAllValue") {
        w.error(format!(
            "{at}: customAllValue is set but allowAllValue is not true: Perses refuses it \
             (set allowAllValue to true, or remove customAllValue)"
        ));
        return;
    }
    let defaults = match v.get("defaultValue") {
        Some(Value::Array(items)) => items.iter().filter(|x| w.json || !x.is_null()).count(),
        _ => 0,
    };
    if defaults > 1 && !flag("allowMultiple") {
        w.error(format!(
            "{at}: defaultValue lists {defaults} values but allowMultiple is not true: Perses \
             refuses it (set allowMultiple to true, or give one value)"
        ));
    }
}

/// A Variable's or GlobalVariable's spec (`VariableSpec.unmarshal`): a kind, then the inner
/// spec decoded as a `ListSpec` or `TextSpec`. A missing spec is not decoded at all; a JSON
/// `null` one is, and has no kind.
pub(crate) static RESOURCE_VARIABLE_SPEC: Ty = Ty::Checked(
    &Ty::Struct(&[f("kind", &VARIABLE_KIND), f("spec", &ANY)]),
    resource_variable,
);

fn resource_variable(v: &Value, w: &mut Walk, at: &At) {
    let kind = v
        .get("kind")
        .map(|k| go_string(k, w.json))
        .unwrap_or_default();
    let ty = match kind.as_str() {
        "TextVariable" => &TEXT_SPEC,
        "ListVariable" => &LIST_SPEC,
        "" => {
            w.error(format!(
                "{at}.kind is missing: Perses refuses a variable without a kind (unknown \
                 variable.kind \"\"); write ListVariable or TextVariable"
            ));
            return;
        }
        other => {
            w.error(unknown_kind(&at.key("kind"), other));
            return;
        }
    };
    if let Some(spec) = v.get("spec") {
        w.check(spec, ty, &at.key("spec"));
    }
}

/// Go's `strconv.Atoi` accepts it: an optional sign, then decimal digits that fit an int.
fn go_atoi(s: &str) -> bool {
    s.parse::<i64>().is_ok()
}

/// What a bool field ends up as (after `scalar_problem` accepted it).
pub(crate) fn go_bool(v: &Value, json: bool) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) if !json => matches!(
            s.as_str(),
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON"
        ),
        _ => false,
    }
}

/// `validateVariableName` (internal/api/validate/validate.go): the name must match
/// `^\w*?[^0-9]\w*$` (Go's `\w` is `[0-9A-Za-z_]`: at most one other character, and not only
/// digits), and must not start with `__`, the prefix of builtin variables.
pub(crate) fn variable_name_problem(name: &str) -> Option<String> {
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
