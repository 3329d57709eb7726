//! The mutations of `tests/perses_mutations.rs`: real resources from the shared corpus (the
//! bases), every field of each walked, and for each field a set of mutations (wrong type, wrong
//! format where the field has one, missing, empty, null), each rendered as a JSON file and as a
//! block-style YAML file.
//!
//! Every mutated resource gets a name of its own (except the mutations of `metadata.name`) and
//! project-scoped ones live in project `mut`, which a Project file defines. Fields that repeat
//! (the panels of a dashboard, the items of a list) are mutated once per shape: the first
//! occurrence of each generalised path (`spec.panels.*.spec.display.name`,
//! `spec.layouts[].spec.items[].x`); dashboard variables count per kind
//! (`spec.variables[ListVariable]`). Plugin specs are opaque to Perses' Go code (the plugin's
//! CUE schema judges them; the test gives Perses stubs that accept any spec) and to lint, so
//! only the `plugin.spec` value itself is mutated, and inside it only the HTTP proxy, which
//! Perses' Go code checks (`ValidateAndExtract`).

#![allow(dead_code)]

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::Path;

/// The project every project-scoped mutation lives in.
pub const PROJECT: &str = "mut";

/// A YAML-only mutation: a plain scalar written as is (`0x10`, `2024-01-01`), to exercise
/// YAML's own resolution of scalars. Stored in the value as a string with this prefix.
pub const RAW: &str = "\u{0}yaml-raw:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The base itself, unchanged.
    Base,
    WrongType,
    WrongFormat,
    Missing,
    Empty,
    Null,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Base => "base",
            Class::WrongType => "wrong type",
            Class::WrongFormat => "format",
            Class::Missing => "missing",
            Class::Empty => "empty",
            Class::Null => "null",
        }
    }
}

/// A real resource to mutate.
pub struct Base {
    pub kind: &'static str,
    /// Where it comes from, for the report.
    pub source: &'static str,
    pub value: Value,
}

/// One mutated resource file.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// Unique; also the folder and file stem (`0042-dashboard`).
    pub id: String,
    pub kind: &'static str,
    /// The mutated field, concrete (`spec.panels.basicEx.spec.display.name`) and generalised
    /// (`spec.panels.*.spec.display.name`); empty for the base.
    pub path: String,
    pub gpath: String,
    pub class: Class,
    /// What the field became (`missing`, `null`, `5`, `"1hour"`, `yaml 0x10`).
    pub what: String,
    pub format: Format,
    /// The resource as mutated (a YAML-only raw scalar shows as its text).
    pub object: Value,
    /// The file: `ID/ID.json` or `ID/ID.yaml`.
    pub file: String,
    pub bytes: Vec<u8>,
    /// Why this input kills Perses v0.54 (model spec §5), if it does.
    pub crash: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn show_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Bases.

fn corpus_file(corpus: &Path, rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(corpus.join(rel)).unwrap();
    match serde_json::from_str::<Value>(&text).unwrap() {
        Value::Array(items) => items,
        v => vec![v],
    }
}

fn find(items: Vec<Value>, name: &str) -> Value {
    items
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the corpus file"))
}

