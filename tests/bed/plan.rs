//! `plan`, `validate` and `import` through the real binary against the real bed.

use crate::support::{self, ChartArtifact, Reg, bed};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DeleteParams};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A project directory with one environment file per (name, toml).
pub fn project(envs: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("environments")).unwrap();
    for (name, text) in envs {
        std::fs::write(dir.path().join(format!("environments/{name}.toml")), text).unwrap();
    }
    dir
}

pub fn env_toml(context: &str, ns: &str, image: &str, tag: &str, extra: &str) -> String {
    format!(
        "[target]\ncontext = \"{context}\"\nnamespace = \"{ns}\"\n\n[artifact]\nname = \"perses-resources\"\nimage = \"{image}\"\ntag = \"{tag}\"\npull_policy = \"IfNotPresent\"\nmount_path = \"/etc/perses/provisioning\"\n{extra}"
    )
}

/// A realistic artifact: the corpus' dev-data (a consistent set Perses loads, minus the one
/// kind it refuses) under `prod/`, plus a file that makes each variant's digest different.
pub fn dashboards(variant: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = support::corpus_files("dev-data", "prod");
    files.remove("prod/ephemeraldashboard.json");
    files.insert("prod/variant.txt".into(), variant.as_bytes().to_vec());
    files
}

/// A namespace on `context` with the chart's workload (optionally an artifact) and a repository
/// with `tag` pushed; returns (namespace, image, digest).
pub async fn scenario(
    context: &str,
    artifact: Option<ChartArtifact>,
    tag: &str,
) -> (String, String, String) {
    let bed = bed();
    let client = bed.client(context).await;
    let ns = support::unique_ns(&format!("plan-{context}"));
    support::create_namespace(&client, &ns).await;
    let image = format!("{}/{ns}/perses-resources", bed.registry);
    let digest = support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        tag,
        &dashboards("a"),
    )
    .await;
    let artifact = artifact.map(|mut a| {
        a.reference = a.reference.replace("IMAGE", &image);
        a
    });
    support::create_chart_workload(&client, &ns, artifact.as_ref()).await;
    (ns, image, digest)
}

