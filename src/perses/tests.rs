//! Tests of the whole lint: reading trees and files, the tree-wide checks (projects, duplicates),
//! the report and its JSON and human forms.

use super::testutil::*;
use super::*;
use serde_json::{Value, json};

/// The threaded, streaming `lint_dir` gives the report of the whole-tree `lint_files`,
/// whatever order the workers finish in: duplicates across files (last one read wins),
/// projects defined in a later file, a skipped file, ignored files.
#[test]
fn lint_dir_matches_the_whole_tree_lint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, String)> = Vec::new();
    for i in 0..60 {
        let project = if i % 7 == 0 { "missing" } else { "team" };
        files.push((
            format!("d{}/dash-{i:02}.json", i % 5),
            json!({"kind": "Dashboard", "metadata": {"name": format!("d{}", i % 40), "project": project},
                   "spec": {"duration": "1h", "display": {"name": format!("D {i}")}}})
            .to_string(),
        ));
    }
    files.push((
        "z/project.yaml".into(),
        "kind: Project\nmetadata:\n  name: team\n".into(),
    ));
    files.push(("broken.json".into(), "{\"kind\": ".into()));
    files.push(("README.md".into(), "not linted".into()));
    files.push(("UPPER.JSON".into(), "{}".into()));
    for (p, c) in &files {
        let path = tmp.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    let whole = lint_tree(&read_tree(tmp.path()).unwrap(), &[]);
    assert!(whole.has_errors(), "the tree has problems to agree on");
    assert!(
        whole
            .files
            .iter()
            .any(|f| f.resources.iter().any(|r| r.overwritten_by.is_some()))
    );
    for _ in 0..5 {
        assert_eq!(lint_dir(tmp.path(), None, &[]).unwrap(), whole);
    }
    assert_eq!(
        lint_dir(tmp.path(), Some("d1"), &[]).unwrap(),
        lint_tree(&read_tree(&tmp.path().join("d1")).unwrap(), &[])
    );
}