/// The bases: one resource of each provisionable kind, from the corpus' dev-data/ (the set the
/// Perses dev server provisions). Role and RoleBinding, which dev-data lacks, are its
/// GlobalRole and GlobalRoleBinding moved into a project. The dashboard gets the fields that
/// have a format but that Demo lacks (refreshInterval, timezone, links, tags, a Tabs layout, a
/// grid repeat, variable options), so that those formats are judged too.
pub fn bases(corpus: &Path) -> Vec<Base> {
    let dev = |f: &str| corpus_file(corpus, &format!("dev-data/{f}"));
    let mut dashboard = find(dev("9-dashboard.json"), "Demo");
    enrich_dashboard(&mut dashboard);
    let mut datasource = find(dev("8-datasource.json"), "PrometheusDemo");
    datasource["spec"]["display"] = json!({"name": "Prometheus demo"});
    let proxy = &mut datasource["spec"]["plugin"]["spec"]["proxy"]["spec"];
    proxy["headers"] = json!({"X-Scope-OrgID": "demo"});
    proxy["secret"] = json!("turlututu");
    let mut project = find(dev("6-project.json"), "IncredibleProject");
    project["spec"]["display"]["description"] = json!("A project");
    let global_role = dev("2-globalrole.json").remove(0);
    let mut role = global_role.clone();
    role["kind"] = json!("Role");
    let global_binding = dev("5-globalrolebinding.json").remove(0);
    let mut binding = global_binding.clone();
    binding["kind"] = json!("RoleBinding");
    vec![
        Base {
            kind: "Project",
            source: "dev-data/6-project.json IncredibleProject (+ display.description)",
            value: project,
        },
        Base {
            kind: "Dashboard",
            source: "dev-data/9-dashboard.json Demo (enriched, see `enrich_dashboard`)",
            value: dashboard,
        },
        Base {
            kind: "Datasource",
            source: "dev-data/8-datasource.json PrometheusDemo (+ display, proxy headers and \
                     secret)",
            value: datasource,
        },
        Base {
            kind: "GlobalDatasource",
            source: "dev-data/4-globaldatasource.json PrometheusDemo",
            value: find(dev("4-globaldatasource.json"), "PrometheusDemo"),
        },
        Base {
            kind: "Folder",
            source: "dev-data/12-folder.json demos",
            value: find(dev("12-folder.json"), "demos"),
        },
        Base {
            kind: "Variable",
            source: "dev-data/11-variable.json job",
            value: dev("11-variable.json").remove(0),
        },
        Base {
            kind: "GlobalVariable",
            source: "dev-data/10-globalvariable.json job",
            value: dev("10-globalvariable.json").remove(0),
        },
        Base {
            kind: "Secret",
            source: "dev-data/7-secret.json turlututu",
            value: dev("7-secret.json").remove(0),
        },
        Base {
            kind: "GlobalSecret",
            source: "dev-data/3-globalsecret.json perlinpinpin",
            value: dev("3-globalsecret.json").remove(0),
        },
        Base {
            kind: "Role",
            source: "dev-data/2-globalrole.json admin, as a Role",
            value: role,
        },
        Base {
            kind: "GlobalRole",
            source: "dev-data/2-globalrole.json admin",
            value: global_role,
        },
        Base {
            kind: "RoleBinding",
            source: "dev-data/5-globalrolebinding.json admin, as a RoleBinding",
            value: binding,
        },
        Base {
            kind: "GlobalRoleBinding",
            source: "dev-data/5-globalrolebinding.json admin",
            value: global_binding,
        },
        Base {
            kind: "User",
            source: "dev-data/1-user.json admin",
            value: find(dev("1-user.json"), "admin"),
        },
    ]
}

