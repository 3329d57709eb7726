//! A Dashboard's spec: its decoding (perses/spec go/dashboard/dashboard.go `Spec` and
//! `Spec.validate`; `Dashboard.validate`, pkg/model/api/v1/dashboard.go), then what the
//! Dashboard service checks when it creates it (`validate.DashboardSpecWithVars`,
//! internal/api/validate/validate.go): variable names, plugins, local datasources.

use super::super::decode::type_name;
use super::datasource::{DATASOURCE_SPEC, DISPLAY, PLUGIN, datasource_refusals};
use super::layout::{LAYOUT, check_grid_references};
use super::types::{At, Ty, Walk, f, go_string, timezone_problem};
use super::variable::{DASHBOARD_VARIABLE, go_bool, variable_name_problem};
use super::{Found, IdProblem, id_problem, plugin_refusals};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

static STR: Ty = Ty::Str;
static BOOL: Ty = Ty::Bool;
static ANY: Ty = Ty::Any;
static DURATION: Ty = Ty::Duration;

static DISPLAY_PTR: Ty = Ty::Ptr(&DISPLAY);
/// perses/spec `dashboard.Link`.
static LINK: Ty = Ty::Struct(&[
    f("name", &STR),
    f("url", &STR),
    f("tooltip", &STR),
    f("renderVariables", &BOOL),
    f("targetBlank", &BOOL),
]);
static LINKS: Ty = Ty::List(&LINK);
static QUERY: Ty = Ty::Struct(&[
    f("kind", &STR),
    f(
        "spec",
        &Ty::Struct(&[f("name", &STR), f("plugin", &PLUGIN)]),
    ),
]);
static QUERIES: Ty = Ty::List(&QUERY);
/// perses/spec `dashboard.Panel`: `kind` is not checked.
static PANEL: Ty = Ty::Ptr(&Ty::Struct(&[
    f("kind", &STR),
    f(
        "spec",
        &Ty::Struct(&[
            f("display", &DISPLAY_PTR),
            f("plugin", &PLUGIN),
            f("queries", &QUERIES),
            f("links", &LINKS),
        ]),
    ),
]));
static PANELS: Ty = Ty::Map(&PANEL);
static DATASOURCES: Ty = Ty::Map(&Ty::Ptr(&DATASOURCE_SPEC));
static VARIABLES: Ty = Ty::List(&DASHBOARD_VARIABLE);
static LAYOUTS: Ty = Ty::List(&LAYOUT);
static TIMEZONE: Ty = Ty::Checked(&STR, timezone);

fn timezone(v: &Value, w: &mut Walk, at: &At) {
    if let Some(e) = timezone_problem(&go_string(v, w.json)) {
        w.error(format!("{at}: {e}"));
    }
}

/// The fields of perses/spec `dashboard.Spec`; annotations are left to the plugin schemas.
static SPEC_FIELDS: [super::types::Field; 10] = [
    f("display", &DISPLAY_PTR),
    f("datasources", &DATASOURCES),
    f("variables", &VARIABLES),
    f("annotations", &ANY),
    f("panels", &PANELS),
    f("layouts", &LAYOUTS),
    f("duration", &DURATION),
    f("refreshInterval", &DURATION),
    f("timezone", &TIMEZONE),
    f("links", &LINKS),
];

/// A Dashboard's (or EphemeralDashboard's) `spec`.
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
    let mut w = Walk::new(json);
    w.fields(spec, &SPEC_FIELDS, &At::Root("spec"));
    if let Some(Value::Object(panels)) = spec.get("panels") {
        for key in panels.keys() {
            match id_problem(key) {
                Some(IdProblem::Bad(why)) => w.error(format!("spec.panels key {key:?} {why}")),
                Some(IdProblem::Empty) => {
                    w.error("spec.panels has an empty key, which Perses refuses")
                }
                None => {}
            }
        }
    }
    w.errors.extend(duplicate_variables(spec, json));
    w.errors.extend(check_grid_references(spec, json));
    let decodes = w.errors.is_empty();
    found.decoding.extend(w.errors);
    // An EphemeralDashboard never reaches a service: provisioning refuses its kind.
    if decodes && kind == "Dashboard" {
        found.refusals.extend(service_refusals(spec, json));
    }
}

/// `Spec.validate`: variable names are unique (ListVariable and TextVariable share them).
fn duplicate_variables(spec: &Map<String, Value>, json: bool) -> Vec<String> {
    let mut out = Vec::new();
    let Some(Value::Array(variables)) = spec.get("variables") else {
        return out;
    };
    let mut seen = BTreeSet::new();
    for (i, v) in variables.iter().enumerate() {
        let Some(name) = v.get("spec").and_then(|s| s.get("name")) else {
            continue;
        };
        let name = go_string(name, json);
        if !name.is_empty() && !seen.insert(name.clone()) {
            out.push(format!(
                "spec.variables[{i}]: variable {name:?} is defined twice in this dashboard"
            ));
        }
    }
    out
}