#[test]
fn unknown_and_ephemeral_kinds_are_refused() {
    let r = lint(
        &[
            (
                "e.json",
                r#"{"kind":"EphemeralDashboard","metadata":{"name":"t","project":"p"},"spec":{"ttl":"1d"}}"#,
            ),
            ("x.json", r#"{"kind":"Panel","metadata":{"name":"t"}}"#),
            ("c.json", r#"{"kind":"dashboard","metadata":{"name":"t"}}"#),
            ("n.json", r#"{"metadata":{"name":"t"}}"#),
            ("p.json", PROJECT_P),
        ],
        &[],
    );
    // Perses decodes an EphemeralDashboard, then has no service to create it: the file is
    // read, the object refused.
    let e = file(&r, "e.json");
    assert!(e.accepted);
    assert_eq!(errors(e).len(), 1);
    assert!(errors(e)[0].contains("EphemeralDashboard cannot be provisioned"));
    assert_eq!(e.resources[0].project.as_deref(), Some("p"));
    assert_eq!(e.resources[0].status, Status::Refused);
    assert!(
        r.human()
            .contains("e.json: note: Perses reads this file but refuses its only resource: EphemeralDashboard p/t\n")
    );
    // Unknown kinds fail decoding: the whole file is skipped.
    for path in ["x.json", "c.json", "n.json"] {
        assert!(!file(&r, path).accepted, "{path}");
    }
    assert!(errors(file(&r, "x.json"))[0].contains("\"Panel\" cannot be provisioned"));
    assert!(errors(file(&r, "c.json"))[0].contains("did you mean Dashboard?"));
    assert!(errors(file(&r, "n.json"))[0].contains("no `kind` field"));
    assert!(file(&r, "p.json").accepted);
    // An EphemeralDashboard that does not decode (no spec) skips its whole file.
    let list = format!(
        r#"[{}, {{"kind":"EphemeralDashboard","metadata":{{"name":"t","project":"p"}}}}]"#,
        dashboard("p", "d")
    );
    let r = lint(&[("l.json", &list)], &["p"]);
    let f = file(&r, "l.json");
    assert!(!f.accepted);
    assert!(f.resources.iter().all(|r| r.status == Status::Refused));
    assert_eq!(errors(f).len(), 2, "{:?}", errors(f));
}

#[test]
fn project_scoped_kinds_without_a_project_are_stored_outside_any() {
    let r = lint(
        &[
            (
                "empty.json",
                r#"{"kind":"Secret","metadata":{"name":"s","project":""},"spec":{}}"#,
            ),
            (
                "missing.json",
                r#"{"kind":"Variable","metadata":{"name":"v"},"spec":{"kind":"TextVariable","spec":{"value":"x"}}}"#,
            ),
            (
                "list.json",
                &format!("[{}, {}]", dashboard("", "lost"), dashboard("p", "kept")),
            ),
        ],
        &["p"],
    );
    assert!(errors(file(&r, "empty.json"))[0].contains("metadata.project is empty"));
    assert!(errors(file(&r, "missing.json"))[0].contains("metadata.project is missing"));
    assert!(
        errors(file(&r, "missing.json"))[0].contains("(Perses v0.54 stores it outside any project")
    );
    // Perses reads the files and stores the resources with no project: an error, since no
    // project shows them, but not a reason to drop the other objects of the file.
    assert!(r.files.iter().all(|f| f.accepted));
    let statuses: Vec<Status> = r.resources().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        // empty.json, list.json (lost, kept), missing.json
        vec![
            Status::StoredUnreachable,
            Status::StoredUnreachable,
            Status::Loaded,
            Status::StoredUnreachable,
        ]
    );
    let s = r.summary();
    assert_eq!((s.resources, s.refused, s.unreachable), (1, 0, 3));
    assert!(r.has_errors());
    assert!(r.human().contains(
        "list.json: note: Perses stores Dashboard lost with no project: only the API reaches it\n"
    ));
}

#[test]
fn the_project_must_exist_in_the_tree_or_be_known() {
    let dash = dashboard("p", "d");
    let alone = lint(&[("d.json", &dash)], &[]);
    let f = file(&alone, "d.json");
    // Perses reads the file and refuses the object (`applyEntity`).
    assert!(f.accepted);
    assert_eq!(f.resources[0].status, Status::Refused);
    assert_eq!(errors(f).len(), 1);
    assert!(errors(f)[0].contains("project \"p\" does not exist"));
    assert!(errors(f)[0].contains("--known-project p"));

    let known = lint(&[("d.json", &dash)], &["p"]);
    assert_eq!(file(&known, "d.json").resources[0].status, Status::Loaded);
    assert!(!known.has_errors());

    let tree = lint(
        &[
            ("sub/d.json", &dash),
            ("z-project.yaml", "kind: Project\nmetadata:\n  name: p\n"),
        ],
        &[],
    );
    assert_eq!(
        file(&tree, "sub/d.json").resources[0].status,
        Status::Loaded
    );
    assert!(!tree.has_errors(), "{tree:#?}");

    // Only the object in the missing project is refused; the rest of its file loads.
    let list = format!(
        "[{}, {}]",
        dashboard("p", "one"),
        dashboard("nowhere", "two")
    );
    let r = lint(&[("l.json", &list)], &["p"]);
    let f = file(&r, "l.json");
    assert!(f.accepted);
    let statuses: Vec<Status> = f.resources.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Status::Loaded, Status::Refused]);
    assert!(r.human().contains(
        "l.json: note: Perses reads this file but refuses 1 of its 2 resources: Dashboard nowhere/two; the others load"
    ));
    let s = r.summary();
    assert_eq!(
        (s.accepted, s.skipped, s.resources, s.refused),
        (1, 0, 1, 1)
    );
}