/// Demo plus the dashboard fields that have a format or an enum and that Demo lacks.
fn enrich_dashboard(d: &mut Value) {
    d["metadata"]["tags"] = json!(["demo"]);
    let spec = &mut d["spec"];
    spec["display"] = json!({"name": "Demo", "description": "The demo dashboard"});
    spec["refreshInterval"] = json!("30s");
    spec["timezone"] = json!("Europe/Paris");
    spec["links"] = json!([{
        "name": "Docs",
        "url": "https://perses.dev",
        "tooltip": "Perses",
        "renderVariables": true,
        "targetBlank": false
    }]);
    // The first ListVariable (job) and the TextVariable get every option.
    let vars = spec["variables"].as_array_mut().unwrap();
    let job = &mut vars[0]["spec"];
    assert_eq!(job["name"], "job");
    job["display"] = json!({"name": "Job", "description": "The job", "hidden": false});
    job["allowAllValue"] = json!(true);
    job["customAllValue"] = json!(".*");
    job["defaultValue"] = json!("prometheus");
    job["capturingRegexp"] = json!("(.*)");
    job["sort"] = json!("alphabetical-asc");
    let text = vars
        .iter_mut()
        .find(|v| v["kind"] == "TextVariable")
        .unwrap();
    text["spec"]["display"] = json!({"name": "Text", "hidden": false});
    // A grid item that repeats, and a Tabs layout.
    let first = spec["layouts"][0]["spec"]["items"][0].clone();
    let item = &mut spec["layouts"][0]["spec"]["items"][0];
    item["repeatVariable"] = json!({"value": "job", "alignment": "horizontal", "maxPer": 2});
    let mut tab_item = first;
    tab_item.as_object_mut().unwrap().remove("repeatVariable");
    spec["layouts"].as_array_mut().unwrap().push(json!({
        "kind": "Tabs",
        "spec": {
            "display": {"title": "Tabs", "collapse": {"open": false}},
            "defaultTab": 0,
            "tabs": [{"name": "First", "items": [tab_item]}]
        }
    }));
    // A panel link.
    let panel = spec["panels"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    panel["spec"]["links"] = json!([{"name": "More", "url": "https://perses.dev/more"}]);
}

// ---------------------------------------------------------------------------------------------
// Walking and mutating.

/// Every node of `v` below the root: (path, generalised path), first occurrence of each
/// generalised path only.
fn walk(kind: &str, v: &Value) -> Vec<(Vec<Seg>, String)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    walk_in(
        kind,
        v,
        &mut Vec::new(),
        &mut String::new(),
        &mut seen,
        &mut out,
    );
    out
}

fn walk_in(
    kind: &str,
    v: &Value,
    path: &mut Vec<Seg>,
    gpath: &mut String,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<(Vec<Seg>, String)>,
) {
    let in_plugin_spec = gpath.ends_with("plugin.spec");
    let children: Vec<(Seg, String, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !in_plugin_spec || *k == "proxy")
            .map(|(k, x)| {
                // Map keys chosen by the author: panels, local datasources, headers.
                let generic =
                    kind == "Dashboard" && (gpath == "spec.panels" || gpath == "spec.datasources");
                let g = if generic { "*".to_string() } else { k.clone() };
                let g = if gpath.is_empty() {
                    g
                } else {
                    format!("{gpath}.{g}")
                };
                (Seg::Key(k.clone()), g, x)
            })
            .collect(),
        Value::Array(items) if !in_plugin_spec => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let tag = if gpath == "spec.variables" {
                    x["kind"].as_str().unwrap_or("").to_string()
                } else {
                    String::new()
                };
                (Seg::Index(i), format!("{gpath}[{tag}]"), x)
            })
            .collect(),
        _ => Vec::new(),
    };
    for (seg, g, x) in children {
        if !seen.insert(g.clone()) {
            continue;
        }
        path.push(seg);
        out.push((path.clone(), g.clone()));
        let saved = std::mem::replace(gpath, g);
        walk_in(kind, x, path, gpath, seen, out);
        *gpath = saved;
        path.pop();
    }
}

/// What a field becomes: a value, or the key removed.
#[derive(Debug, Clone)]
enum Change {
    Set(Value),
    Remove,
}

fn raw(s: &str) -> Value {
    Value::String(format!("{RAW}{s}"))
}

/// The field's name, the last key of its path (the list's key for a list item).
fn field_name(path: &[Seg]) -> &str {
    path.iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .unwrap_or("")
}

