//! Tests of the per-kind type and format rules: each case is a mutation of a valid resource and
//! what Perses v0.54 does with it, JSON and YAML apart where they differ (model spec §3, §6;
//! tests/perses_mutations.rs checks the same against the real server).

use crate::perses::testutil::*;
use crate::perses::*;
use serde_json::{Value, json};

/// What Perses does with one resource file.
#[derive(Debug, PartialEq, Clone, Copy)]
enum V {
    /// Decoding fails: the file is skipped.
    Skipped,
    /// The object is refused when applied.
    Refused,
    Stored,
}

/// The verdict on `obj` written as JSON (`json`) or as YAML, in project p, with the error
/// messages.
fn verdict(obj: &Value, json: bool) -> (V, Vec<String>) {
    let (path, text) = if json {
        ("r.json", serde_json::to_string_pretty(obj).unwrap())
    } else {
        // The comment keeps flow-style YAML from being valid JSON (Perses sniffs the content).
        ("r.yaml", format!("# YAML\n{}\n", yaml(obj)))
    };
    let r = lint(&[(path, &text), ("p.json", PROJECT_P)], &[]);
    let f = file(&r, path);
    let v = if !f.accepted {
        V::Skipped
    } else {
        match f.resources.first().map(|r| r.status) {
            Some(Status::Refused) => V::Refused,
            _ => V::Stored,
        }
    };
    (v, errors(f).iter().map(|s| s.to_string()).collect())
}

/// Flow-style YAML with every string quoted: the file means exactly `v`.
fn yaml(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{}: {}", serde_json::to_string(k).unwrap(), yaml(x)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(yaml).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// Sets `path` (dot-separated, numbers index lists) in a copy of `base`; `None` removes it.
fn with(base: &Value, path: &str, value: Option<Value>) -> Value {
    let mut v = base.clone();
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().unwrap();
    let mut cur = &mut v;
    for p in parents {
        cur = match p.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*p],
        };
    }
    match (value, last.parse::<usize>()) {
        (Some(x), Ok(i)) => cur[i] = x,
        (Some(x), Err(_)) => cur[*last] = x,
        (None, _) => {
            cur.as_object_mut().unwrap().remove(*last);
        }
    }
    v
}

/// Each case: (field, new value or removed, JSON verdict, YAML verdict, text of the error).
type Case = (&'static str, Option<Value>, V, V, &'static str);

fn check_cases(base: &Value, cases: &[Case]) {
    assert_eq!(
        verdict(base, true).0,
        V::Stored,
        "{:?}",
        verdict(base, true).1
    );
    assert_eq!(
        verdict(base, false).0,
        V::Stored,
        "{:?}",
        verdict(base, false).1
    );
    for (path, value, in_json, in_yaml, text) in cases {
        let obj = with(base, path, value.clone());
        for (json, expected) in [(true, in_json), (false, in_yaml)] {
            let (got, errors) = verdict(&obj, json);
            let format = if json { "JSON" } else { "YAML" };
            assert_eq!(got, *expected, "{format} {path} = {value:?}: {errors:?}");
            if got != V::Stored && !text.is_empty() {
                assert!(
                    errors.iter().any(|e| e.contains(text)),
                    "{format} {path} = {value:?}: {errors:?} lacks {text:?}"
                );
            }
        }
    }
}

use V::{Refused, Skipped, Stored};

fn base_dashboard() -> Value {
    json!({"kind": "Dashboard", "metadata": {"name": "d", "project": "p", "version": 0,
      "createdAt": "2021-11-09T00:00:00Z"},
      "spec": {"duration": "5m", "refreshInterval": "30s", "timezone": "Europe/Paris",
        "links": [{"url": "https://perses.dev", "renderVariables": true}],
        "variables": [
          {"kind": "ListVariable", "spec": {"name": "job", "allowAllValue": true,
            "customAllValue": ".*", "sort": "alphabetical-asc", "defaultValue": "a",
            "plugin": {"kind": "P", "spec": {}}}},
          {"kind": "TextVariable", "spec": {"name": "text", "value": "v", "constant": true}}],
        "panels": {"a": {"kind": "Panel", "spec": {"plugin": {"kind": "C", "spec": {}},
          "queries": [{"kind": "TimeSeriesQuery", "spec": {"plugin": {"kind": "Q"}}}]}}},
        "datasources": {"local": {"default": false, "plugin": {"kind": "D", "spec": {
          "proxy": {"kind": "HTTPProxy", "spec": {"url": "http://localhost:9090"}}}}}},
        "layouts": [{"kind": "Grid", "spec": {"display": {"title": "t", "collapse": {"open": true}},
          "items": [{"x": 0, "y": 0, "width": 2, "height": 3, "content": {"$ref": "#/spec/panels/a"},
            "repeatVariable": {"value": "job", "alignment": "horizontal", "maxPer": 2}}]}}]}})
}

