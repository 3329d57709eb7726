//! What changes inside artifacts: `plan`'s content diff, `diff`, `lint REF`, and the plan checks
//! on the new artifact (sub_path exists, Perses would load its files), with images pushed by
//! `perses-oci push` to the real registry.

use crate::plan::{env_toml, plan_json, project};
use crate::support::{self, bed};
use serde_json::{Value, json};
use std::path::Path;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bed().cmd().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A resources tree: `prod/` holds the corpus' dev-data (without the kind Perses refuses).
fn tree(root: &Path) {
    for (k, v) in support::corpus_files("dev-data", "prod") {
        if k.ends_with("ephemeraldashboard.json") {
            continue;
        }
        let p = root.join(&k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v).unwrap();
    }
}

fn push(dir: &Path, image: &str) -> String {
    let (code, out, err) = run(&["push", dir.to_str().unwrap(), "--image", image]);
    assert_eq!(code, 0, "{out}\n{err}");
    let at = out.find("@sha256:").expect(&out);
    out[at + 1..at + 72].to_string()
}

/// Changes the title of the project `perses`' Demo dashboard in 9-dashboard.json.
fn edit_dashboard(root: &Path) {
    let p = root.join("prod/9-dashboard.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    for d in v.as_array_mut().unwrap() {
        if d["metadata"]["name"] == "Demo" && d["metadata"]["project"] == "perses" {
            d["spec"]["display"] = json!({"name": "Demo, renamed"});
        }
    }
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Rewrites every JSON file compact and with keys sorted (serde_json's maps are ordered): other
/// whitespace and key order, equal resources.
fn reformat(root: &Path) {
    for e in std::fs::read_dir(root.join("prod")).unwrap() {
        let p = e.unwrap().path();
        let before = std::fs::read(&p).unwrap();
        let v: Value = serde_json::from_slice(&before).unwrap();
        let after = serde_json::to_vec(&v).unwrap();
        assert_ne!(before, after, "{} must really be reformatted", p.display());
        std::fs::write(&p, after).unwrap();
    }
}

#[tokio::test]
async fn plan_shows_which_dashboards_change_and_a_reformat_is_no_change() {
    let bed = bed();
    let ns = support::unique_ns("content");
    let client = bed.client("prod").await;
    support::create_namespace(&client, &ns).await;
    support::create_chart_workload(&client, &ns, None).await;
    let image = format!("{}/{ns}/resources", bed.registry);
    let tmp = tempfile::tempdir().unwrap();
    let v1 = tmp.path().join("v1");
    tree(&v1);
    push(&v1, &format!("{image}:v1"));
    let dir = project(&[(
        "prod",
        env_toml("prod", &ns, &image, "v1", "sub_path = \"prod\"\n"),
    )]);
    let (code, out, err) = run(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "apply",
        "--auto-approve",
        "--no-wait",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");

    // v2: one dashboard renamed.
    let v2 = tmp.path().join("v2");
    tree(&v2);
    edit_dashboard(&v2);
    push(&v2, &format!("{image}:v2"));
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v2", "sub_path = \"prod\"\n"),
    )
    .unwrap();
    let (code, v, err) = plan_json(dir.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    let content = &v["environments"][0]["changes"][0]["content"];
    assert_eq!(content["changes"].as_array().unwrap().len(), 1, "{content}");
    let c = &content["changes"][0];
    assert_eq!(
        (
            c["change"].as_str(),
            c["kind"].as_str(),
            c["project"].as_str(),
            c["name"].as_str()
        ),
        (
            Some("changed"),
            Some("Dashboard"),
            Some("perses"),
            Some("Demo")
        )
    );
    assert_eq!(
        c["path"], "9-dashboard.json",
        "paths are relative to the mount (sub_path applied)"
    );
    let diff = c["diff"].as_str().unwrap();
    assert!(diff.starts_with("--- before\n+++ after\n@@"), "{diff}");
    assert!(
        diff.contains("\n+      \"name\": \"Demo, renamed\"\n"),
        "{diff}"
    );
    assert!(
        diff.lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count()
            >= 1
    );
    assert!(content["unchanged"].as_u64().unwrap() > 30, "{content}");
    let (_, human, _) = run(&["--dir", dir.path().to_str().unwrap(), "plan"]);
    assert!(
        human.contains("Content: 0 added, 1 changed, 0 removed")
            && human.contains("~ Dashboard perses/Demo (changed, 9-dashboard.json)"),
        "{human}"
    );
    let (_, md, _) = run(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "plan",
        "--format",
        "markdown",
    ]);
    assert!(
        md.contains("<summary>changed <code>Dashboard perses/Demo</code>"),
        "{md}"
    );

    // `diff` says the same, between the two images.
    let (code, out, _) = run(&[
        "diff",
        &format!("{image}:v1"),
        &format!("{image}:v2"),
        "--sub-path",
        "prod",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("~ Dashboard perses/Demo") && out.contains("0 added, 1 changed, 0 removed"),
        "{out}"
    );

    // v3: v1's resources, reformatted: the tag changes, the content does not.
    let v3 = tmp.path().join("v3");
    tree(&v3);
    reformat(&v3);
    let d1 = push(&v3, &format!("{image}:v3"));
    assert!(!d1.is_empty());
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v3", "sub_path = \"prod\"\n"),
    )
    .unwrap();
    let (code, v, err) = plan_json(dir.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["environments"][0]["changes"][0]["action"], "update");
    assert_eq!(
        v["environments"][0]["changes"][0]["content"],
        Value::Null,
        "{v}"
    );
    let (code, out, _) = run(&["diff", &format!("{image}:v1"), &format!("{image}:v3")]);
    assert_eq!(code, 0, "{out}");
    // A directory against an image works too.
    let (code, _, _) = run(&["diff", v1.to_str().unwrap(), &format!("{image}:v3")]);
    assert_eq!(code, 0);
}