/// The mutations of one field: (class, label, change, YAML only).
fn mutations_of(
    kind: &str,
    path: &[Seg],
    gpath: &str,
    v: &Value,
) -> Vec<(Class, String, Change, bool)> {
    use Class::*;
    let mut out: Vec<(Class, String, Change, bool)> = Vec::new();
    let mut set = |class: Class, v: Value| {
        let label = match class {
            Null => "null".to_string(),
            _ => v.to_string(),
        };
        out.push((class, label, Change::Set(v), false));
    };
    let in_list = matches!(path.last(), Some(Seg::Index(_)));
    match v {
        Value::String(s) => {
            set(WrongType, json!(5));
            set(WrongType, json!(true));
            set(WrongType, json!({}));
            set(WrongType, json!([]));
            if !s.is_empty() {
                set(Empty, json!(""));
            }
        }
        Value::Number(n) => {
            set(WrongType, json!(n.to_string()));
            set(WrongType, json!(true));
        }
        Value::Bool(b) => {
            set(WrongType, json!(b.to_string()));
            set(WrongType, json!(1));
        }
        Value::Object(m) => {
            set(WrongType, json!("x"));
            set(WrongType, json!([]));
            if !m.is_empty() {
                set(Empty, json!({}));
            }
        }
        Value::Array(items) => {
            set(WrongType, json!("x"));
            set(WrongType, json!({}));
            if !items.is_empty() {
                set(Empty, json!([]));
                set(Empty, json!([null]));
            }
        }
        Value::Null => {}
    }
    if !v.is_null() {
        set(Null, Value::Null);
    }
    for f in formats(kind, gpath, field_name(path), v) {
        set(WrongFormat, f);
    }
    if !in_list {
        out.push((Missing, "missing".into(), Change::Remove, false));
    }
    // YAML's own scalars.
    let yaml_raw: &[&str] = match (field_name(path), v) {
        ("name", _) if gpath == "metadata.name" => &["2024-01-01", "0x1F"],
        ("createdAt" | "updatedAt", _) => &["2024-01-01", "2024-01-01 10:00:00"],
        (_, Value::Number(_)) => &["0x10", "1_0", "1.9"],
        (_, Value::Bool(_)) => &["yes", "off"],
        _ => &[],
    };
    for r in yaml_raw {
        out.push((WrongFormat, format!("yaml {r}"), Change::Set(raw(r)), true));
    }
    out
}

/// Wrong (and a few right but unusual) formats of the fields that have one, from the model
/// spec (§2, §3).
fn formats(kind: &str, gpath: &str, field: &str, v: &Value) -> Vec<Value> {
    let s = v.as_str().unwrap_or_default();
    let names = || {
        vec![
            json!("bad name"),
            json!("a".repeat(76)),
            json!("MiXeD-Case"),
        ]
    };
    let variable_names = || vec![json!("a-b-c"), json!("__x"), json!("123"), json!("a.b")];
    let mut out = match (field, v) {
        ("name", _) if gpath == "metadata.name" => {
            let mut n = names();
            n.extend([json!("."), json!(".."), json!("-")]);
            if kind == "Variable" || kind == "GlobalVariable" {
                n.extend(variable_names());
            }
            n
        }
        ("name", _) if gpath.ends_with("].spec.name") && gpath.starts_with("spec.variables") => {
            let mut n = names();
            n.extend(variable_names());
            n
        }
        ("duration" | "refreshInterval", _) => vec![
            json!("1hour"),
            json!("1.5h"),
            json!("30s5m"),
            json!("0"),
            json!("2d12h"),
            json!("1H"),
        ],
        ("timezone", _) => vec![json!("utc"), json!("Europe/Nowhere"), json!("local")],
        ("$ref", _) => vec![
            json!("#/spec/panels/nope"),
            json!("spec/panels/x"),
            json!("#/spec/panel/x"),
            json!(s.trim_start_matches('#')),
        ],
        ("url", _) if gpath.contains("proxy") => {
            vec![json!("::bad"), json!("http://a b"), json!("foo/bar")]
        }
        ("method", _) => vec![json!("get"), json!("HEAD")],
        ("endpointPattern", _) => vec![json!("(")],
        ("sort", _) => vec![json!("Alphabetical-asc"), json!("foo")],
        ("alignment", _) => vec![json!("diag")],
        ("createdAt" | "updatedAt", _) => {
            vec![json!("2024-01-01"), json!("2024-01-01T24:00:00Z")]
        }
        ("defaultValue", _) => vec![json!(["a", "b"]), json!(["a"])],
        ("actions", Value::String(_)) => vec![json!("Foo"), json!("READ"), json!("")],
        ("scopes", Value::String(_)) => vec![
            json!("Foo"),
            json!("GlobalDatasource"),
            json!("globaldatasource"),
            json!("dashboard"),
        ],
        ("kind", Value::String(_)) => {
            let mut k = vec![json!("Foo")];
            if gpath == "spec.subjects[].kind" {
                k.extend([json!("user"), json!("Group"), json!("Project")]);
            } else if gpath.starts_with("spec.items[") {
                k.extend([json!("dashboard"), json!("Panel")]);
            } else if gpath.ends_with("proxy.kind") {
                k.push(json!("httpproxy"));
            } else if !gpath.ends_with("plugin.kind") && !gpath.starts_with("spec.panels.*.kind") {
                k.push(json!(s.to_lowercase()));
            }
            k
        }
        (_, Value::Number(_)) => vec![json!(1.5), json!(-1)],
        (_, Value::Bool(_)) => vec![json!("yes")],
        _ => vec![],
    };
    out.retain(|f| f != v);
    out
}