pub fn plan_json(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = bed()
        .cmd()
        .arg("--dir")
        .arg(dir)
        .args(["plan", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "json: {e}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap(),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn plan_human(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = bed()
        .cmd()
        .arg("--dir")
        .arg(dir)
        .arg("plan")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn chart_workload_without_artifact_plans_one_add() {
    let (ns, image, digest) = scenario("prod", None, "v1.2.0").await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1.2.0", ""))]);
    let (code, v, err) = plan_json(dir.path(), &["--detailed-exitcode"]);
    assert_eq!(code, 2, "{v}\n{err}");
    let env = &v["environments"][0];
    assert_eq!(env["changes"].as_array().unwrap().len(), 1, "{v}");
    let c = &env["changes"][0];
    assert_eq!(c["action"], "add");
    assert_eq!(c["after"]["reference"], format!("{image}:v1.2.0@{digest}"));
    assert_eq!(v["summary"]["add"], 1);
    let (code, text) = plan_human(dir.path(), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Plan: 1 to add, 0 to change, 0 to remove."),
        "{text}"
    );
}

#[tokio::test]
async fn helm_owned_artifact_with_older_tag_is_one_change_owned_by_helm() {
    let art = ChartArtifact::new("IMAGE:v1.1.0");
    let (ns, image, _) = scenario("prod", Some(art), "v1.2.0").await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1.2.0", ""))]);
    let (code, v, err) = plan_json(dir.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    let c = &v["environments"][0]["changes"][0];
    assert_eq!(c["action"], "update", "{v}");
    assert_eq!(c["reasons"][0]["kind"], "tag_changed", "{v}");
    assert_eq!(c["conflicts_with"], serde_json::json!(["helm"]));
    let (_, text) = plan_human(dir.path(), &[]);
    assert!(
        text.contains("helm") && text.contains("--force-conflicts"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to add, 1 to change, 0 to remove."),
        "{text}"
    );
}

#[tokio::test]
async fn re_pushed_tag_is_reported_as_moved() {
    let bed = bed();
    let (ns, image, d1) = scenario("prod", None, "v1.2.0").await;
    // The workload pins the first push; then the same tag is pushed with other content.
    let client = bed.client("prod").await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    sts.delete("perses", &DeleteParams::default())
        .await
        .unwrap();
    let mut art = ChartArtifact::new(&format!("{image}:v1.2.0@{d1}"));
    art.pull_policy = Some("IfNotPresent".into());
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.delete("perses", &DeleteParams::default())
        .await
        .unwrap();
    support::create_chart_workload(&client, &ns, Some(&art)).await;
    let d2 = support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v1.2.0",
        &dashboards("b"),
    )
    .await;
    assert_ne!(d1, d2);
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1.2.0", ""))]);
    let (_, v, err) = plan_json(dir.path(), &[]);
    let c = &v["environments"][0]["changes"][0];
    assert_eq!(c["reasons"][0]["kind"], "tag_moved", "{v}\n{err}");
    assert_eq!(c["reasons"][0]["from"], d1.as_str());
    assert_eq!(c["reasons"][0]["to"], d2.as_str());
}

#[tokio::test]
async fn errors_are_clear_and_do_not_hide_other_environments() {
    let bed = bed();
    let (ns, image, _) = scenario("prod", None, "v1.2.0").await;
    let good = env_toml("prod", &ns, &image, "v1.2.0", "");
    let missing_tag = env_toml("prod", &ns, &image, "v9.9.9", "");
    let missing_ns = env_toml("prod", "no-such-namespace", &image, "v1.2.0", "");
    let forbidden = env_toml("prod-none", &ns, &image, "v1.2.0", "");
    // A port nothing listens on: the registry is down.
    let down_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = env_toml(
        "prod",
        &ns,
        &format!("127.0.0.1:{down_port}/x/perses"),
        "v1",
        "",
    );
    let bad = good.replace("mount_path", "mout_path");
    let dir = project(&[
        ("a-good", good),
        ("b-missing-tag", missing_tag),
        ("c-missing-workload", missing_ns),
        ("d-forbidden", forbidden),
        ("e-registry-down", down),
        ("f-bad-config", bad),
    ]);
    let (code, v, err) = plan_json(dir.path(), &["--all"]);
    assert_eq!(code, 1, "{v}\n{err}");
    let envs = v["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 6);
    let by = |n: &str| envs.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(by("a-good")["error"], Value::Null);
    assert_eq!(by("a-good")["changes"][0]["action"], "add");
    let msg = |n: &str| {
        by(n)["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let m = msg("b-missing-tag");
    assert!(
        m.contains("v9.9.9")
            && m.contains(&bed.registry)
            && m.contains(&format!("{ns}/perses-resources")),
        "{m}"
    );
    let m = msg("c-missing-workload");
    assert!(
        m.contains("not found")
            && m.contains("no-such-namespace")
            && m.contains("perses")
            && m.contains("prod"),
        "{m}"
    );
    let m = msg("d-forbidden");
    assert!(
        m.contains("forbidden") && m.contains("get") && m.contains("statefulsets"),
        "{m}"
    );
    let m = msg("e-registry-down");
    assert!(
        m.contains("unreachable") && m.contains(&format!("127.0.0.1:{down_port}")),
        "{m}"
    );
    let m = msg("f-bad-config");
    assert!(
        m.contains("f-bad-config.toml:") && m.contains("mout_path") && m.contains("mount_path"),
        "{m}"
    );
}

#[tokio::test]
async fn plan_all_across_two_clusters_and_readonly_plans() {
    let (ns_p, image_p, _) = scenario("prod", None, "v1").await;
    let (ns_s, image_s, _) = scenario("staging", None, "v1").await;
    let dir = project(&[
        ("prod", env_toml("prod", &ns_p, &image_p, "v1", "")),
        ("staging", env_toml("staging", &ns_s, &image_s, "v1", "")),
        (
            "prod-ro",
            env_toml("prod-readonly", &ns_p, &image_p, "v1", ""),
        ),
    ]);
    let (code, v, err) = plan_json(dir.path(), &["--all"]);
    assert_eq!(code, 0, "{v}\n{err}");
    for e in v["environments"].as_array().unwrap() {
        assert_eq!(e["error"], Value::Null, "{e}");
        assert_eq!(e["changes"][0]["action"], "add", "{e}");
    }
    let ro = v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "prod-ro")
        .unwrap();
    assert!(
        ro["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "dry_run_skipped"),
        "{ro}"
    );
}

#[tokio::test]
async fn gate_off_plan_reports_the_drop_from_the_dry_run() {
    let (ns, image, _) = scenario("gate-off", None, "v1").await;
    let dir = project(&[("g", env_toml("gate-off", &ns, &image, "v1", ""))]);
    let (code, v, _) = plan_json(dir.path(), &[]);
    assert_eq!(code, 1, "{v}");
    let checks = v["environments"][0]["checks"].as_array().unwrap();
    let c = checks
        .iter()
        .find(|c| c["code"] == "image_volume_dropped")
        .expect("drop reported");
    assert!(
        c["message"].as_str().unwrap().contains("ImageVolume"),
        "{c}"
    );
}

#[tokio::test]
async fn provisioning_folder_and_mount_clash_checks() {
    let (ns, image, _) = scenario("prod", None, "v1").await;
    let toml = env_toml("prod", &ns, &image, "v1", "")
        .replace("/etc/perses/provisioning", "/etc/perses/prov");
    let dir = project(&[("prod", toml)]);
    let (code, v, _) = plan_json(dir.path(), &[]);
    assert_eq!(code, 1, "{v}");
    let checks = v["environments"][0]["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["code"] == "provisioning_folder" && c["severity"] == "error"),
        "{v}"
    );
    let toml =
        env_toml("prod", &ns, &image, "v1", "").replace("/etc/perses/provisioning", "/perses");
    let dir = project(&[("prod", toml)]);
    let (_, v, _) = plan_json(dir.path(), &[]);
    let checks = v["environments"][0]["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c["code"] == "mount_path_taken"),
        "{v}"
    );
}

/// After `import` the values match but only the workload's writer owns them: plan shows one
/// adopt (exit 2), apply writes the same values without a rollout (generation unchanged), and
/// only then is there nothing to do.
#[tokio::test]
async fn import_then_plan_adopts_and_apply_changes_no_pod_template() {
    let bed = bed();
    let ns = support::unique_ns("import");
    let client = bed.client("prod").await;
    support::create_namespace(&client, &ns).await;
    let image = format!("{}/{ns}/perses-resources", bed.registry);
    let digest = support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v1.1.0",
        &dashboards("a"),
    )
    .await;
    let mut art = ChartArtifact::new(&format!("{image}:v1.1.0@{digest}"));
    art.sub_path = Some("prod".into());
    support::create_chart_workload(&client, &ns, Some(&art)).await;
    let dir = project(&[]);
    super::node::import_prod(dir.path(), &ns);
    let written = std::fs::read_to_string(dir.path().join("environments/prod.toml")).unwrap();
    assert!(
        written.contains("v1.1.0") && written.contains("sub_path"),
        "{written}"
    );
    let (code, v, err) = plan_json(dir.path(), &["--detailed-exitcode"]);
    assert_eq!(code, 2, "{v}\n{err}\n{written}");
    let changes = v["environments"][0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v}");
    assert_eq!(changes[0]["action"], "adopt", "{v}");
    assert_eq!(changes[0]["before"], changes[0]["after"], "{v}");
    assert_eq!(changes[0]["reasons"][0]["kind"], "not_owned", "{v}");
    assert!(
        changes[0]["conflicts_with"].as_array().unwrap().is_empty(),
        "{v}"
    );
    let sts = |client: kube::Client, ns: String| async move {
        let api: Api<StatefulSet> = Api::namespaced(client, &ns);
        api.get("perses").await.unwrap()
    };
    let before = sts(client.clone(), ns.clone()).await;
    // Without --force-conflicts: equal values are shared, never a conflict.
    let out = bed
        .cmd()
        .arg("--dir")
        .arg(dir.path())
        .args(["apply", "--auto-approve"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no rollout"), "{stdout}");
    let after = sts(client.clone(), ns.clone()).await;
    assert_eq!(before.metadata.generation, after.metadata.generation);
    assert_eq!(
        serde_json::to_value(&before.spec.as_ref().unwrap().template).unwrap(),
        serde_json::to_value(&after.spec.as_ref().unwrap().template).unwrap()
    );
    let (code, v, err) = plan_json(dir.path(), &["--detailed-exitcode"]);
    assert_eq!(code, 0, "{v}\n{err}\n{written}");
    assert_eq!(v["environments"][0]["changes"], serde_json::json!([]));
    // Importing again without --force refuses to overwrite.
    bed.cmd()
        .arg("--dir")
        .arg(dir.path())
        .args([
            "import",
            "--env",
            "prod",
            "--context",
            "prod",
            "--namespace",
            &ns,
        ])
        .assert()
        .code(1);
}

#[tokio::test]
async fn validate_names_file_line_and_key() {
    let dir = project(&[(
        "prod",
        env_toml("prod", "monitoring", "127.0.0.1:5000/p", "v1", "")
            .replace("mount_path", "mout_path"),
    )]);
    let out = bed()
        .cmd()
        .arg("--dir")
        .arg(dir.path())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prod.toml:10:1") && err.contains("mout_path") && err.contains("mount_path"),
        "{err}"
    );
}
