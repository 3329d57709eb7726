//! The `variants` set of the Perses judge (`tests/perses_judge.rs`): copies of corpus resources,
//! each changed to exercise one rule `perses-oci lint` claims to predict (kind, name, project,
//! spec, tags, layout references, variable names, default datasources, which errors skip the
//! whole file and which cost one object, duplicates, case, file decoding), or one Perses check
//! that lint deliberately does not replay. The corpus itself is never changed (its README asks
//! for copies).

use serde_json::{Value, json};
use std::path::Path;

/// One object of a corpus file (the first, for a list).
fn corpus_object(corpus: &Path, rel: &str) -> Value {
    let text = std::fs::read_to_string(corpus.join(rel)).unwrap();
    match serde_json::from_str::<Value>(&text).unwrap() {
        Value::Array(mut items) => items.remove(0),
        v => v,
    }
}

fn named(mut obj: Value, name: &str, project: Option<&str>) -> Value {
    obj["metadata"]["name"] = json!(name);
    if let Some(p) = project {
        obj["metadata"]["project"] = json!(p);
    }
    obj
}

fn add(files: &mut Vec<(String, Vec<u8>)>, path: &str, v: Value) {
    files.push((path.to_string(), pretty(&v)));
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap();
    out.push(b'\n');
    out
}