/// What the Dashboard service refuses in a spec that decodes, in its order: the inputs Perses
/// v0.54 crashes on, variable names (`validateVariableNames`), plugins no schema can match
/// (`ValidateDashboardVariables`, `ValidatePanels`), local datasources (`ValidateAndExtract`,
/// their plugin, and one default per plugin kind).
fn service_refusals(spec: &Map<String, Value>, json: bool) -> Vec<String> {
    let service = "the Dashboard service refuses the dashboard";
    let mut out = Vec::new();
    let crash = "Perses v0.54 crashes on it, which stops the whole server, at every start";
    if let Some(Value::Array(variables)) = spec.get("variables") {
        // yaml.v3 drops the null items of a list (JSON ones fail decoding).
        let items = || {
            variables
                .iter()
                .enumerate()
                .filter(|(_, v)| json || !v.is_null())
        };
        for (i, v) in items() {
            let at = format!("spec.variables[{i}]");
            let vspec = v.get("spec").filter(|s| !s.is_null());
            if v.get("kind").and_then(Value::as_str) == Some("ListVariable") {
                // `BuildVariableOrder` walks the plugin spec of every list variable, and panics
                // on a missing one (`reflect.Value.Type` on a zero Value).
                let plugin = vspec.and_then(|s| s.get("plugin")).filter(|p| !p.is_null());
                match plugin {
                    None => {
                        out.push(format!("{at}: the list variable has no plugin: {crash}"));
                        continue;
                    }
                    Some(p) if p.get("spec").is_none_or(Value::is_null) => {
                        out.push(format!(
                            "{at}.spec.plugin has no spec: {crash}; give it one, even {{}}"
                        ));
                        continue;
                    }
                    Some(_) => {}
                }
            }
            let name = vspec
                .and_then(|s| s.get("name"))
                .map(|n| go_string(n, json))
                .unwrap_or_default();
            if let Some(p) = variable_name_problem(&name) {
                out.push(format!("{at}: {p}; {service}"));
            }
        }
        for (i, v) in items() {
            if v.get("kind").and_then(Value::as_str) == Some("ListVariable")
                && let Some(s) = v.get("spec")
            {
                let at = format!("spec.variables[{i}].spec.plugin");
                out.extend(plugin_refusals(
                    s.get("plugin"),
                    &At::Root(&at),
                    json,
                    service,
                ));
            }
        }
    }
    if let Some(Value::Object(panels)) = spec.get("panels") {
        let root = At::Root("spec.panels");
        for (key, panel) in panels {
            let at = root.key(key);
            if panel.is_null() {
                out.push(format!("{at} is null: {crash} (ValidatePanels)"));
                continue;
            }
            let pspec = panel.get("spec");
            let plugin = pspec.and_then(|s| s.get("plugin"));
            let spec_at = at.key("spec");
            out.extend(plugin_refusals(
                plugin,
                &spec_at.key("plugin"),
                json,
                service,
            ));
            if let Some(Value::Array(queries)) = pspec.and_then(|s| s.get("queries")) {
                // yaml.v3 drops a null query; a JSON one is a query with no plugin.
                for (j, q) in queries
                    .iter()
                    .enumerate()
                    .filter(|(_, q)| json || !q.is_null())
                {
                    let plugin = q.get("spec").and_then(|s| s.get("plugin"));
                    let queries_at = spec_at.key("queries");
                    let query_at = queries_at.index(j);
                    let query_spec = query_at.key("spec");
                    out.extend(plugin_refusals(
                        plugin,
                        &query_spec.key("plugin"),
                        json,
                        service,
                    ));
                }
            }
        }
    }
    if let Some(Value::Object(datasources)) = spec.get("datasources") {
        let mut defaults: BTreeMap<String, &str> = BTreeMap::new();
        for (key, ds) in datasources {
            let at = format!("spec.datasources.{key}");
            let Value::Object(ds) = ds else {
                out.push(format!("{at} is null: {crash} (validateDashboardSpec)"));
                continue;
            };
            out.extend(datasource_refusals(ds, &At::Root(&at), json, service));
            let default = ds.get("default").is_some_and(|d| go_bool(d, json));
            let plugin = ds
                .get("plugin")
                .and_then(|p| p.get("kind"))
                .map(|k| go_string(k, json))
                .unwrap_or_default();
            if default && let Some(first) = defaults.insert(plugin.clone(), key) {
                out.push(format!(
                    "{at}: {first} is already the default {plugin:?} datasource of this \
                     dashboard; {service} (set \"default\": false on one of them)"
                ));
            }
        }
    }
    out
}