#[tokio::test]
async fn plan_refuses_a_missing_sub_path_and_files_perses_would_skip() {
    let bed = bed();
    let ns = support::unique_ns("content-checks");
    let client = bed.client("prod").await;
    support::create_namespace(&client, &ns).await;
    support::create_chart_workload(&client, &ns, None).await;
    let image = format!("{}/{ns}/resources", bed.registry);
    let tmp = tempfile::tempdir().unwrap();
    let v1 = tmp.path().join("v1");
    tree(&v1);
    push(&v1, &format!("{image}:v1"));
    // The file asks for sub_path staging, which the artifact does not have.
    let dir = project(&[(
        "prod",
        env_toml("prod", &ns, &image, "v1", "sub_path = \"staging\"\n"),
    )]);
    let (code, v, _) = plan_json(dir.path(), &[]);
    assert_eq!(code, 1, "{v}");
    let checks = v["environments"][0]["checks"].as_array().unwrap();
    let c = checks
        .iter()
        .find(|c| c["code"] == "sub_path_missing")
        .expect("sub_path check");
    assert!(
        c["message"].as_str().unwrap().contains("\"staging\"")
            && c["message"].as_str().unwrap().contains("prod"),
        "{c}"
    );

    // An artifact with a file Perses would skip (pushed with --no-lint) fails the plan check.
    let bad = tmp.path().join("bad");
    tree(&bad);
    std::fs::copy(
        support::repo_root().join("../shared/corpus/perses/dev-data/ephemeraldashboard.json"),
        bad.join("prod/ephemeraldashboard.json"),
    )
    .unwrap();
    let (code, out, err) = run(&[
        "push",
        bad.to_str().unwrap(),
        "--image",
        &format!("{image}:bad"),
        "--no-lint",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let dir = project(&[(
        "prod",
        env_toml("prod", &ns, &image, "bad", "sub_path = \"prod\"\n"),
    )]);
    let (code, v, _) = plan_json(dir.path(), &[]);
    assert_eq!(code, 1, "{v}");
    let checks = v["environments"][0]["checks"].as_array().unwrap();
    let c = checks
        .iter()
        .find(|c| c["code"] == "artifact_lint")
        .expect("lint check");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("ephemeraldashboard.json"),
        "{c}"
    );
    // lint reads the image directly, too.
    let (code, out, _) = run(&["lint", &format!("{image}:bad"), "--sub-path", "prod"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        // Perses reads the file and refuses the EphemeralDashboard in it.
        out.contains("ephemeraldashboard.json") && out.contains("1 refused"),
        "{out}"
    );
    let (code, out, _) = run(&["lint", &format!("{image}:v1"), "--sub-path", "prod"]);
    assert_eq!(code, 0, "{out}");
}
