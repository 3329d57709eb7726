//! The drift CronJob of `examples/kubernetes/` with the RBAC of `examples/rbac.yaml`, as a real
//! Job on the bed's node: perses-oci's own image (the release binary and the libraries it links),
//! in-cluster credentials of its service account, and one environment per drift class, each
//! brought about by a real cause.

use crate::node::{run, write_env};
use crate::plan::dashboards;
use crate::support::{self, Reg, bed, repo_root};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The release binary, built as a user builds it (a no-op when it is up to date).
fn release_binary() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args(["build", "--release", "--locked", "--bin", "perses-oci"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo build --release: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("release/perses-oci")
}

/// The chart's StatefulSet under another name (its own labels), so one namespace holds several.
async fn workload(ns: &str, name: &str) {
    let bed = bed();
    let mut obj = support::chart_statefulset(ns, None);
    obj["metadata"]["name"] = json!(name);
    for path in [
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        obj.pointer_mut(path).unwrap()["app.kubernetes.io/instance"] = json!(name);
    }
    bed.kubectl_apply("prod", ns, &obj.to_string());
}

fn env(ns: &str, workload: &str, image: &str, tag: &str, context: bool) -> String {
    format!(
        "[target]\n{}namespace = \"{ns}\"\nworkload = \"statefulset/{workload}\"\ncontainer = \"perses\"\n\n\
         [artifact]\nname = \"perses-resources\"\nimage = \"{image}\"\ntag = \"{tag}\"\n\
         pull_policy = \"IfNotPresent\"\nmount_path = \"/etc/perses/provisioning\"\nsub_path = \"prod\"\n",
        if context { "context = \"prod\"\n" } else { "" }
    )
}

#[tokio::test]
async fn the_drift_cronjob_runs_on_the_node_and_reports_each_class_from_a_real_cause() {
    let bed = bed();
    let client = bed.client("prod").await;
    let ns = support::unique_ns("node-cron");
    support::create_namespace(&client, &ns).await;
    support::create_chart_workload(&client, &ns, None).await;
    let repo = format!("{ns}/perses-resources");
    let image = format!("{}/{repo}", bed.registry);
    support::push_files(bed, Reg::Plain, &repo, "v1", &dashboards("v1")).await;
    support::push_files(bed, Reg::Plain, &repo, "v2", &dashboards("v2")).await;

    // One workload per class, each applied from here (the CI side), then moved by a real cause.
    let classes = [
        ("synced", "in_sync"),
        ("pending", "pending"),
        ("edited", "cluster_edited"),
        ("moved", "tag_moved"),
        ("gone", "missing"),
        ("broken", "error"),
    ];
    let project = tempfile::tempdir().unwrap();
    for (name, _) in classes {
        workload(&ns, name).await;
        let tag = if name == "moved" { "moving" } else { "v1" };
        if name == "moved" {
            support::push_files(bed, Reg::Plain, &repo, "moving", &dashboards("m1")).await;
        }
        write_env(project.path(), name, &env(&ns, name, &image, tag, true));
    }
    let (code, out, err) = run(
        project.path(),
        &["apply", "--all", "--auto-approve", "--no-wait"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    // pending: a merged change not applied yet. broken: a tag that does not exist.
    let mut files = std::collections::BTreeMap::new();
    for (name, _) in classes {
        let tag = match name {
            "pending" => "v2",
            "moved" => "moving",
            "broken" => "no-such-tag",
            _ => "v1",
        };
        files.insert(format!("{name}.toml"), env(&ns, name, &image, tag, false));
    }
    // cluster_edited: someone points the volume at v2 by hand.
    let live: Value = serde_json::from_str(&bed.kubectl_ok(
        "prod",
        &["-n", &ns, "get", "statefulset", "edited", "-o", "json"],
    ))
    .unwrap();
    let vols = live["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let i = vols
        .iter()
        .position(|v| v["name"] == "perses-resources")
        .unwrap();
    bed.kubectl_ok(
        "prod",
        &[
            "-n",
            &ns,
            "patch",
            "statefulset",
            "edited",
            "--type=json",
            "-p",
            &json!([{"op": "replace",
                "path": format!("/spec/template/spec/volumes/{i}/image/reference"),
                "value": format!("{image}:v2")}])
            .to_string(),
        ],
    );
    // tag_moved: the tag is re-pushed with other content.
    support::push_files(bed, Reg::Plain, &repo, "moving", &dashboards("m2")).await;
    // missing: the workload is deleted.
    bed.kubectl_ok("prod", &["-n", &ns, "delete", "statefulset", "gone"]);

    // perses-oci's image, built from the release binary.
    let binary = release_binary();
    let drift_image = format!("{}/{ns}/perses-oci:test", bed.registry);
    let out = Command::new(repo_root().join("scripts/testbed"))
        .args(["image", "perses-oci"])
        .arg(&binary)
        .arg(&drift_image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The examples, in this namespace, with the bed's image. The pod uses the node's network
    // (hostNetwork): the bed's registries are on the host's loopback, which the node forwards
    // (docs/testbed.md); the API server it finds as any pod does, at the `kubernetes` Service.
    let mut objects = Vec::new();
    for path in [
        "examples/rbac.yaml",
        "examples/kubernetes/serviceaccount.yaml",
        "examples/kubernetes/rbac.yaml",
        "examples/kubernetes/cronjob.yaml",
    ] {
        for mut d in docs(path) {
            d["metadata"]["namespace"] = json!(ns);
            if let Some(subjects) = d["subjects"].as_array_mut() {
                for s in subjects {
                    if s.get("namespace").is_some() {
                        s["namespace"] = json!(ns);
                    }
                }
            }
            if d["kind"] == "CronJob" {
                let pod = &mut d["spec"]["jobTemplate"]["spec"]["template"]["spec"];
                pod["containers"][0]["image"] = json!(drift_image);
                pod["hostNetwork"] = json!(true);
            }
            objects.push(d);
        }
    }
    let mut cm = docs("examples/kubernetes/environments.yaml").remove(0);
    cm["metadata"]["namespace"] = json!(ns);
    cm["data"] = json!(files);
    objects.push(cm);
    bed.kubectl_apply(
        "prod",
        &ns,
        &json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string(),
    );

    // The CronJob's next run, now: a Job made from its template, run by the job controller.
    bed.kubectl_ok(
        "prod",
        &[
            "-n",
            &ns,
            "create",
            "job",
            "drift-now",
            "--from=cronjob/perses-oci-drift",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let pod = loop {
        let pods: Value = serde_json::from_str(&bed.kubectl_ok(
            "prod",
            &[
                "-n",
                &ns,
                "get",
                "pods",
                "-l",
                "job-name=drift-now",
                "-o",
                "json",
            ],
        ))
        .unwrap();
        let done = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"]["containerStatuses"][0]["state"]["terminated"].is_object());
        if let Some(p) = done {
            break p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the drift Job did not finish: {}",
            bed.kubectl_ok(
                "prod",
                &["-n", &ns, "describe", "pods", "-l", "job-name=drift-now"]
            )
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let name = pod["metadata"]["name"].as_str().unwrap();
    let log = bed.kubectl_ok("prod", &["-n", &ns, "logs", name]);
    let code = &pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"];
    // Exit 1: an environment could not be checked (`error` wins over drift's 2).
    assert_eq!(code, 1, "{log}");
    for (env, class) in classes {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("{env}: {class}"))),
            "{env} should be {class}:\n{log}"
        );
    }
    assert!(log.contains("kubectl-patch"), "the editor is named:\n{log}");
    assert!(
        log.contains("no-such-tag"),
        "the missing tag is named:\n{log}"
    );
    // The Job failed (backoffLimit 0): what kube-state-metrics would alert on.
    let job: Value = serde_json::from_str(&bed.kubectl_ok(
        "prod",
        &["-n", &ns, "get", "job", "drift-now", "-o", "json"],
    ))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut job = job;
    while job["status"]["failed"].as_i64() != Some(1) {
        assert!(Instant::now() < deadline, "{job}");
        std::thread::sleep(Duration::from_millis(500));
        job = serde_json::from_str(&bed.kubectl_ok(
            "prod",
            &["-n", &ns, "get", "job", "drift-now", "-o", "json"],
        ))
        .unwrap();
    }
}