#[test]
fn a_project_in_a_skipped_file_does_not_exist() {
    // The Project is fine, but its file also holds a broken object, so the dashboard's
    // project is never created.
    let projects = format!(r#"[{PROJECT_P}, {{"kind":"Bogus","metadata":{{"name":"x"}}}}]"#);
    let r = lint(
        &[
            ("projects.json", &projects),
            ("d.json", &dashboard("p", "d")),
        ],
        &[],
    );
    assert!(!file(&r, "projects.json").accepted);
    let d = file(&r, "d.json");
    assert!(d.accepted);
    assert_eq!(d.resources[0].status, Status::Refused);
    assert!(
        errors(d)[0].contains("defined in projects.json, which Perses skips"),
        "{:?}",
        errors(d)
    );
    // A known project does not depend on the file.
    let r = lint(
        &[
            ("projects.json", &projects),
            ("d.json", &dashboard("p", "d")),
        ],
        &["p"],
    );
    assert_eq!(file(&r, "d.json").resources[0].status, Status::Loaded);
}

#[test]
fn the_same_key_in_two_files_is_an_error_naming_both() {
    let r = lint(
        &[
            ("a.json", &dashboard("p", "same")),
            ("b/c.json", &dashboard("p", "same")),
            ("other.json", &dashboard("p", "other")),
            ("p.json", PROJECT_P),
        ],
        &[],
    );
    // Perses walks a.json before b/, so b/c.json is the one read last.
    let a = file(&r, "a.json");
    let c = file(&r, "b/c.json");
    assert_eq!(errors(a).len(), 1);
    assert!(
        errors(a)[0].contains("Dashboard p/same is also defined in b/c.json"),
        "{:?}",
        errors(a)
    );
    assert!(errors(a)[0].contains("(b/c.json) overwrites"));
    assert!(errors(c)[0].contains("also defined in a.json"));
    // Both files still load: the status says what Perses does, the error why it is wrong.
    assert!(a.accepted && c.accepted);
    assert!(errors(file(&r, "other.json")).is_empty());
    assert!(r.has_errors());
    // Different projects, or a different kind, are different resources.
    let r = lint(
        &[
            ("a.json", &dashboard("p", "same")),
            ("b.json", &dashboard("q", "same")),
        ],
        &["p", "q"],
    );
    assert!(!r.has_errors());
}

#[test]
fn the_same_key_twice_in_one_file_is_a_warning() {
    let list = format!("[{}, {}]", dashboard("p", "d"), dashboard("p", "d"));
    let r = lint(&[("l.json", &list)], &["p"]);
    let f = file(&r, "l.json");
    assert!(f.accepted);
    assert!(!r.has_errors());
    assert!(
        warnings(f)[0].contains("defined 2 times in this file"),
        "{:?}",
        warnings(f)
    );
}

#[test]
fn one_bad_object_skips_the_whole_list_file() {
    let text = format!(
        "[\n  {},\n  {{\"kind\": \"Dashboard\", \"metadata\": {{\"name\": \"bad name\", \"project\": \"p\"}}, \"spec\": {{}}}},\n  {}\n]\n",
        dashboard("p", "one"),
        dashboard("p", "three")
    );
    let r = lint(&[("list.json", &text), ("p.json", PROJECT_P)], &[]);
    let f = file(&r, "list.json");
    assert!(!f.accepted);
    assert_eq!(f.resources.len(), 3, "every identifiable object is listed");
    assert!(f.resources.iter().all(|r| r.status == Status::Refused));
    // The problems of the bad object, at its line, and nothing for the good ones.
    assert!(
        f.problems.iter().all(|p| p.line == Some(3)),
        "{:?}",
        f.problems
    );
    assert_eq!(errors(f).len(), 1, "{:?}", f.problems);
    assert!(errors(f)[0].contains("metadata.name \"bad name\""));
    assert!(warnings(f)[0].contains("spec is empty"));
    let s = r.summary();
    assert_eq!((s.files, s.accepted, s.skipped), (2, 1, 1));
    assert_eq!(s.resources, 1, "only the Project of p.json is loaded");
    assert_eq!(s.refused, 3);
    assert!(
        r.human()
            .contains("list.json: note: Perses skips this whole file (3 resources not loaded)")
    );
}

#[test]
fn yaml_with_several_documents_warns_and_counts_only_the_first() {
    let text = "# comment\nkind: GlobalSecret\nmetadata:\n  name: first\n---\nkind: GlobalSecret\nmetadata:\n  name: second\n";
    let r = lint(&[("roles.yaml", text)], &[]);
    let f = file(&r, "roles.yaml");
    assert!(f.accepted);
    assert_eq!(f.resources.len(), 1);
    assert_eq!(f.resources[0].name, "first");
    assert_eq!(f.problems.len(), 1);
    assert_eq!(f.problems[0].severity, Severity::Warning);
    assert_eq!(f.problems[0].line, Some(5));
    assert!(
        f.problems[0]
            .message
            .contains("reads only the first document")
    );
    assert!(!r.has_errors());

    // Markers around a single document, or an empty trailing one, are not worth a warning.
    for single in [
        "---\nkind: GlobalSecret\nmetadata:\n  name: a\n",
        "---\nkind: GlobalSecret\nmetadata:\n  name: a\n...\n",
        "kind: GlobalSecret\nmetadata:\n  name: a\n---\n# nothing\n",
    ] {
        let p = parse_file("x.yaml", single.as_bytes()).unwrap();
        assert!(p.warnings.is_empty(), "{single:?}: {:?}", p.warnings);
        assert_eq!(p.objects.len(), 1);
    }
    // A syntax error in an ignored document does not matter to Perses.
    let p = parse_file(
        "x.yaml",
        b"kind: GlobalSecret\nmetadata: {name: a}\n---\n[oops\n",
    )
    .unwrap();
    assert_eq!(p.objects.len(), 1);
    assert_eq!(p.warnings[0].line, Some(3));
}

#[test]
fn json_parse_errors_carry_the_line() {
    let text = "{\n  \"kind\": \"GlobalSecret\",\n  \"metadata\": {\"name\": \"a\"\n}\n";
    let r = lint(&[("bad.json", text)], &[]);
    let f = file(&r, "bad.json");
    assert!(!f.accepted);
    assert_eq!(f.problems.len(), 1);
    assert_eq!(f.problems[0].line, Some(5), "{:?}", f.problems);
    assert!(
        f.problems[0].message.starts_with("invalid JSON: "),
        "{:?}",
        f.problems
    );
    assert!(r.human().contains("bad.json:5: error: invalid JSON: "));
}

#[test]
fn yaml_parse_errors_carry_the_line() {
    let text = "kind: GlobalSecret\nmetadata:\n  name: a\n   bad: indent\n";
    let r = lint(&[("bad.yml", text)], &[]);
    let f = file(&r, "bad.yml");
    assert!(!f.accepted);
    assert_eq!(f.problems.len(), 1);
    assert_eq!(f.problems[0].line, Some(4), "{:?}", f.problems);
    assert!(
        f.problems[0].message.starts_with("invalid YAML: "),
        "{:?}",
        f.problems
    );
    assert!(
        !f.problems[0].message.contains("at line"),
        "no doubled position"
    );
}

#[test]
fn a_json_file_holding_yaml_is_read_as_yaml_with_a_warning() {
    // Trailing comma: invalid JSON, valid YAML flow syntax; Perses falls back to YAML.
    let text = "[\n  {\"kind\": \"GlobalSecret\", \"metadata\": {\"name\": \"a\"},}\n]\n";
    let r = lint(&[("trailing.json", text)], &[]);
    let f = file(&r, "trailing.json");
    assert!(f.accepted);
    assert_eq!(f.resources.len(), 1);
    assert_eq!(warnings(f).len(), 1);
    assert!(warnings(f)[0].contains("reading it as YAML"));
    // And a .yaml file that is plain JSON is fine as it is.
    let p = parse_file(
        "x.yaml",
        br#"{"kind":"GlobalSecret","metadata":{"name":"a"}}"#,
    )
    .unwrap();
    assert!(p.warnings.is_empty());
}

#[test]
fn list_items_carry_their_start_line() {
    let json = "[\n  {\"kind\": \"A\", \"s\": \"[,{\\\"\"},\n\n  {\"kind\": \"B\"}\n]";
    let p = parse_file("l.json", json.as_bytes()).unwrap();
    assert!(p.list);
    let lines: Vec<_> = p.objects.iter().map(|o| o.line).collect();
    assert_eq!(lines, vec![Some(2), Some(4)]);
    let yaml = "- kind: A\n  metadata: {}\n-\n  kind: B\n";
    let p = parse_file("l.yaml", yaml.as_bytes()).unwrap();
    let lines: Vec<_> = p.objects.iter().map(|o| o.line).collect();
    assert_eq!(lines, vec![Some(1), Some(4)]);
}

#[test]
fn empty_files_lists_and_non_objects_are_refused() {
    let r = lint(
        &[
            ("empty.yaml", ""),
            ("list.json", "[]"),
            ("scalar.json", "\"x\""),
            (
                "mixed.json",
                "[{\"kind\":\"GlobalSecret\",\"metadata\":{\"name\":\"a\"}},\n 3]",
            ),
        ],
        &[],
    );
    assert!(errors(file(&r, "empty.yaml"))[0].contains("holds no object"));
    assert!(errors(file(&r, "list.json"))[0].contains("holds no object"));
    assert!(errors(file(&r, "scalar.json"))[0].contains("found a string"));
    let m = file(&r, "mixed.json");
    assert_eq!(m.problems[0].line, Some(2));
    assert!(
        m.problems[0]
            .message
            .contains("item 2 of the list is a number")
    );
    assert!(r.files.iter().all(|f| !f.accepted));
    assert!(parse_resources("x.json", b"[]").unwrap().is_empty());
}

#[test]
fn other_files_are_ignored_and_upper_case_extensions_warned() {
    let r = lint(
        &[
            ("README.md", "# hi"),
            ("Chart.JSON", "{}"),
            ("r.yml", "kind: GlobalSecret\nmetadata:\n  name: a\n"),
        ],
        &[],
    );
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.ignored, vec!["Chart.JSON", "README.md"]);
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].path, "Chart.JSON");
    assert!(!r.has_errors());
    let s = r.summary();
    assert_eq!((s.ignored, s.warnings), (2, 1));
}

