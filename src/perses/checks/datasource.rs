//! Datasource and GlobalDatasource specs, and the datasource specs of a dashboard: the
//! decoding of perses/spec `datasource.Spec` (go/datasource/datasource.go), the plugin, and the
//! proxy checks the services run (`ValidateAndExtract`, pkg/model/api/v1/datasource/proxy.go).

use super::types::{At, Ty, Walk, f, regexp_problem, url_problem};
use super::{Found, plugin_refusals};
use serde_json::{Map, Value};

static STR: Ty = Ty::Str;
static BOOL: Ty = Ty::Bool;
static INT: Ty = Ty::Int;
static DURATION: Ty = Ty::Duration;
static ANY: Ty = Ty::Any;

/// perses/spec `common.Display` (go/common/display.go).
pub(crate) static DISPLAY: Ty = Ty::Struct(&[f("name", &STR), f("description", &STR)]);
static DISPLAY_PTR: Ty = Ty::Ptr(&DISPLAY);

static PLUGIN_METADATA: Ty = Ty::Ptr(&Ty::Struct(&[f("version", &STR), f("registry", &STR)]));
/// perses/spec `plugin.Plugin` (go/plugin/plugin.go): `validate` refuses an empty kind, also
/// for a JSON `null` (its decoder runs); a YAML `null` skips it.
pub(crate) static PLUGIN: Ty = Ty::Checked(
    &Ty::Struct(&[
        f("kind", &STR),
        f("metadata", &PLUGIN_METADATA),
        f("spec", &ANY),
    ]),
    plugin_kind,
);

fn plugin_kind(v: &Value, w: &mut Walk, at: &At) {
    let kind = v.get("kind").map(|k| super::types::go_string(k, w.json));
    if kind.as_deref().unwrap_or_default().is_empty() {
        w.error(format!(
            "{at}.kind is {}: Perses refuses a plugin without a kind (kind cannot be empty); \
             name the plugin it uses, such as \"TimeSeriesChart\"",
            if kind.is_some() { "empty" } else { "missing" }
        ));
    }
}

/// perses/spec `datasource.Spec`.
pub(crate) static DATASOURCE_SPEC: Ty = Ty::Struct(&[
    f("display", &DISPLAY_PTR),
    f("default", &BOOL),
    f("plugin", &PLUGIN),
]);

/// A Datasource's or GlobalDatasource's spec: decoding (`Datasource.validate`,
/// pkg/model/api/v1/datasource.go, refuses a zero spec), then what the service checks when it
/// creates it: the proxy, and that a plugin schema can match.
pub(crate) fn check_datasource(kind: &str, spec: Option<&Value>, json: bool, found: &mut Found) {
    // `reflect.DeepEqual(spec, Spec{})`: missing, null, {} and {default: false} are zero (a YAML
    // `plugin: null` is, too: it leaves the plugin zero).
    let zero = match spec {
        None | Some(Value::Null) => true,
        Some(Value::Object(s)) => s.iter().all(|(k, v)| match k.as_str() {
            "default" => matches!(v, Value::Null | Value::Bool(false)),
            "display" | "plugin" => v.is_null() && (!json || k == "display"),
            _ => true,
        }),
        Some(_) => false,
    };
    let what = match spec {
        None => "missing",
        Some(Value::Null) => "null",
        _ => "empty",
    };
    let mut w = Walk::new(json);
    if let Some(s) = spec {
        w.check(s, &DATASOURCE_SPEC, &At::Root("spec"));
    }
    if zero && w.errors.is_empty() {
        w.error(format!(
            "spec is {what}: Perses refuses a {kind} without one (spec cannot be empty); give \
             it a plugin"
        ));
    }
    let decodes = w.errors.is_empty();
    found.decoding.extend(w.errors);
    if decodes && let Some(Value::Object(s)) = spec {
        let service = format!("the {kind} service refuses it");
        found
            .refusals
            .extend(datasource_refusals(s, &At::Root("spec"), json, &service));
    }
}