/// The files of the set: (path relative to the provisioning folder, content).
pub fn files(corpus: &Path) -> Vec<(String, Vec<u8>)> {
    let dashboard = corpus_object(corpus, "dashboards/e2e_dashboard.json");
    let dash = |name: &str, project: &str| named(dashboard.clone(), name, Some(project));
    let datasource = corpus_object(corpus, "datasources/datasource_proxy.json");
    let ds = |name: &str, display: &str, default: bool| {
        let mut d = named(datasource.clone(), name, Some("judge"));
        d["spec"]["display"]["name"] = json!(display);
        d["spec"]["default"] = json!(default);
        d
    };
    let variable = corpus_object(corpus, "dev-data/11-variable.json");
    let global_variable = corpus_object(corpus, "dev-data/10-globalvariable.json");
    let global_datasource = |name: &str, default: bool| {
        let mut d = named(datasource.clone(), name, None);
        d["kind"] = json!("GlobalDatasource");
        d["metadata"].as_object_mut().unwrap().remove("project");
        d["spec"]["default"] = json!(default);
        d
    };
    let with_variables = |name: &str, variables: Value| {
        let mut d = dash(name, "judge");
        d["spec"]["variables"] = variables;
        d
    };
    let text_var = |name: &str, value: &str| json!({"kind": "TextVariable", "spec": {"name": name, "value": value}});
    let mut ephemeral = corpus_object(corpus, "dev-data/ephemeraldashboard.json");
    ephemeral["metadata"]["project"] = json!("judge");
    let secret = |name: &str, user: &str| {
        json!({"kind": "GlobalSecret", "metadata": {"name": name},
               "spec": {"basicAuth": {"username": user, "password": "p"}}})
    };
    let tagged_secret = |name: &str, tags: Value| {
        let mut s = secret(name, "tagged");
        s["metadata"]["tags"] = tags;
        s
    };
    let with_spec = |kind: &str, name: &str, spec: Option<Value>| {
        let mut o = json!({"kind": kind, "metadata": {"name": name}});
        if kind != "GlobalDatasource" {
            o["metadata"]["project"] = json!("judge");
        }
        if let Some(s) = spec {
            o["spec"] = s;
        }
        o
    };

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();

    add(
        &mut files,
        "00-project.json",
        json!({"kind": "Project", "metadata": {"name": "judge"},
               "spec": {"display": {"name": "Judge"}}}),
    );

    // kind
    add(
        &mut files,
        "unknown-kind-in-list.json",
        json!([
            dash("beside-unknown-kind", "judge"),
            {"kind": "Dashbaord", "metadata": {"name": "typo", "project": "judge"}, "spec": {}},
        ]),
    );
    add(
        &mut files,
        "ephemeral-in-list.json",
        json!([dash("beside-ephemeral", "judge"), ephemeral.clone()]),
    );

    // name
    add(
        &mut files,
        "bad-name-in-list.json",
        json!([dash("beside-bad-name", "judge"), dash("bad name!", "judge")]),
    );
    add(
        &mut files,
        "name-75.json",
        secret(&"n".repeat(75), "longest"),
    );
    add(
        &mut files,
        "name-76.json",
        secret(&"n".repeat(76), "too-long"),
    );

    // project
    add(
        &mut files,
        "missing-project-in-list.json",
        json!([
            dash("beside-missing-project", "judge"),
            dash("in-missing-project", "nowhere")
        ]),
    );
    add(
        &mut files,
        "project-case.json",
        dash("project-case", "JUDGE"),
    );
    let mut no_project = dash("no-project-field", "judge");
    no_project["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("project");
    add(&mut files, "no-project-field.json", no_project);
    add(
        &mut files,
        "project-defined-later.json",
        dash("early", "zz-late"),
    );
    add(
        &mut files,
        "zz-late-project.json",
        json!({"kind": "Project", "metadata": {"name": "zz-late"}, "spec": {}}),
    );

    // spec
    add(
        &mut files,
        "dashboard-spec-missing.json",
        with_spec("Dashboard", "spec-missing", None),
    );
    add(
        &mut files,
        "dashboard-spec-null.json",
        with_spec("Dashboard", "spec-null", Some(Value::Null)),
    );
    add(
        &mut files,
        "dashboard-spec-empty.json",
        with_spec("Dashboard", "spec-empty", Some(json!({}))),
    );
    add(
        &mut files,
        "datasource-spec-empty.json",
        with_spec("Datasource", "ds-spec-empty", Some(json!({}))),
    );
    add(
        &mut files,
        "globaldatasource-spec-null.json",
        with_spec("GlobalDatasource", "gds-spec-null", Some(Value::Null)),
    );

    // duplicates
    add(&mut files, "dup-a.json", ds("dup", "first", false));
    add(&mut files, "dup-b.json", ds("dup", "second", false));
    add(
        &mut files,
        "dup-in-one-file.json",
        json!([
            {"kind": "Project", "metadata": {"name": "twice"},
             "spec": {"display": {"name": "first"}}},
            {"kind": "Project", "metadata": {"name": "twice"},
             "spec": {"display": {"name": "second"}}},
        ]),
    );
    add(&mut files, "case-a.json", ds("CaseDs", "upper", false));
    add(&mut files, "case-b.json", ds("caseds", "lower", false));

    // decoding
    files.push((
        "multi.yaml".into(),
        b"kind: GlobalSecret\nmetadata:\n  name: first-doc\nspec: {}\n---\n\
          kind: GlobalSecret\nmetadata:\n  name: second-doc\nspec: {}\n"
            .to_vec(),
    ));
    files.push((
        "sub/nested.yml".into(),
        b"- kind: GlobalSecret\n  metadata:\n    name: nested-one\n  spec: {}\n\
          - kind: GlobalSecret\n  metadata:\n    name: nested-two\n  spec: {}\n"
            .to_vec(),
    ));
    files.push((
        "yaml-in-json.json".into(),
        b"kind: GlobalSecret\nmetadata:\n  name: yaml-in-json\nspec: {}\n".to_vec(),
    ));
    files.push(("UPPER.JSON".into(), pretty(&secret("upper-ext", "u"))));
    files.push(("empty-list.json".into(), b"[]\n".to_vec()));

    // Perses checks that lint does not replay (none of them is a plugin schema).
    let mut tagged = dash("bad-tag", "judge");
    tagged["metadata"]["tags"] = json!([" padded"]);
    add(
        &mut files,
        "tag-in-list.json",
        json!([dash("beside-bad-tag", "judge"), tagged]),
    );
    let mut dangling = dash("dangling-ref", "judge");
    dangling["spec"]["layouts"][0]["spec"]["items"][0]["content"]["$ref"] =
        json!("#/spec/panels/nope");
    add(&mut files, "dangling-panel-ref.json", dangling);
    add(
        &mut files,
        "variable-name.json",
        named(variable.clone(), "node-exporter-job", Some("judge")),
    );
    let mut dash_var = dash("dashboard-variable-name", "judge");
    dash_var["spec"]["variables"] =
        json!([{"kind": "TextVariable", "spec": {"name": "a-b-c", "value": "x"}}]);
    add(&mut files, "dashboard-variable-name.json", dash_var);
    add(
        &mut files,
        "default-ds-a.json",
        ds("default-one", "one", true),
    );
    add(
        &mut files,
        "default-ds-b.json",
        ds("default-two", "two", true),
    );

    // Rules lint replays since the judge found them missing (each checked in the Perses source).
    // tags: a set of at most 20, each at most 50 characters; YAML turns a number into a tag.
    let tags = |n: usize| -> Vec<String> { (1..=n).map(|i| format!("t{i:02}")).collect() };
    add(
        &mut files,
        "tags-21.json",
        tagged_secret("tags-21", json!(tags(21))),
    );
    let mut twenty = tags(20);
    twenty.push("t01".into());
    add(
        &mut files,
        "tags-20-distinct.json",
        tagged_secret("tags-20-distinct", json!(twenty)),
    );
    add(
        &mut files,
        "tag-50.json",
        tagged_secret("tag-50", json!(["a".repeat(50)])),
    );
    add(
        &mut files,
        "tag-51.json",
        tagged_secret("tag-51", json!(["a".repeat(51)])),
    );
    add(
        &mut files,
        "tag-number.json",
        tagged_secret("tag-number-json", json!([1])),
    );
    files.push((
        "tag-number.yaml".into(),
        b"kind: GlobalSecret\nmetadata:\n  name: tag-number-yaml\n  tags: [1, true]\nspec: {}\n"
            .to_vec(),
    ));
    // Dashboard spec: YAML `null` is refused (whole file), YAML `{}` stored.
    files.push((
        "yaml-spec-null-in-list.yaml".into(),
        b"- kind: Dashboard\n  metadata: {name: yaml-beside-null, project: judge}\n  \
          spec: {duration: 1h, panels: {}, layouts: []}\n\
          - kind: Dashboard\n  metadata: {name: yaml-spec-null, project: judge}\n  spec: null\n"
            .to_vec(),
    ));
    files.push((
        "dashboard-spec-empty.yaml".into(),
        b"kind: Dashboard\nmetadata: {name: yaml-spec-empty, project: judge}\nspec: {}\n".to_vec(),
    ));
    // An EphemeralDashboard that does not decode skips its file; one that does costs itself.
    let mut no_spec = ephemeral.clone();
    no_spec["metadata"]["name"] = json!("temp-no-spec");
    no_spec.as_object_mut().unwrap().remove("spec");
    add(
        &mut files,
        "ephemeral-no-spec-in-list.json",
        json!([dash("beside-ephemeral-no-spec", "judge"), no_spec]),
    );
    // Layouts: only Grid references are resolved; a Tabs one only has to be well-formed.
    let mut tabs = dash("tabs-dangling-ref", "judge");
    tabs["spec"]["layouts"] = json!([{"kind": "Tabs", "spec": {"tabs": [{"name": "t", "items": [
        {"x": 0, "y": 0, "width": 1, "height": 1, "content": {"$ref": "#/spec/panels/nope"}}
    ]}]}}]);
    add(&mut files, "tabs-dangling-ref.json", tabs);
    // Variable names: one other character is fine; GlobalVariable names are not checked;
    // `__` is refused (one object); the same name twice fails decoding (whole file).
    add(
        &mut files,
        "variable-name-one-dash.json",
        named(variable.clone(), "my-var", Some("judge")),
    );
    add(
        &mut files,
        "globalvariable-name.json",
        named(global_variable, "node-exporter-global", None),
    );
    add(
        &mut files,
        "dashboard-variable-builtin-in-list.json",
        json!([
            dash("beside-builtin-var", "judge"),
            with_variables("builtin-var", json!([text_var("__x", "x")])),
        ]),
    );
    add(
        &mut files,
        "dashboard-variable-twice-in-list.json",
        json!([
            dash("beside-twice-var", "judge"),
            with_variables(
                "twice-var",
                json!([text_var("same", "x"), text_var("same", "y")])
            ),
        ]),
    );
    // Default datasources: redefining the default one is an update, not a second default; a
    // project-less default meets the defaults of every project (file database); one default
    // GlobalDatasource per plugin kind.
    add(
        &mut files,
        "default-ds-c.json",
        ds("default-one", "one-again", true),
    );
    let mut projectless = ds("projectless-default", "none", true);
    projectless["metadata"]["project"] = json!("");
    add(&mut files, "no-project-default-ds.json", projectless);
    add(
        &mut files,
        "default-gds-a.json",
        global_datasource("global-default-one", true),
    );
    add(
        &mut files,
        "default-gds-b.json",
        global_datasource("global-default-two", true),
    );

    // Not replayed, on purpose: a dashboard variable using an undefined variable
    // (`BuildVariableOrder` also reads the project's and global variables stored before it).
    add(
        &mut files,
        "dashboard-variable-undefined.json",
        with_variables("undefined-var", json!([text_var("uses_nope", "$nope")])),
    );

    files
}
