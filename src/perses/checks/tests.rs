//! Tests of the per-object checks: names, tags, specs, layouts, variables, datasources.

use super::variable::variable_name_problem;
use crate::perses::testutil::*;
use crate::perses::*;
use serde_json::{Value, json};

#[test]
fn a_valid_global_resource_is_accepted() {
    let r = lint(
        &[(
            "gd.json",
            r#"{"kind":"GlobalDatasource","metadata":{"name":"prom"},"spec":{"plugin":{"kind":"P"}}}"#,
        )],
        &[],
    );
    let f = file(&r, "gd.json");
    assert!(f.accepted);
    assert!(f.problems.is_empty(), "{:?}", f.problems);
    assert_eq!(f.resources[0].key().to_string(), "GlobalDatasource prom");
    assert!(!r.has_errors());
}

#[test]
fn names_of_75_characters_pass_and_76_fail() {
    let ok = "a".repeat(75);
    let long = "a".repeat(76);
    let body =
        |n: &str| format!(r#"{{"kind":"GlobalSecret","metadata":{{"name":"{n}"}},"spec":{{}}}}"#);
    let r = lint(&[("ok.json", &body(&ok)), ("long.json", &body(&long))], &[]);
    assert!(file(&r, "ok.json").accepted);
    let f = file(&r, "long.json");
    assert!(!f.accepted);
    assert_eq!(errors(f).len(), 1);
    assert!(
        errors(f)[0].contains("76 characters long"),
        "{:?}",
        errors(f)
    );
    assert!(errors(f)[0].contains("at most 75"));
}

#[test]
fn names_with_other_characters_are_refused() {
    assert_eq!(check_name("a-b_c.D9"), None);
    let m = check_name("my dash/board").unwrap();
    assert!(m.contains("' '") && m.contains("'/'"), "{m}");
    assert!(check_name("").unwrap().contains("empty"));
    assert!(check_name("é").unwrap().contains("'é'"));
    let r = lint(
        &[(
            "u.yaml",
            "kind: User\nmetadata:\n  name: \"bob smith\"\nspec: {}\n",
        )],
        &[],
    );
    let f = file(&r, "u.yaml");
    assert!(!f.accepted);
    assert!(errors(f)[0].starts_with("User bob smith: metadata.name \"bob smith\" contains ' '"));
}

#[test]
fn missing_or_empty_name_is_refused() {
    let r = lint(
        &[
            (
                "a.json",
                r#"{"kind":"GlobalSecret","metadata":{"name":""}}"#,
            ),
            ("b.json", r#"{"kind":"GlobalSecret","metadata":{}}"#),
            ("c.json", r#"{"kind":"GlobalSecret"}"#),
        ],
        &[],
    );
    assert!(errors(file(&r, "a.json"))[0].contains("metadata.name is empty"));
    assert!(errors(file(&r, "b.json"))[0].contains("metadata.name is missing"));
    assert!(!file(&r, "a.json").accepted && !file(&r, "b.json").accepted);
    // With no metadata at all, Perses decodes the object with an empty name, then stores it
    // under a broken key or refuses it: the object is refused, not its file.
    let c = file(&r, "c.json");
    assert!(c.accepted);
    assert_eq!(c.resources[0].status, Status::Refused);
    assert!(errors(c)[0].contains("no `metadata`: Perses decodes this GlobalSecret"));
}

#[test]
fn spec_rules_depend_on_the_kind_and_the_format() {
    let r = lint(
        &[
            (
                "missing.json",
                r#"{"kind":"GlobalDatasource","metadata":{"name":"a"}}"#,
            ),
            (
                "null.json",
                r#"{"kind":"GlobalDatasource","metadata":{"name":"b"},"spec":null}"#,
            ),
            (
                "empty-ds.json",
                r#"{"kind":"Datasource","metadata":{"name":"c","project":"p"},"spec":{}}"#,
            ),
            (
                "string.json",
                r#"{"kind":"Datasource","metadata":{"name":"d","project":"p"},"spec":"x"}"#,
            ),
            (
                "dash-missing.json",
                r#"{"kind":"Dashboard","metadata":{"name":"e","project":"p"}}"#,
            ),
            (
                "dash-null.yaml",
                "kind: Dashboard\nmetadata: {name: f, project: p}\nspec: null\n",
            ),
            (
                "dash-empty.json",
                r#"{"kind":"Dashboard","metadata":{"name":"g","project":"p"},"spec":{}}"#,
            ),
            (
                "dash-null.json",
                r#"{"kind":"Dashboard","metadata":{"name":"h","project":"p"},"spec":null}"#,
            ),
            (
                "dash-empty.yaml",
                "kind: Dashboard\nmetadata: {name: i, project: p}\nspec: {}\n",
            ),
            (
                "variable.json",
                r#"{"kind":"GlobalVariable","metadata":{"name":"j"}}"#,
            ),
            ("project.json", PROJECT_P),
        ],
        &[],
    );
    for (path, text) in [
        ("missing.json", "spec is missing"),
        ("null.json", "spec is null"),
        (
            "empty-ds.json",
            "spec is empty: Perses refuses a Datasource",
        ),
        ("string.json", "spec must be an object"),
        (
            "dash-missing.json",
            "spec is missing: Perses refuses a Dashboard",
        ),
        (
            "dash-null.yaml",
            "spec is null: Perses refuses a Dashboard without a spec in a YAML file",
        ),
    ] {
        let f = file(&r, path);
        assert!(!f.accepted, "{path}");
        assert_eq!(errors(f).len(), 1, "{path}: {:?}", errors(f));
        assert!(errors(f)[0].contains(text), "{path}: {:?}", errors(f));
    }
    // A Dashboard's `{}`, or its `null` in JSON, decodes to a non-zero spec: Perses stores an
    // empty dashboard.
    for path in ["dash-empty.json", "dash-null.json", "dash-empty.yaml"] {
        let f = file(&r, path);
        assert!(f.accepted, "{path}");
        assert_eq!(f.resources[0].status, Status::Loaded, "{path}");
        assert!(errors(f).is_empty(), "{path}: {:?}", errors(f));
        assert!(
            warnings(f)[0].contains("Perses stores this Dashboard with an empty spec"),
            "{path}: {:?}",
            warnings(f)
        );
    }
    assert!(file(&r, "variable.json").accepted);
}

fn secret_with_tags(tags: &str) -> String {
    format!(r#"{{"kind":"GlobalSecret","metadata":{{"name":"s","tags":{tags}}},"spec":{{}}}}"#)
}

#[test]
fn tags_are_checked_as_perses_decodes_them() {
    let many = |n: usize| {
        let t: Vec<String> = (0..n).map(|i| format!("\"t{i}\"")).collect();
        format!("[{}]", t.join(","))
    };
    let twenty_and_a_duplicate = format!("{},\"t0\"]", many(20).trim_end_matches(']'));
    let long = format!("[\"{}\"]", "é".repeat(51));
    let fifty = format!("[\"{}\"]", "é".repeat(50));
    let cases: Vec<(String, Option<&str>)> = vec![
        ("null".into(), None),
        ("[]".into(), None),
        (fifty, None),
        (twenty_and_a_duplicate, None),
        (
            many(21),
            Some("holds 21 different tags; Perses allows at most 20"),
        ),
        (
            long,
            Some("is 51 characters long; Perses allows at most 50"),
        ),
        (
            "[\" padded\"]".into(),
            Some("starts or ends with whitespace"),
        ),
        (
            "[\"x\\u00a0\"]".into(),
            Some("starts or ends with whitespace"),
        ),
        ("[\"  \"]".into(), Some("is empty")),
        ("[null]".into(), Some("is empty")),
        ("[1]".into(), Some("must hold strings, found a number")),
        (
            "\"a\"".into(),
            Some("must be a list of strings, found a string"),
        ),
    ];
    for (tags, expected) in cases {
        let r = lint(&[("s.json", &secret_with_tags(&tags))], &[]);
        let f = file(&r, "s.json");
        match expected {
            None => {
                assert!(f.accepted, "{tags}: {:?}", f.problems);
                assert!(f.problems.is_empty(), "{tags}: {:?}", f.problems);
            }
            Some(text) => {
                assert!(!f.accepted, "{tags}");
                assert!(errors(f)[0].contains(text), "{tags}: {:?}", errors(f));
            }
        }
    }
    // YAML turns a scalar into a string; JSON does not (see the `[1]` case above).
    let yaml = "kind: GlobalSecret\nmetadata:\n  name: s\n  tags: [1, true]\nspec: {}\n";
    let r = lint(&[("s.yaml", yaml)], &[]);
    assert!(file(&r, "s.yaml").accepted, "{r:#?}");
    // Tags are checked on every kind, and skip the whole file.
    let mut tagged: Value = serde_json::from_str(&dashboard("p", "t")).unwrap();
    tagged["metadata"]["tags"] = json!([""]);
    let list = format!("[{}, {tagged}]", dashboard("p", "beside"));
    let r = lint(&[("l.json", &list)], &["p"]);
    assert!(!file(&r, "l.json").accepted);
}

fn dashboard_with_spec(spec: Value) -> String {
    json!({"kind": "Dashboard", "metadata": {"name": "d", "project": "p"}, "spec": spec})
        .to_string()
}

#[test]
fn layout_references_must_name_a_panel() {
    let grid = |reference: &str| {
        json!({"panels": {"a": {"kind": "Panel", "spec": {"plugin": {"kind": "P", "spec": {}}}}},
               "layouts": [{"kind": "Grid", "spec": {"items": [
                   {"x": 0, "y": 0, "width": 1, "height": 1,
                    "content": {"$ref": reference}}]}}]})
    };
    let tabs = |reference: &str| {
        json!({"panels": {}, "layouts": [{"kind": "Tabs", "spec": {"tabs": [{"name": "t",
               "items": [{"content": {"$ref": reference}}]}]}}]})
    };
    let cases = [
        (grid("#/spec/panels/a"), None),
        (grid("/spec/panels/a"), None),
        (
            grid("#/spec/panels/nope"),
            Some("names no panel of spec.panels"),
        ),
        (
            grid("#/spec/other/a"),
            Some("does not point into spec.panels"),
        ),
        (grid("#/spec/panels/a/b"), Some("does not point at a panel")),
        (
            grid("#/spec/panels/a.b"),
            Some("is not a reference Perses accepts"),
        ),
        (grid(""), Some("is not a reference Perses accepts")),
        // Perses resolves the references of Grid layouts only.
        (tabs("#/spec/panels/nope"), None),
        (
            tabs("#/spec/panels/a b"),
            Some("is not a reference Perses accepts"),
        ),
        // Checked by hand against Perses v0.54: the server panics and exits.
        (
            json!({"layouts": [{"kind": "Grid", "spec": {"items": [{"x": 0}]}}]}),
            Some("the item has no content: Perses v0.54 crashes on it"),
        ),
        (
            json!({"layouts": [{"kind": "Tabs", "spec": {"tabs": [{"items": [{"x": 0}]}]}}]}),
            None,
        ),
        (
            json!({"layouts": [{"kind": "Grid", "spec": {"items": [{"content": "a"}]}}]}),
            Some("content must be an object, found a string"),
        ),
        (
            json!({"layouts": [{"kind": "Rows", "spec": {}}]}),
            Some("\"Rows\" is not a layout kind Perses knows"),
        ),
    ];
    for (spec, expected) in cases {
        let r = lint(&[("d.json", &dashboard_with_spec(spec.clone()))], &["p"]);
        let f = file(&r, "d.json");
        match expected {
            None => assert!(f.accepted && !r.has_errors(), "{spec}: {:?}", f.problems),
            Some(text) => {
                assert!(!f.accepted, "{spec}");
                assert!(errors(f)[0].contains(text), "{spec}: {:?}", errors(f));
            }
        }
    }
}

#[test]
fn the_variable_name_rule_is_perses_regexp() {
    for ok in ["job", "my-var", "a.b", "_", "x1", "1x", "-", "1-", "123a"] {
        assert_eq!(variable_name_problem(ok), None, "{ok}");
    }
    for bad in ["", "123", "a-b-c", "node-exporter-job", "a.b.c", "0"] {
        assert!(
            variable_name_problem(bad).unwrap().contains("is not valid"),
            "{bad}"
        );
    }
    assert!(variable_name_problem("__x").unwrap().contains("`__`"));
}

#[test]
fn variable_names_refuse_one_object_or_skip_the_file() {
    let variable = |name: &str| {
        format!(
            r#"{{"kind":"Variable","metadata":{{"name":"{name}","project":"p"}},"spec":{{"kind":"TextVariable","spec":{{}}}}}}"#
        )
    };
    let global = r#"{"kind":"GlobalVariable","metadata":{"name":"a-b-c"},"spec":{"kind":"TextVariable","spec":{}}}"#;
    let list = format!("[{}, {}, {global}]", variable("ok-var"), variable("a-b-c"));
    let r = lint(&[("v.json", &list)], &["p"]);
    let f = file(&r, "v.json");
    assert!(f.accepted);
    let statuses: Vec<Status> = f.resources.iter().map(|r| r.status).collect();
    // The Variable service checks the name; the GlobalVariable service does not (v0.54).
    assert_eq!(
        statuses,
        vec![Status::Loaded, Status::Refused, Status::Loaded]
    );
    assert_eq!(errors(f).len(), 1);
    assert!(errors(f)[0].contains("Variable p/a-b-c: variable name \"a-b-c\" is not valid"));

    let var = |kind: &str, name: &str| {
        let mut v = json!({"kind": kind, "spec": {"name": name}});
        if kind == "ListVariable" {
            v["spec"]["plugin"] = json!({"kind": "P", "spec": {}});
        }
        v
    };
    // (variables, what Perses does, error): the service's refusal costs the dashboard, a
    // decoding error its whole file.
    enum Outcome {
        Loaded,
        ObjectRefused(&'static str),
        FileSkipped(&'static str),
    }
    use Outcome::{FileSkipped, ObjectRefused};
    let cases = [
        (vec![var("TextVariable", "a-b")], Outcome::Loaded),
        (
            vec![var("TextVariable", "a-b-c")],
            ObjectRefused("the Dashboard service refuses the dashboard"),
        ),
        (vec![var("ListVariable", "__x")], ObjectRefused("`__`")),
        // Only digits: TextVariable fails decoding, ListVariable the service's rule.
        (
            vec![var("TextVariable", "123")],
            FileSkipped("holds only digits"),
        ),
        (
            vec![var("ListVariable", "123")],
            ObjectRefused("is not valid"),
        ),
        (
            vec![var("TextVariable", "a b")],
            FileSkipped("contains ' '"),
        ),
        (
            vec![var("TextVariable", "")],
            FileSkipped("name is missing or empty"),
        ),
        (vec![var("Other", "a")], FileSkipped("neither ListVariable")),
        (
            vec![var("TextVariable", "a"), var("ListVariable", "a")],
            FileSkipped("defined twice"),
        ),
    ];
    for (variables, outcome) in cases {
        let spec = json!({"variables": variables});
        let list = format!(
            "[{}, {}]",
            dashboard_with_spec(spec.clone()),
            dashboard("p", "e")
        );
        let r = lint(&[("d.json", &list)], &["p"]);
        let f = file(&r, "d.json");
        let statuses: Vec<Status> = f.resources.iter().map(|r| r.status).collect();
        let (accepted, expected, text) = match outcome {
            Outcome::Loaded => (true, vec![Status::Loaded, Status::Loaded], None),
            ObjectRefused(t) => (true, vec![Status::Refused, Status::Loaded], Some(t)),
            FileSkipped(t) => (false, vec![Status::Refused, Status::Refused], Some(t)),
        };
        assert_eq!(f.accepted, accepted, "{spec}");
        assert_eq!(statuses, expected, "{spec}");
        match text {
            Some(t) => assert!(errors(f)[0].contains(t), "{spec}: {:?}", errors(f)),
            None => assert!(errors(f).is_empty(), "{spec}: {:?}", errors(f)),
        }
    }
}

fn datasource(
    kind: &str,
    project: Option<&str>,
    name: &str,
    plugin: &str,
    default: bool,
) -> String {
    let mut v = json!({"kind": kind, "metadata": {"name": name},
                       "spec": {"default": default, "plugin": {"kind": plugin, "spec": {}}}});
    if let Some(p) = project {
        v["metadata"]["project"] = json!(p);
    }
    v.to_string()
}

#[test]
fn one_default_datasource_per_plugin_kind_and_project() {
    let ds =
        |p: &str, n: &str, plugin: &str, d: bool| datasource("Datasource", Some(p), n, plugin, d);
    let r = lint(
        &[
            ("a.json", &ds("p", "one", "Prom", true)),
            ("b.json", &ds("p", "two", "Prom", true)),
            ("c.json", &ds("p", "loki", "Loki", true)),
            ("d.json", &ds("q", "other-project", "Prom", true)),
            ("e.json", &ds("p", "not-default", "Prom", false)),
            // Redefining the default one is an update, not a second default.
            ("f.json", &ds("p", "ONE", "Prom", true)),
        ],
        &["p", "q"],
    );
    let status = |path: &str| file(&r, path).resources[0].status;
    assert_eq!(status("a.json"), Status::Loaded);
    assert_eq!(status("b.json"), Status::Refused);
    for path in ["c.json", "d.json", "e.json", "f.json"] {
        assert_eq!(status(path), Status::Loaded, "{path}");
    }
    let b = errors(file(&r, "b.json"));
    assert_eq!(b.len(), 1);
    assert!(
        b[0].contains(
            "a default \"Prom\" Datasource already exists in project p: Datasource p/one (a.json)"
        ),
        "{b:?}"
    );
    // The error of a duplicate is still there (a.json and f.json define one resource).
    assert!(errors(file(&r, "a.json"))[0].contains("also defined in f.json"));

    // Once the first default is no longer one, another may be.
    let r = lint(
        &[
            ("a.json", &ds("p", "one", "Prom", true)),
            ("b.json", &ds("p", "one", "Prom", false)),
            ("c.json", &ds("p", "two", "Prom", true)),
        ],
        &["p"],
    );
    assert!(r.resources().all(|r| r.status == Status::Loaded));

    // A project-less default meets the defaults of every project (the file database lists
    // them all); a GlobalDatasource only other GlobalDatasources.
    let r = lint(
        &[
            ("a.json", &ds("p", "one", "Prom", true)),
            (
                "b.json",
                &datasource("Datasource", None, "lost", "Prom", true),
            ),
            (
                "c.json",
                &datasource("GlobalDatasource", None, "g1", "Prom", true),
            ),
            (
                "d.json",
                &datasource("GlobalDatasource", None, "g2", "Prom", true),
            ),
        ],
        &["p"],
    );
    let statuses: Vec<Status> = r.resources().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            Status::Loaded,
            Status::Refused,
            Status::Loaded,
            Status::Refused
        ]
    );
}