#[test]
fn dashboard_fields_have_the_types_and_formats_perses_decodes() {
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec.duration", Some(json!("1hour")), Skipped, Skipped, "unknown unit \"hour\""),
        ("spec.duration", Some(json!("1.5h")), Skipped, Skipped, "not a duration"),
        ("spec.duration", Some(json!("0")), Stored, Stored, ""),
        ("spec.duration", Some(json!(0)), Skipped, Stored, "in quotes"),
        ("spec.refreshInterval", Some(json!("30s5m")), Skipped, Skipped, "largest first"),
        ("spec.refreshInterval", Some(json!("abc")), Skipped, Skipped, ""),
        ("spec.refreshInterval", Some(json!("")), Stored, Stored, ""),
        ("spec.timezone", Some(json!("utc")), Skipped, Skipped, "did you mean UTC"),
        ("spec.timezone", Some(json!(null)), Stored, Stored, ""),
        ("spec.links.0.renderVariables", Some(json!("true")), Skipped, Skipped, "without quotes"),
        ("spec.links.0.renderVariables", Some(json!("yes")), Skipped, Stored, ""),
        ("spec.links.0.url", Some(json!(1)), Skipped, Stored, ""),
        ("metadata.version", Some(json!("3")), Skipped, Skipped, "without quotes"),
        ("metadata.version", Some(json!(1.5)), Skipped, Stored, "not a whole number"),
        ("metadata.version", Some(json!(-1)), Skipped, Skipped, "negative"),
        ("metadata.createdAt", Some(json!("2024-01-01")), Skipped, Skipped, "RFC 3339"),
        ("metadata.createdAt", Some(json!({})), Skipped, Stored, ""),
        ("spec.layouts.0.spec.items.0.x", Some(json!("0")), Skipped, Skipped, ""),
        ("spec.layouts.0.spec.items.0.x", Some(json!(1.5)), Skipped, Stored, ""),
        ("spec.layouts.0.spec.items.0.repeatVariable.alignment", Some(json!("diag")), Skipped, Skipped, "horizontal or vertical"),
        // A JSON null still reaches the alignment's decoder, which refuses "".
        ("spec.layouts.0.spec.items.0.repeatVariable.alignment", Some(json!(null)), Skipped, Stored, ""),
        ("spec.layouts.0.spec.display.collapse.open", Some(json!(1)), Skipped, Skipped, ""),
        ("spec.layouts.0.kind", Some(json!("grid")), Skipped, Skipped, "case-sensitive: Grid"),
        ("spec.layouts.0.kind", None, Skipped, Skipped, "layout without a kind"),
        ("spec.layouts.0.spec", Some(json!([])), Skipped, Skipped, ""),
        ("spec.layouts.0.spec.items.0.content.$ref", Some(json!(5)), Skipped, Skipped, ""),
        ("spec.variables.0.spec.sort", Some(json!("foo")), Skipped, Skipped, "unknown sort method"),
        ("spec.variables.0.spec.sort", Some(json!(null)), Stored, Stored, ""),
        ("spec.variables.0.spec.allowAllValue", Some(json!(false)), Skipped, Skipped, "customAllValue"),
        ("spec.variables.0.spec.defaultValue", Some(json!(["a", "b"])), Skipped, Skipped, "allowMultiple"),
        ("spec.variables.0.spec.defaultValue", Some(json!(5)), Skipped, Stored, "string or a list"),
        ("spec.variables.0.kind", Some(json!(null)), Skipped, Skipped, ""),
        ("spec.variables.1.spec.value", Some(json!("")), Skipped, Skipped, "constant"),
        ("spec.variables.1.spec.name", Some(json!(12)), Skipped, Skipped, ""),
        ("spec.variables.1.spec", None, Skipped, Refused, ""),
        // Perses v0.54 crashes on a list variable without a plugin.
        ("spec.variables.0.spec.plugin", None, Refused, Refused, "crashes"),
        ("spec.variables.0.spec.plugin.spec", None, Refused, Refused, "crashes"),
        ("spec.panels.a", Some(json!(null)), Refused, Refused, "crashes"),
        ("spec.panels.a.spec.plugin", None, Refused, Refused, "no plugin schema matches"),
        ("spec.panels.a.spec.plugin", Some(json!(null)), Skipped, Refused, ""),
        ("spec.panels.a.spec.plugin.kind", Some(json!("")), Skipped, Skipped, "kind cannot be empty"),
        ("spec.panels.a.spec.plugin.spec", Some(json!("x")), Refused, Refused, "must be an object"),
        ("spec.panels.a.spec.queries.0", Some(json!(null)), Refused, Stored, ""),
        ("spec.panels.a.spec.queries.0.spec.plugin", None, Refused, Refused, ""),
        ("spec.datasources.local", Some(json!({})), Refused, Refused, "no plugin schema"),
        ("spec.datasources.local", Some(json!(null)), Refused, Refused, "crashes"),
        ("spec.datasources.local.plugin.spec.proxy.spec.url", Some(json!("::bad")), Refused, Refused, "missing protocol scheme"),
        ("spec.datasources.local.plugin.spec.proxy.spec.url", None, Refused, Refused, "url cannot be empty"),
        ("spec.datasources.local.plugin.spec.proxy.spec", Some(json!(null)), Refused, Refused, "crashes"),
        ("spec.datasources.local.plugin.spec.proxy.kind", Some(json!("FooProxy")), Stored, Stored, ""),
    ];
    check_cases(&base_dashboard(), cases);
}

