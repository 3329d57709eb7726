//! A Dashboard's spec: empty specs, durations, layouts and their references, variables.

use super::super::decode::type_name;
use super::{Found, IdProblem, id_problem};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A Dashboard's (or EphemeralDashboard's) `spec`, as decoding checks it (`Dashboard.validate`,
/// pkg/model/api/v1/dashboard.go, and the spec types of perses/spec go/dashboard), plus the
/// variable names the Dashboard service checks when it creates it.
pub(crate) fn check_dashboard_spec(
    kind: &str,
    spec: Option<&Value>,
    json: bool,
    found: &mut Found,
) {
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
pub(crate) fn check_layouts(spec: &Map<String, Value>) -> Vec<String> {
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
pub(crate) fn json_ref_path(reference: &str) -> Option<Vec<&str>> {
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
pub(crate) fn check_dashboard_variables(
    spec: &Map<String, Value>,
    service: bool,
    found: &mut Found,
) {
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