#[test]
fn global_kinds_ignore_a_project_with_a_warning() {
    let r = lint(
        &[(
            "g.json",
            r#"{"kind":"GlobalVariable","metadata":{"name":"v","project":"p"},"spec":{"kind":"TextVariable","spec":{}}}"#,
        )],
        &[],
    );
    let f = file(&r, "g.json");
    assert!(f.accepted);
    assert_eq!(f.resources[0].project, None);
    assert!(warnings(f)[0].contains("is ignored: GlobalVariable is not a project resource"));
}

#[test]
fn paths_are_ordered_as_perses_walks_them() {
    let mut v = vec!["a.json", "a/b.json", "B.json", "a-b.json"];
    v.sort_by(|a, b| cmp_paths(a, b));
    assert_eq!(v, vec!["B.json", "a/b.json", "a-b.json", "a.json"]);
}

#[test]
fn json_output_is_stable() {
    let r = lint(
        &[
            ("p.json", PROJECT_P),
            ("d.json", &dashboard("p", "d")),
            ("bad.json", &dashboard("", "x")),
            ("m.json", &dashboard("q", "m")),
            ("broken.json", "{"),
            ("notes.txt", "x"),
        ],
        &[],
    );
    let v = r.to_json();
    assert_eq!(v["format_version"], "2.0");
    let files = v["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        vec!["bad.json", "broken.json", "d.json", "m.json", "p.json"]
    );
    assert_eq!(files[0]["status"], "accepted");
    assert_eq!(
        files[0]["resources"][0],
        json!({"kind": "Dashboard", "project": null, "name": "x",
               "status": "stored-unreachable", "overwritten_by": null})
    );
    assert_eq!(files[0]["problems"][0]["severity"], "error");
    assert_eq!(files[0]["problems"][0]["line"], Value::Null);
    assert_eq!(files[1]["status"], "skipped");
    assert_eq!(files[2]["status"], "accepted");
    assert_eq!(
        files[2]["resources"][0],
        json!({"kind": "Dashboard", "project": "p", "name": "d", "status": "loaded",
               "overwritten_by": null})
    );
    assert_eq!(files[3]["resources"][0]["status"], "refused");
    assert_eq!(files[4]["resources"][0]["project"], Value::Null);
    assert_eq!(
        v["summary"],
        json!({"files": 5, "accepted": 4, "skipped": 1, "ignored": 1, "resources": 2,
               "kinds": {"Dashboard": 1, "Project": 1}, "refused": 1,
               "stored_unreachable": 1, "errors": 3, "warnings": 0})
    );
    assert_eq!(v["ignored"], json!(["notes.txt"]));
    // The printed form keeps the documented key order and parses to the same value.
    let text = r.to_json_string();
    assert!(text.starts_with("{\n  \"format_version\": \"2.0\",\n  \"root\": \"\","));
    assert!(text.contains(
        "\"name\": \"d\",\n          \"status\": \"loaded\",\n          \"overwritten_by\": null"
    ), "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
}

#[test]
fn human_output_has_one_line_per_problem_and_a_summary() {
    let r = lint(
        &[
            ("p.json", PROJECT_P),
            ("d.json", &dashboard("p", "d")),
            ("bad.json", &dashboard("", "x")),
            ("m.json", &dashboard("q", "m")),
            ("broken.json", "{"),
        ],
        &[],
    );
    let text = r.human();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(
        lines[0].starts_with("bad.json: error: Dashboard x: metadata.project is empty"),
        "{text}"
    );
    assert!(
        lines[1]
            == "bad.json: note: Perses stores Dashboard x with no project: only the API reaches it",
        "{text}"
    );
    assert!(lines[2].starts_with("broken.json:"), "{text}");
    assert_eq!(lines[3], "broken.json: note: Perses skips this whole file");
    assert!(
        lines[4].starts_with("m.json: error: Dashboard q/m: project \"q\" does not exist"),
        "{text}"
    );
    assert_eq!(
        lines[5],
        "m.json: note: Perses reads this file but refuses its only resource: Dashboard q/m"
    );
    assert_eq!(
        lines[6],
        "5 files: 4 accepted, 1 skipped; 2 resources loaded (1 Dashboard, 1 Project), 1 refused, 1 outside any project; 3 errors, 0 warnings; 0 other files ignored"
    );
}

#[test]
fn sub_paths_are_relative_and_must_exist() {
    assert_eq!(normalize_sub_path("./prod//dash/").unwrap(), "prod/dash");
    assert_eq!(normalize_sub_path(".").unwrap(), "");
    assert!(matches!(
        normalize_sub_path("../x"),
        Err(LintError::BadSubPath { .. })
    ));
    assert!(matches!(
        normalize_sub_path("/x"),
        Err(LintError::BadSubPath { .. })
    ));
    let tree = files(&[("prod/a.json", "1"), ("prod2/b.json", "2"), ("c.json", "3")]);
    let sel = select_sub_path(tree.clone(), "prod/", "img").unwrap();
    assert_eq!(sel, files(&[("a.json", "1")]));
    let err = select_sub_path(tree, "dev", "img").unwrap_err();
    assert_eq!(err.to_string(), "sub-path \"dev\" does not exist in img");
}

#[test]
fn read_tree_reads_recursively_in_walk_order_and_skips_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/deep")).unwrap();
    std::fs::write(root.join("a.json"), "1").unwrap();
    std::fs::write(root.join("a/deep/x.yaml"), "2").unwrap();
    std::fs::write(root.join("notes.txt"), "3").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("a.json"), root.join("link.json")).unwrap();
    let tree = read_tree(root).unwrap();
    let paths: Vec<&str> = tree.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, vec!["a/deep/x.yaml", "a.json", "notes.txt"]);
    assert_eq!(tree.files[1].1, b"1");
    #[cfg(unix)]
    {
        assert_eq!(tree.warnings.len(), 1);
        assert_eq!(tree.warnings[0].path, "link.json");
        let report = lint_tree(&tree, &[]);
        assert!(
            report
                .human()
                .starts_with("link.json: warning: symbolic link not followed")
        );
    }

    let sub = read_tree_at(root, Some("a")).unwrap();
    assert_eq!(sub.files[0].0, "deep/x.yaml");
    assert!(matches!(
        read_tree_at(root, Some("nope")),
        Err(LintError::SubPathNotFound { .. })
    ));
    assert!(matches!(
        read_tree(&root.join("missing")),
        Err(LintError::NotFound { .. })
    ));
    assert!(matches!(
        read_tree(&root.join("a.json")),
        Err(LintError::NotADirectory { .. })
    ));
}