/// What a service refuses in a datasource spec that decodes: the proxy of its plugin spec, and
/// a plugin no schema can match. `service` ends each message ("the Dashboard service refuses
/// it").
pub(crate) fn datasource_refusals(
    spec: &Map<String, Value>,
    at: &At,
    json: bool,
    service: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let plugin_spec = spec.get("plugin").and_then(|p| p.get("spec"));
    if let Some(e) = proxy_problem(plugin_spec, &format!("{at}.plugin.spec")) {
        out.push(format!("{e}; {service}"));
    }
    out.extend(plugin_refusals(
        spec.get("plugin"),
        &at.key("plugin"),
        json,
        service,
    ));
    out
}

/// perses/spec `http.Config` and `sql.Config` (go/datasource/proxy): the service decodes the
/// proxy's spec with Go's JSON decoder, whatever the file's format.
static HTTP_ENDPOINT: Ty = Ty::Checked(
    &Ty::Struct(&[f("endpointPattern", &STR), f("method", &STR)]),
    http_endpoint,
);
static HTTP_ENDPOINTS: Ty = Ty::List(&HTTP_ENDPOINT);
static HEADERS: Ty = Ty::Map(&STR);
static URL: Ty = Ty::Ptr(&Ty::Checked(&STR, url_format));
static HTTP_CONFIG: Ty = Ty::Checked(
    &Ty::Struct(&[
        f("url", &URL),
        f("allowedEndpoints", &HTTP_ENDPOINTS),
        f("headers", &HEADERS),
        f("secret", &STR),
    ]),
    http_config,
);
static PARAMS: Ty = Ty::Map(&STR);
static MYSQL: Ty = Ty::Ptr(&Ty::Struct(&[
    f("params", &PARAMS),
    f("maxAllowedPacket", &INT),
    f("timeout", &DURATION),
    f("readTimeout", &DURATION),
    f("writeTimeout", &DURATION),
]));
static PREPARE_THRESHOLD: Ty = Ty::Ptr(&INT);
static POSTGRES: Ty = Ty::Ptr(&Ty::Checked(
    &Ty::Struct(&[
        f("maxConns", &INT),
        f("connectTimeout", &DURATION),
        f("prepareThreshold", &PREPARE_THRESHOLD),
        f("sslMode", &STR),
        f("options", &STR),
    ]),
    postgres,
));
static SQL_CONFIG: Ty = Ty::Checked(
    &Ty::Struct(&[
        f("driver", &STR),
        f("host", &STR),
        f("database", &STR),
        f("secret", &STR),
        f("mysql", &MYSQL),
        f("mariadb", &MYSQL),
        f("postgres", &POSTGRES),
    ]),
    sql_config,
);

fn url_format(v: &Value, w: &mut Walk, at: &At) {
    if let Some(e) = v.as_str().and_then(url_problem) {
        w.error(format!("{at} is not a URL Perses can parse ({e})"));
    }
}

fn http_config(v: &Value, w: &mut Walk, at: &At) {
    if matches!(v.get("url"), None | Some(Value::Null)) {
        w.error(format!(
            "{at}.url is missing: an HTTP proxy needs the URL it forwards to (url cannot be \
             empty)"
        ));
    }
}

/// `AllowedEndpoint.validate`: a method, a pattern, and one of the five methods Perses proxies.
fn http_endpoint(v: &Value, w: &mut Walk, at: &At) {
    let method = v.get("method").and_then(Value::as_str).unwrap_or_default();
    if method.is_empty() {
        w.error(format!(
            "{at}.method is missing: Perses needs the HTTP method of each allowed endpoint"
        ));
        return;
    }
    // A JSON null pattern still reaches the decoder, which compiles "": only a missing one is
    // nil.
    match v.get("endpointPattern") {
        None => w.error(format!(
            "{at}.endpointPattern is missing: Perses needs the pattern of each allowed endpoint"
        )),
        Some(Value::String(p)) => {
            if let Some(e) = regexp_problem(p) {
                w.error(format!(
                    "{at}.endpointPattern {p:?} is not a regular expression Go accepts ({e})"
                ));
            }
        }
        Some(_) => {}
    }
    const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "PUT", "PATCH"];
    if !METHODS.contains(&method) {
        w.error(format!(
            "{at}.method {method:?} is not a method Perses proxies: use one of {} (uppercase)",
            METHODS.join(", ")
        ));
    }
}