#[test]
fn datasource_specs_and_proxies() {
    let base = json!({"kind": "Datasource", "metadata": {"name": "ds", "project": "p"},
      "spec": {"default": false, "display": {"name": "n"}, "plugin": {"kind": "P", "spec": {
        "proxy": {"kind": "HTTPProxy", "spec": {"url": "http://x", "secret": "s",
          "headers": {"X": "y"},
          "allowedEndpoints": [{"endpointPattern": "/api", "method": "GET"}]}}}}}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec", None, Skipped, Skipped, "spec cannot be empty"),
        ("spec", Some(json!({"default": false})), Skipped, Skipped, "spec cannot be empty"),
        ("spec.plugin", None, Refused, Refused, "no plugin schema"),
        ("spec.plugin", Some(json!(null)), Skipped, Refused, ""),
        ("spec.default", Some(json!("true")), Skipped, Skipped, ""),
        ("spec.default", Some(json!("yes")), Skipped, Stored, ""),
        ("spec.display", Some(json!("x")), Skipped, Skipped, ""),
        ("spec.plugin.spec.proxy.spec.url", Some(json!("http://a b")), Refused, Refused, "in host name"),
        ("spec.plugin.spec.proxy.spec.url", Some(json!(5)), Refused, Refused, "must be a string"),
        ("spec.plugin.spec.proxy.spec.url", Some(json!("")), Stored, Stored, ""),
        ("spec.plugin.spec.proxy.spec.headers.X", Some(json!(1)), Refused, Refused, ""),
        ("spec.plugin.spec.proxy.spec", Some(json!({})), Refused, Refused, "url cannot be empty"),
        ("spec.plugin.spec.proxy.kind", Some(json!("httpproxy")), Stored, Stored, ""),
        ("spec.plugin.spec.proxy.spec.allowedEndpoints.0.method", Some(json!("get")), Refused, Refused, "uppercase"),
        ("spec.plugin.spec.proxy.spec.allowedEndpoints.0.endpointPattern", Some(json!("(")), Refused, Refused, "missing closing )"),
        ("spec.plugin.spec.proxy.spec.allowedEndpoints.0.endpointPattern", None, Refused, Refused, "pattern"),
        ("spec.plugin.spec.proxy.spec.allowedEndpoints.0.endpointPattern", Some(json!(null)), Stored, Stored, ""),
        ("spec.plugin.spec.proxy.spec.allowedEndpoints", Some(json!([null])), Refused, Refused, ""),
    ];
    check_cases(&base, cases);
    // A SQL proxy: driver, host and database.
    let sql = with(
        &base,
        "spec.plugin.spec.proxy",
        Some(
            json!({"kind": "SQLProxy", "spec": {"driver": "postgres", "host": "h",
          "database": "d", "postgres": {"sslMode": "require", "connectTimeout": "5s"}}}),
        ),
    );
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec.plugin.spec.proxy.spec.driver", Some(json!("MySQL")), Refused, Refused, "not supported"),
        ("spec.plugin.spec.proxy.spec.driver", None, Stored, Stored, ""),
        ("spec.plugin.spec.proxy.spec.host", None, Refused, Refused, "host is empty"),
        ("spec.plugin.spec.proxy.spec.postgres.sslMode", Some(json!("strict")), Refused, Refused, "sslMode"),
        ("spec.plugin.spec.proxy.spec.postgres.connectTimeout", Some(json!("5 s")), Refused, Refused, "unknown unit"),
    ];
    check_cases(&sql, cases);
}