#[test]
fn names_and_projects_are_compared_as_perses_stores_them() {
    let r = lint(
        &[
            ("a.json", &dashboard("p", "CaseDash")),
            ("b.json", &dashboard("P", "casedash")),
            ("c.json", &dashboard("JUDGE", "d")),
            ("j.yaml", "kind: Project\nmetadata:\n  name: judge\n"),
        ],
        &["p"],
    );
    let a = file(&r, "a.json");
    assert_eq!(a.resources[0].status, Status::Loaded);
    assert_eq!(a.resources[0].overwritten_by.as_deref(), Some("b.json"));
    assert_eq!(file(&r, "b.json").resources[0].overwritten_by, None);
    assert!(
        errors(a)[0].contains(
            "Dashboard p/CaseDash is also defined in b.json (`Dashboard P/casedash` and \
             `Dashboard p/CaseDash` are one resource: Perses lowercases names and projects)"
        ),
        "{:?}",
        errors(a)
    );
    // Project JUDGE is project judge.
    let c = file(&r, "c.json");
    assert_eq!(c.resources[0].status, Status::Loaded);
    assert!(errors(c).is_empty(), "{:?}", errors(c));
    // So is a known project.
    let r = lint(&[("d.json", &dashboard("perses", "d"))], &["Perses"]);
    assert!(!r.has_errors());
    assert_eq!(
        r.resources().next().unwrap().stored_key().to_string(),
        "Dashboard perses/d"
    );
}

#[test]
fn duplicates_in_one_list_mark_the_earlier_ones_overwritten() {
    let list = format!(
        "[{}, {}, {}]",
        dashboard("p", "d"),
        dashboard("p", "D"),
        dashboard("p", "e")
    );
    let r = lint(&[("l.json", &list)], &["p"]);
    let f = file(&r, "l.json");
    let over: Vec<Option<&str>> = f
        .resources
        .iter()
        .map(|r| r.overwritten_by.as_deref())
        .collect();
    assert_eq!(over, vec![Some("l.json"), None, None]);
    assert!(warnings(f)[0].contains("defined 2 times in this file"));
    // A refused definition overwrites nothing.
    let list = format!(
        "[{}, {}]",
        dashboard("p", "d"),
        r#"{"kind":"EphemeralDashboard","metadata":{"name":"d","project":"p"},"spec":{}}"#
    );
    let r = lint(&[("l.json", &list)], &["p"]);
    assert!(r.resources().all(|r| r.overwritten_by.is_none()));
}
