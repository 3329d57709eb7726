//! A pod the kubelet cannot start, on the real node: `apply`'s rollout wait ends with exit 1
//! before its timeout, in the kubelet's own words (pod, reason, message), with the rollback
//! command; and `plan` warns before a private registry the pod has no pull secret for.

use crate::node::{run, write_env};
use crate::plan::dashboards;
use crate::support::node::delete_manifest;
use crate::support::{self, Reg, bed};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: &str = "240s";

fn env(ns: &str, image: &str, tag: &str, extra: &str) -> String {
    format!(
        "[target]\ncontext = \"prod\"\nnamespace = \"{ns}\"\n\n[artifact]\nname = \"perses-resources\"\n\
         image = \"{image}\"\ntag = \"{tag}\"\npull_policy = \"IfNotPresent\"\n\
         mount_path = \"/etc/perses/provisioning\"\nsub_path = \"prod\"\n{extra}"
    )
}

fn spawn_apply(dir: &Path) -> Child {
    let bed = bed();
    Command::new(assert_cmd::cargo::cargo_bin("perses-oci"))
        .envs(bed.vars.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1")
        .arg("--dir")
        .arg(dir)
        .args(["apply", "--auto-approve", "--timeout", TIMEOUT])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sts(ns: &str) -> Value {
    serde_json::from_str(&bed().kubectl_ok(
        "prod",
        &["-n", ns, "get", "statefulset", "perses", "-o", "json"],
    ))
    .unwrap()
}

fn reference(ns: &str) -> String {
    sts(ns)["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "perses-resources")
        .map(|v| v["image"]["reference"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The chart's workload with v1 applied and rolled out, plus a sidecar whose PID 1 (`sleep`)
/// ignores SIGTERM and a 5 s grace period: a rollout takes 5 s to replace the pod, the window
/// in which a test changes the registry after perses-oci wrote the workload and before the
/// kubelet pulls.
async fn rolled_out_v1(prefix: &str, extra: &str) -> (String, String, tempfile::TempDir) {
    let bed = bed();
    let client = bed.client("prod").await;
    let ns = support::unique_ns(prefix);
    support::create_namespace(&client, &ns).await;
    support::create_chart_workload(&client, &ns, None).await;
    let patch = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "perses"},
        "spec": {"template": {"spec": {"terminationGracePeriodSeconds": 5, "containers": [
            {"name": "slow-to-stop", "image": bed.busybox_image, "command": ["sleep", "3600"]}]}}}});
    bed.kubectl_ok(
        "prod",
        &[
            "-n",
            &ns,
            "patch",
            "statefulset",
            "perses",
            "--type=strategic",
            "-p",
            &patch.to_string(),
        ],
    );
    let repo = format!("{ns}/perses-resources");
    let image = format!("{}/{repo}", bed.registry);
    support::push_files(bed, Reg::Plain, &repo, "v1", &dashboards("v1")).await;
    let dir = tempfile::tempdir().unwrap();
    write_env(dir.path(), "prod", &env(&ns, &image, "v1", extra));
    let (code, out, err) = run(
        dir.path(),
        &["apply", "--auto-approve", "--timeout", TIMEOUT],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    (ns, image, dir)
}

/// Waits until the workload names `want` (apply wrote it), then returns.
fn wait_written(ns: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reference(ns).contains(want) {
        assert!(Instant::now() < deadline, "apply never wrote {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish(child: Child, started: Instant) -> (i32, String, String, Duration) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_manifest_deleted_after_the_write_ends_the_wait_with_the_kubelets_pull_error() {
    let bed = bed();
    let (ns, image, dir) = rolled_out_v1("node-gone", "").await;
    let repo = format!("{ns}/perses-resources");
    let d2 = support::push_files(bed, Reg::Plain, &repo, "v2", &dashboards("v2")).await;
    write_env(dir.path(), "prod", &env(&ns, &image, "v2", ""));
    let started = Instant::now();
    let child = spawn_apply(dir.path());
    wait_written(&ns, &d2);
    // Registry clean-up (a retention policy, a hand) removes the image the workload now names.
    delete_manifest(&bed.registry, &repo, &d2);
    let (code, out, err, took) = finish(child, started);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        took < Duration::from_secs(200),
        "ended at the timeout: {took:?}"
    );
    assert!(
        err.contains("the rollout of")
            && err.contains("failed: pod perses-0, container perses:")
            && (err.contains("ErrImagePull") || err.contains("ImagePullBackOff"))
            && err.contains(&format!("{image}@{d2}"))
            && err.contains("not found")
            && err.contains("Failed: prod (written; its rollout did not finish)")
            && err.contains("perses-oci rollback --env prod"),
        "{err}"
    );
    // The old revision's pod was not the problem: rollback brings the workload back.
    let (code, out, err) = run(
        dir.path(),
        &[
            "rollback",
            "--env",
            "prod",
            "--auto-approve",
            "--timeout",
            TIMEOUT,
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("rolled out"), "{out}");
    assert!(
        out.contains("pod perses-0 is stuck at an earlier revision that never started")
            && out.contains("deleted it, so that the controller creates it at the new revision"),
        "{out}"
    );
}

#[tokio::test]
async fn a_tag_repushed_without_the_sub_path_ends_the_wait_with_create_container_error() {
    let bed = bed();
    // `pin = "tag"`: the workload names the tag, so the kubelet pulls whatever it points at.
    let (ns, image, dir) = rolled_out_v1("node-subpath", "pin = \"tag\"\n").await;
    let repo = format!("{ns}/perses-resources");
    support::push_files(bed, Reg::Plain, &repo, "v2", &dashboards("v2")).await;
    write_env(
        dir.path(),
        "prod",
        &env(&ns, &image, "v2", "pin = \"tag\"\n"),
    );
    let started = Instant::now();
    let child = spawn_apply(dir.path());
    wait_written(&ns, &format!("{image}:v2"));
    // The tag is re-pushed with a layout that has no `prod` folder.
    let mut files = dashboards("v2-moved");
    files = files
        .into_iter()
        .map(|(k, v)| (k.replacen("prod/", "production/", 1), v))
        .collect();
    support::push_files(bed, Reg::Plain, &repo, "v2", &files).await;
    let (code, out, err, took) = finish(child, started);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        took < Duration::from_secs(200),
        "ended at the timeout: {took:?}"
    );
    assert!(
        err.contains("failed: pod perses-0, container perses: CreateContainerError:")
            && err.contains("ImageVolumeMountFailed")
            && err.contains("\"prod\"")
            && err.contains("perses-oci rollback --env prod"),
        "{err}"
    );
}

#[tokio::test]
async fn a_private_registry_without_pull_secret_is_warned_by_plan_and_fails_the_pull() {
    let bed = bed();
    let client = bed.client("prod").await;
    let ns = support::unique_ns("node-private");
    support::create_namespace(&client, &ns).await;
    support::create_chart_workload(&client, &ns, None).await;
    let repo = format!("{ns}/perses-resources");
    let image = format!("{}/{repo}", bed.registry_auth);
    support::push_files(bed, Reg::Auth, &repo, "v1", &dashboards("v1")).await;
    let dir = tempfile::tempdir().unwrap();
    write_env(dir.path(), "prod", &env(&ns, &image, "v1", ""));

    // perses-oci reads the registry with its own credentials; the kubelet has none.
    let (code, out, err) = run(dir.path(), &["plan"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains(&format!(
            "registry {} refuses anonymous pulls (HTTP 401)",
            bed.registry_auth
        )) && all.contains("service account \"default\" have none.")
            && all.contains(&format!("--docker-server={}", bed.registry_auth))
            && all.contains(&format!("namespace {ns}")),
        "{all}"
    );
    let (code, out, err) = run(
        dir.path(),
        &["apply", "--auto-approve", "--timeout", TIMEOUT],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("failed: pod perses-0, container perses:")
            && (err.contains("ErrImagePull") || err.contains("ImagePullBackOff"))
            && err.contains("pull access denied")
            && err.contains("authorization failed: no basic auth credentials")
            && err.contains("perses-oci rollback --env prod"),
        "{err}"
    );

    // With a pull secret for the registry on the pod, plan says nothing and the pod starts.
    let (user, pass) = bed.registry_credentials();
    bed.kubectl_ok(
        "prod",
        &[
            "-n",
            &ns,
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &format!("--docker-server={}", bed.registry_auth),
            &format!("--docker-username={user}"),
            &format!("--docker-password={pass}"),
        ],
    );
    bed.kubectl_ok(
        "prod",
        &[
            "-n",
            &ns,
            "patch",
            "statefulset",
            "perses",
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"imagePullSecrets":[{"name":"regcred"}]}}}}"#,
        ],
    );
    let d2 = support::push_files(bed, Reg::Auth, &repo, "v2", &dashboards("v2")).await;
    write_env(dir.path(), "prod", &env(&ns, &image, "v2", ""));
    let (code, out, err) = run(dir.path(), &["plan"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        !format!("{out}{err}").contains("refuses anonymous pulls"),
        "{out}{err}"
    );
    let (code, out, err) = run(
        dir.path(),
        &["apply", "--auto-approve", "--timeout", TIMEOUT],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("rolled out"), "{out}");
    // The pod of the failed revision was replaced (the controller would have waited forever).
    assert!(
        out.contains(
            "pod perses-0 is stuck at an earlier revision that never started (ErrImagePull"
        ) || out.contains(
            "pod perses-0 is stuck at an earlier revision that never started (ImagePullBackOff"
        ),
        "{out}"
    );
    assert!(reference(&ns).contains(&d2));
    // The credentials never appear in what perses-oci printed.
    assert!(!out.contains(&pass) && !err.contains(&pass));
}