#[test]
fn metadata_names_and_projects_take_yaml_scalars() {
    let base = json!({"kind": "Secret", "metadata": {"name": "s", "project": "p"},
                      "spec": {}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("metadata.name", Some(json!(5)), Skipped, Stored, "in quotes"),
        ("metadata.name", Some(json!(true)), Skipped, Stored, ""),
        ("metadata.name", Some(json!(1e6)), Skipped, Skipped, ""),
        ("metadata.name", Some(json!(".")), Refused, Refused, "is a path"),
        ("metadata.name", Some(json!("..")), Refused, Refused, "is a path"),
        ("metadata.name", Some(json!(null)), Skipped, Skipped, "is empty"),
        ("metadata", None, Refused, Refused, "no `metadata`"),
        ("metadata", Some(json!(null)), Skipped, Refused, ""),
        // A YAML number is a project name no project has.
        ("metadata.project", Some(json!(5)), Skipped, Refused, ""),
        ("metadata.tags", Some(json!([null])), Skipped, Stored, "empty"),
        ("metadata.tags", Some(json!([1])), Skipped, Stored, ""),
    ];
    check_cases(&base, cases);
    let (v, errors) = verdict(&with(&base, "metadata.project", None), true);
    assert_eq!(v, Stored);
    assert!(errors[0].contains("outside any project"), "{errors:?}");
}

#[test]
fn variable_resources_check_the_spec_types_but_not_validate() {
    let base = json!({"kind": "Variable", "metadata": {"name": "job", "project": "p"},
      "spec": {"kind": "ListVariable", "spec": {"allowMultiple": false, "sort": "none",
        "plugin": {"kind": "P", "spec": {}}}}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // Accepted and stored with an empty kind.
        ("spec", None, Stored, Stored, ""),
        ("spec", Some(json!(null)), Skipped, Stored, ""),
        ("spec", Some(json!({})), Skipped, Skipped, "without a kind"),
        ("spec.kind", Some(json!("listvariable")), Skipped, Skipped, "case-sensitive"),
        ("spec.spec.sort", Some(json!("foo")), Skipped, Skipped, "unknown sort"),
        ("spec.spec.allowMultiple", Some(json!("true")), Skipped, Skipped, ""),
        // ListSpec.Validate never runs for a Variable.
        ("spec.spec.customAllValue", Some(json!("x")), Stored, Stored, ""),
        ("spec.spec.plugin", None, Refused, Refused, "no plugin schema"),
        ("metadata.name", Some(json!("a-b-c")), Refused, Refused, "is not valid"),
    ];
    check_cases(&base, cases);
    let global = with(&base, "kind", Some(json!("GlobalVariable")));
    let global = with(&global, "metadata.project", None);
    let cases: &[Case] = &[("metadata.name", Some(json!("a-b-c")), Stored, Stored, "")];
    check_cases(&global, cases);
}

#[test]
fn roles_and_bindings() {
    let role = json!({"kind": "Role", "metadata": {"name": "r", "project": "p"},
      "spec": {"permissions": [{"actions": ["read"], "scopes": ["Dashboard"]}]}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec", None, Skipped, Skipped, "spec cannot be empty"),
        ("spec.permissions", Some(json!([])), Stored, Stored, ""),
        ("spec.permissions", Some(json!([null])), Skipped, Stored, "actions"),
        ("spec.permissions.0.actions", Some(json!([])), Skipped, Skipped, "without actions"),
        ("spec.permissions.0.actions.0", Some(json!("READ")), Stored, Stored, ""),
        ("spec.permissions.0.actions.0", Some(json!("list")), Skipped, Skipped, "not an action"),
        ("spec.permissions.0.actions.0", Some(json!("")), Skipped, Skipped, "empty action"),
        ("spec.permissions.0.scopes.0", Some(json!("Panel")), Skipped, Skipped, "not a scope"),
        ("spec.permissions.0.scopes.0", Some(json!("GlobalDatasource")), Skipped, Skipped, "global scope"),
        // The global-scope check is case-sensitive in v0.54.
        ("spec.permissions.0.scopes.0", Some(json!("globaldatasource")), Stored, Stored, ""),
    ];
    check_cases(&role, cases);
    let global = with(
        &with(&role, "kind", Some(json!("GlobalRole"))),
        "metadata.project",
        None,
    );
    let cases: &[Case] = &[(
        "spec.permissions.0.scopes.0",
        Some(json!("User")),
        Stored,
        Stored,
        "",
    )];
    check_cases(&global, cases);

    let binding = json!({"kind": "RoleBinding", "metadata": {"name": "b", "project": "p"},
      "spec": {"role": "r", "subjects": [{"kind": "User", "name": "u"}]}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec", None, Skipped, Skipped, "spec cannot be empty"),
        ("spec", Some(json!(null)), Skipped, Skipped, ""),
        ("spec.role", Some(json!("")), Skipped, Skipped, "without a role"),
        ("spec.subjects", Some(json!([null])), Skipped, Skipped, ""),
        ("spec.subjects.0.kind", Some(json!("user")), Stored, Stored, ""),
        ("spec.subjects.0.kind", Some(json!("Group")), Skipped, Skipped, "unknown kind"),
        ("spec.subjects.0.kind", Some(json!("Project")), Skipped, Skipped, "is not User"),
        ("spec.subjects.0.name", Some(json!("")), Skipped, Skipped, "name the user"),
    ];
    check_cases(&binding, cases);
}

#[test]
fn folders_secrets_users_and_projects() {
    let folder = json!({"kind": "Folder", "metadata": {"name": "f", "project": "p"},
      "spec": {"items": [{"kind": "Dashboard", "name": "a"},
                         {"kind": "Folder", "name": "sub", "items": [{"kind": "Dashboard", "name": "b"}]}]}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec", None, Stored, Stored, ""),
        ("spec.items.0.kind", Some(json!("dashboard")), Stored, Stored, ""),
        ("spec.items.0.kind", Some(json!("Panel")), Skipped, Skipped, "\"Panel\""),
        ("spec.items.0.kind", None, Skipped, Skipped, "Dashboard or Folder"),
        ("spec.items.0.name", None, Skipped, Skipped, "name is required"),
        ("spec.items.0.name", Some(json!("b")), Skipped, Skipped, "listed twice"),
        ("spec.items.0", Some(json!(null)), Skipped, Stored, ""),
    ];
    check_cases(&folder, cases);

    let secret = json!({"kind": "GlobalSecret", "metadata": {"name": "s"},
      "spec": {"basicAuth": {"username": "u", "password": "p"}}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec", None, Stored, Stored, ""),
        ("spec.basicAuth", Some(json!({})), Skipped, Skipped, "needs a username"),
        ("spec.basicAuth.password", Some(json!(1234)), Skipped, Stored, ""),
        ("spec.basicAuth.passwordFile", Some(json!("/f")), Skipped, Skipped, "both password"),
        ("spec.authorization", Some(json!({})), Stored, Stored, ""),
        ("spec.oauth", Some(json!({"clientID": "c"})), Skipped, Skipped, "tokenURL"),
        ("spec.tlsConfig", Some(json!({"insecureSkipVerify": "true"})), Skipped, Skipped, ""),
    ];
    check_cases(&secret, cases);

    let user = json!({"kind": "User", "metadata": {"name": "u"},
      "spec": {"nativeProvider": {"password": "secret"}}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec", None, Refused, Refused, "without a password"),
        ("spec.nativeProvider.password", Some(json!("x".repeat(73))), Refused, Refused, "bcrypt"),
        ("spec.oauthProviders", Some(json!([{"issuer": "i"}])), Skipped, Stored, "both"),
        ("spec.firstName", Some(json!(1)), Skipped, Stored, ""),
    ];
    check_cases(&user, cases);

    let project =
        json!({"kind": "Project", "metadata": {"name": "q"}, "spec": {"display": {"name": "Q"}}});
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("spec", None, Stored, Stored, ""),
        ("spec", Some(json!("x")), Skipped, Skipped, "must be an object"),
        ("spec.display.name", Some(json!(5)), Skipped, Stored, ""),
    ];
    check_cases(&project, cases);
}