fn apply(obj: &mut Value, path: &[Seg], change: &Change) {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = obj;
    for seg in parents {
        cur = match seg {
            Seg::Key(k) => &mut cur[k.as_str()],
            Seg::Index(i) => &mut cur[*i],
        };
    }
    match (last, change) {
        (Seg::Key(k), Change::Set(v)) => {
            cur[k.as_str()] = v.clone();
        }
        (Seg::Key(k), Change::Remove) => {
            cur.as_object_mut().unwrap().remove(k);
        }
        (Seg::Index(i), Change::Set(v)) => cur[*i] = v.clone(),
        (Seg::Index(i), Change::Remove) => {
            cur.as_array_mut().unwrap().remove(*i);
        }
    }
}

/// Every mutation of every base, in both formats, plus each base unchanged.
pub fn mutations(bases: &[Base]) -> Vec<Mutation> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for base in bases {
        let mut fields = vec![(Vec::new(), String::new())];
        fields.extend(walk(base.kind, &base.value));
        for (path, gpath) in fields {
            let changes = if path.is_empty() {
                vec![(Class::Base, "base".to_string(), None, false)]
            } else {
                let v = lookup(&base.value, &path);
                mutations_of(base.kind, &path, &gpath, v)
                    .into_iter()
                    .map(|(c, l, ch, y)| (c, l, Some(ch), y))
                    .collect()
            };
            for (class, what, change, yaml_only) in changes {
                for format in [Format::Json, Format::Yaml] {
                    if yaml_only && format == Format::Json {
                        continue;
                    }
                    n += 1;
                    let id = format!("{n:04}-{}", base.kind.to_lowercase());
                    let mut obj = base.value.clone();
                    obj["metadata"]["name"] = json!(format!("m{n:04}"));
                    if common_project_scoped(base.kind) {
                        obj["metadata"]["project"] = json!(PROJECT);
                    }
                    if let Some(ch) = &change {
                        apply(&mut obj, &path, ch);
                    }
                    let bytes = match format {
                        Format::Json => {
                            let mut b = serde_json::to_vec_pretty(&obj).unwrap();
                            b.push(b'\n');
                            b
                        }
                        Format::Yaml => super::render::yaml(&obj).into_bytes(),
                    };
                    let crash = crash_reason(base.kind, &obj, format == Format::Yaml);
                    out.push(Mutation {
                        file: format!("{id}/{id}.{}", format.as_str()),
                        id,
                        kind: base.kind,
                        path: show_path(&path),
                        gpath: gpath.clone(),
                        class,
                        what: what.clone(),
                        format,
                        object: shown(&obj),
                        bytes,
                        crash,
                    });
                }
            }
        }
    }
    out
}

fn common_project_scoped(kind: &str) -> bool {
    [
        "Dashboard",
        "Datasource",
        "Folder",
        "Role",
        "RoleBinding",
        "Secret",
        "Variable",
    ]
    .contains(&kind)
}