fn postgres(v: &Value, w: &mut Walk, at: &At) {
    const MODES: [&str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-full",
        "verify-ca",
    ];
    let mode = v.get("sslMode").and_then(Value::as_str).unwrap_or_default();
    if !mode.is_empty() && !MODES.contains(&mode) {
        w.error(format!(
            "{at}.sslMode {mode:?} is unknown: use one of {}",
            MODES.join(", ")
        ));
    }
}

/// `sql.Config.validate`: a driver (given, or told by the one sub-config), a host, a database.
fn sql_config(v: &Value, w: &mut Walk, at: &At) {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    let has = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
    let mut driver = s("driver").to_string();
    if driver.is_empty() {
        driver = ["mysql", "mariadb", "postgres"]
            .into_iter()
            .find(|k| has(k))
            .unwrap_or_default()
            .to_string();
    }
    if driver.is_empty() {
        w.error(format!(
            "{at}.driver is missing: a SQL proxy needs one (mysql, mariadb or postgres)"
        ));
        return;
    }
    if !["mysql", "mariadb", "postgres"].contains(&driver.as_str()) {
        w.error(format!(
            "{at}.driver {driver:?} is not supported: use mysql, mariadb or postgres (lowercase)"
        ));
        return;
    }
    let others: Vec<&str> = ["mysql", "mariadb", "postgres"]
        .into_iter()
        .filter(|k| *k != driver && has(k))
        .collect();
    if !others.is_empty() {
        w.error(format!(
            "{at}: driver {driver} cannot be set with a {} config",
            others.join(" or ")
        ));
    }
    for key in ["host", "database"] {
        if s(key).is_empty() {
            w.error(format!("{at}.{key} is empty: a SQL proxy needs one"));
        }
    }
}

/// The proxy Perses finds in a plugin spec (`configFinder`: depth first through objects, not
/// lists; the first object whose `kind`, key and value matched case-insensitively, is
/// `HTTPProxy` or `SQLProxy`), checked as the service decodes it. A proxy without `spec` is
/// not checked; with `spec: null` it crashes Perses v0.54.
pub(crate) fn proxy_problem(plugin_spec: Option<&Value>, at: &str) -> Option<String> {
    let (at, kind, spec) = find_proxy(plugin_spec?, at)?;
    let spec_at = format!("{at}.spec");
    // No spec: nothing to check.
    let spec = spec?;
    if spec.is_null() {
        return Some(format!(
            "{spec_at} is null: Perses v0.54 crashes on it (reflect panic in \
             configFinder.unmarshalConfig), which stops the whole server, at every start; give \
             the proxy a spec or remove it"
        ));
    }
    let mut w = Walk::new(true);
    match kind {
        "httpproxy" => w.check(spec, &HTTP_CONFIG, &At::Root(&spec_at)),
        _ => w.check(spec, &SQL_CONFIG, &At::Root(&spec_at)),
    }
    (!w.errors.is_empty()).then(|| w.errors.join("; "))
}

fn find_proxy<'v>(v: &'v Value, at: &str) -> Option<(String, &'static str, Option<&'v Value>)> {
    let Value::Object(m) = v else {
        return None;
    };
    let get = |key: &str| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, x)| x)
    };
    let kind = get("kind")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    match kind.as_deref() {
        Some("httpproxy") => return Some((at.to_string(), "httpproxy", get("spec"))),
        Some("sqlproxy") => return Some((at.to_string(), "sqlproxy", get("spec"))),
        _ => {}
    }
    m.iter()
        .find_map(|(k, x)| find_proxy(x, &format!("{at}.{k}")))
}