fn lookup<'a>(v: &'a Value, path: &[Seg]) -> &'a Value {
    path.iter().fold(v, |cur, seg| match seg {
        Seg::Key(k) => &cur[k.as_str()],
        Seg::Index(i) => &cur[*i],
    })
}

/// The object with raw YAML scalars shown as their text.
fn shown(v: &Value) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix(RAW) {
            Some(r) => Value::String(r.to_string()),
            None => v.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(shown).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), shown(x))).collect()),
        _ => v.clone(),
    }
}

/// The project file every project-scoped mutation needs.
pub fn project_file() -> (String, Vec<u8>) {
    let obj = json!({"kind": "Project", "metadata": {"name": PROJECT}, "spec": {}});
    (
        "0000-project/0000-project.json".to_string(),
        serde_json::to_vec_pretty(&obj).unwrap(),
    )
}

// ---------------------------------------------------------------------------------------------
// Crash inputs (model spec §5): they kill Perses v0.54, so they stay out of the shared run.

/// Why `obj` (of `kind`) kills Perses v0.54, if it does.
pub fn crash_reason(kind: &str, obj: &Value, yaml: bool) -> Option<&'static str> {
    let spec = obj.get("spec");
    if kind == "Datasource" || kind == "GlobalDatasource" {
        let plugin_spec = spec
            .and_then(|s| s.get("plugin"))
            .and_then(|p| p.get("spec"));
        return proxy_spec_null(plugin_spec).then_some("proxy spec null");
    }
    if kind != "Dashboard" {
        return None;
    }
    let spec = spec.and_then(Value::as_object)?;
    if let Some(Value::Array(layouts)) = spec.get("layouts") {
        for l in layouts {
            if l.get("kind").and_then(Value::as_str) != Some("Grid") {
                continue;
            }
            let Some(Value::Array(items)) = l.get("spec").and_then(|s| s.get("items")) else {
                continue;
            };
            for it in items {
                match it {
                    Value::Null if !yaml => return Some("grid item null"),
                    Value::Object(m) if matches!(m.get("content"), None | Some(Value::Null)) => {
                        return Some("grid item without content");
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(Value::Object(ds)) = spec.get("datasources") {
        for d in ds.values() {
            if d.is_null() {
                return Some("local datasource null");
            }
            if proxy_spec_null(d.get("plugin").and_then(|p| p.get("spec"))) {
                return Some("proxy spec null");
            }
        }
    }
    if let Some(Value::Object(panels)) = spec.get("panels")
        && panels.values().any(Value::is_null)
    {
        return Some("panel null");
    }
    if let Some(Value::Array(vars)) = spec.get("variables") {
        for v in vars {
            if v.get("kind").and_then(Value::as_str) != Some("ListVariable") {
                continue;
            }
            let vspec = v.get("spec");
            if yaml && matches!(vspec, None | Some(Value::Null)) {
                return Some("list variable without spec (YAML)");
            }
            let Some(vspec) = vspec.and_then(Value::as_object) else {
                continue;
            };
            // Decoding refuses a nameless variable, or a plugin without a kind, first.
            let named = vspec
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                continue;
            }
            match vspec.get("plugin") {
                None => return Some("list variable without plugin"),
                Some(Value::Null) if yaml => return Some("list variable without plugin"),
                Some(Value::Object(p))
                    if p.get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|k| !k.is_empty())
                        && matches!(p.get("spec"), None | Some(Value::Null)) =>
                {
                    return Some("list variable plugin without spec");
                }
                _ => {}
            }
        }
    }
    None
}

/// A `{kind: HTTPProxy|SQLProxy, spec: null}` that Perses' proxy search reaches (depth first,
/// through objects only; keys matched case-insensitively).
fn proxy_spec_null(v: Option<&Value>) -> bool {
    let Some(Value::Object(m)) = v else {
        return false;
    };
    fn get<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }
    let kind = get(m, "kind")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    if matches!(kind.as_deref(), Some("httpproxy" | "sqlproxy")) {
        return matches!(get(m, "spec"), Some(Value::Null));
    }
    m.values().any(|x| proxy_spec_null(Some(x)))
}
