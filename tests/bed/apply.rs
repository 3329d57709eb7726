//! `apply`, `history`, `rollback`, `force-unlock` through the real binary on the real bed.

use crate::plan::{dashboards, env_toml, project, scenario};
use crate::support::{self, ChartArtifact, Reg, bed};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::path::Path;

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = bed()
        .cmd()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn apply(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["apply", "--auto-approve", "--no-wait"];
    args.extend_from_slice(extra);
    run(dir, &args)
}

async fn get(context: &str, ns: &str) -> Value {
    let api: Api<StatefulSet> = Api::namespaced(bed().client(context).await, ns);
    serde_json::to_value(api.get("perses").await.unwrap()).unwrap()
}

fn volume<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj["spec"]["template"]["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// The object without what perses-oci may change: the managed entries, its annotation,
/// bookkeeping (resourceVersion, generation, managedFields) and status.
fn unmanaged(obj: &Value) -> Value {
    let mut o = obj.clone();
    for k in ["resourceVersion", "generation", "managedFields"] {
        o["metadata"].as_object_mut().unwrap().remove(k);
    }
    let meta = o["metadata"].as_object_mut().unwrap();
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove("perses-oci.dev/history");
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    o.as_object_mut().unwrap().remove("status");
    let spec = &mut o["spec"]["template"]["spec"];
    let ours = |v: &Value| {
        v["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("perses-resources"))
    };
    spec["volumes"].as_array_mut().unwrap().retain(|v| !ours(v));
    for c in spec["containers"].as_array_mut().unwrap() {
        if let Some(ms) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
            ms.retain(|m| !ours(m));
        }
    }
    o
}

/// Adds a sidecar (another container) to the chart workload, as another team would.
async fn add_sidecar(context: &str, ns: &str) {
    let api: Api<StatefulSet> = Api::namespaced(bed().client(context).await, ns);
    let patch = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": bed().busybox_image, "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}}});
    api.patch(
        "perses",
        &PatchParams::apply("other-team"),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn add_update_remove_and_second_apply_writes_nothing() {
    let bed = bed();
    let (ns, image, d1) = scenario("prod", None, "v1").await;
    add_sidecar("prod", &ns).await;
    let before = get("prod", &ns).await;
    let dir = project(&[(
        "prod",
        env_toml("prod", &ns, &image, "v1", "sub_path = \"prod\"\n"),
    )]);

    // add
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Apply complete! 1 added, 0 changed, 0 removed."),
        "{out}"
    );
    let after = get("prod", &ns).await;
    assert_eq!(
        volume(&after, "perses-resources").unwrap()["image"]["reference"],
        format!("{image}:v1@{d1}")
    );
    assert_eq!(
        unmanaged(&after),
        unmanaged(&before),
        "fields perses-oci does not manage changed"
    );
    let sidecar = &after["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(sidecar["name"], "sidecar");
    assert_eq!(sidecar["command"], json!(["sleep", "3600"]));
    assert_eq!(
        sidecar["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data"}])
    );

    // a second apply: no write at all
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("No changes."), "{out}");
    let again = get("prod", &ns).await;
    // Not resourceVersion: the workload's controller may still write its status after the
    // first apply. A write of perses-oci would move the generation or its managedFields entry.
    let ours = |o: &Value| {
        o["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["manager"] == "perses-oci")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        again["metadata"]["generation"],
        after["metadata"]["generation"]
    );
    assert!(!ours(&after).is_empty(), "{after}");
    assert_eq!(ours(&again), ours(&after), "perses-oci wrote again");
    assert_eq!(unmanaged(&again), unmanaged(&after));
    assert_eq!(
        again["metadata"]["generation"],
        after["metadata"]["generation"]
    );

    // update
    let d2 = support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v2",
        &dashboards("v2"),
    )
    .await;
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v2", "sub_path = \"prod\"\n"),
    )
    .unwrap();
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0 added, 1 changed, 0 removed"), "{out}");
    let updated = get("prod", &ns).await;
    assert_eq!(
        volume(&updated, "perses-resources").unwrap()["image"]["reference"],
        format!("{image}:v2@{d2}")
    );
    assert_eq!(unmanaged(&updated), unmanaged(&before));

    // remove: the artifact leaves the file (another one takes its place); the other volumes and
    // the sidecar stay
    let toml = env_toml("prod", &ns, &image, "v2", "")
        .replace(
            "name = \"perses-resources\"",
            "name = \"perses-resources-next\"",
        )
        .replace("/etc/perses/provisioning", "/etc/perses/provisioning/next");
    std::fs::write(dir.path().join("environments/prod.toml"), toml).unwrap();
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("1 added, 0 changed, 1 removed"), "{out}");
    let removed = get("prod", &ns).await;
    assert!(volume(&removed, "perses-resources").is_none());
    assert!(volume(&removed, "perses-resources-next").is_some());
    assert_eq!(unmanaged(&removed), unmanaged(&before));
}

#[tokio::test]
async fn helm_owned_artifact_needs_force_conflicts() {
    let (ns, image, digest) = scenario("prod", Some(ChartArtifact::new("IMAGE:v0")), "v1").await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("\"helm\"") && err.contains("--force-conflicts"),
        "{err}"
    );
    assert_eq!(
        volume(&get("prod", &ns).await, "perses-resources").unwrap()["image"]["reference"],
        format!("{image}:v0")
    );
    let (code, out, err) = apply(dir.path(), &["--force-conflicts"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let obj = get("prod", &ns).await;
    assert_eq!(
        volume(&obj, "perses-resources").unwrap()["image"]["reference"],
        format!("{image}:v1@{digest}")
    );
    // perses-oci now owns the reference.
    let mf = obj["metadata"]["managedFields"].as_array().unwrap();
    let ours = mf.iter().find(|m| m["manager"] == "perses-oci").unwrap();
    assert!(
        ours["fieldsV1"].to_string().contains("f:reference"),
        "{ours}"
    );
}

#[tokio::test]
async fn saved_plans_stale_unrelated_and_edited() {
    let bed = bed();
    let (ns, image, _) = scenario("prod", None, "v1").await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    let plan_file = dir.path().join("plan.json");
    let p = plan_file.to_str().unwrap();

    // An unrelated edit (a label) does not make the plan stale.
    let (code, _, err) = run(dir.path(), &["plan", "--out", p]);
    assert_eq!(code, 0, "{err}");
    let api: Api<StatefulSet> = Api::namespaced(bed.client("prod").await, &ns);
    api.patch(
        "perses",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}, "spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    let (code, out, err) = run(dir.path(), &["apply", "--no-wait", p]);
    assert_eq!(code, 0, "{out}\n{err}");

    // The tag moves after the plan: stale.
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v1", "pull_policy = \"Always\"\n")
            .replace("pull_policy = \"IfNotPresent\"\n", ""),
    )
    .unwrap();
    let (code, _, err) = run(dir.path(), &["plan", "--out", p]);
    assert_eq!(code, 0, "{err}");
    support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v1",
        &dashboards("moved"),
    )
    .await;
    let (code, out, err) = run(dir.path(), &["apply", "--no-wait", p]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("stale") && err.contains("now resolves to"),
        "{err}"
    );

    // The file changes after the plan: stale.
    let (_, _, _) = run(dir.path(), &["plan", "--out", p]);
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v1", ""),
    )
    .unwrap();
    let (code, _, err) = run(dir.path(), &["apply", "--no-wait", p]);
    assert_eq!(code, 1);
    assert!(
        err.contains("stale") && err.contains("prod.toml changed"),
        "{err}"
    );

    // A hand-edited plan file is refused.
    let (_, _, _) = run(dir.path(), &["plan", "--out", p]);
    let text = std::fs::read_to_string(&plan_file).unwrap();
    std::fs::write(
        &plan_file,
        text.replacen("\"add\"", "\"remove\"", 1)
            .replacen("IfNotPresent", "Always", 1),
    )
    .unwrap();
    let (code, _, err) = run(dir.path(), &["apply", "--no-wait", p]);
    assert_eq!(code, 1);
    assert!(err.contains("modified"), "{err}");
}

#[tokio::test]
async fn gate_off_apply_fails_and_explains() {
    let (ns, image, _) = scenario("gate-off", None, "v1").await;
    let dir = project(&[("g", env_toml("gate-off", &ns, &image, "v1", ""))]);
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("ImageVolume") || err.contains("ImageVolume"),
        "{out}\n{err}"
    );
    assert!(volume(&get("gate-off", &ns).await, "perses-resources").is_none());
}

#[tokio::test]
async fn apply_all_in_order_and_stops_at_first_failure() {
    let (ns_s, image_s, _) = scenario("staging", None, "v1").await;
    let (ns_p, image_p, _) = scenario("prod", None, "v1").await;
    let settings = "order = [\"staging\", \"prod\"]\n";
    let dir = project(&[
        ("prod", env_toml("prod", &ns_p, &image_p, "v1", "")),
        ("staging", env_toml("staging", &ns_s, &image_s, "v1", "")),
    ]);
    std::fs::write(dir.path().join("perses-oci.toml"), settings).unwrap();
    let (code, out, err) = apply(dir.path(), &["--all"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let s = out.find("staging: applied").expect(&out);
    let p = out.find("prod: applied").expect(&out);
    assert!(s < p, "staging must be applied before prod:\n{out}");

    // Staging fails (helm owns its artifact, no --force-conflicts): prod is not applied.
    let (ns_s2, image_s2, _) =
        scenario("staging", Some(ChartArtifact::new("IMAGE:v0")), "v1").await;
    let (ns_p2, image_p2, _) = scenario("prod", None, "v1").await;
    let dir = project(&[
        ("prod", env_toml("prod", &ns_p2, &image_p2, "v1", "")),
        ("staging", env_toml("staging", &ns_s2, &image_s2, "v1", "")),
    ]);
    std::fs::write(dir.path().join("perses-oci.toml"), settings).unwrap();
    let (code, out, err) = apply(dir.path(), &["--all"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("Applied: none. Failed: staging. Not applied: prod"),
        "{err}"
    );
    assert!(volume(&get("prod", &ns_p2).await, "perses-resources").is_none());
}

/// Sets the Perses container's readiness probe (as another team would, with its own field
/// manager): how long the kubelet takes to call a new pod ready, or that it never does.
async fn set_readiness(context: &str, ns: &str, probe: Value) {
    let api: Api<StatefulSet> = Api::namespaced(bed().client(context).await, ns);
    let patch = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": {"spec": {
        "containers": [{"name": "perses", "readinessProbe": probe}]}}}});
    api.patch(
        "perses",
        &PatchParams::apply("other-team").force(),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn concurrent_applies_one_writes_other_names_holder_and_rollout_waits() {
    let bed = bed();
    let (ns, image, _) = scenario("prod", None, "v1").await;
    support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v2",
        &dashboards("v2"),
    )
    .await;
    // The kubelet calls a new pod ready no sooner than 6 s after it starts: the first apply
    // holds the lease for at least that long, waiting for the real rollout.
    set_readiness(
        "prod",
        &ns,
        json!({"httpGet": {"path": "/api/v1/health", "port": 8080}, "initialDelaySeconds": 6, "periodSeconds": 1}),
    )
    .await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    // Another checkout (another pipeline) with another tag for the same workload.
    let other = project(&[("prod", env_toml("prod", &ns, &image, "v2", ""))]);
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("perses-oci"));
    first
        .envs(bed.vars.iter().map(|(k, v)| (k, v)))
        .arg("--dir")
        .arg(dir.path())
        .args(["apply", "--auto-approve", "--timeout", "120s"]);
    first
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = first.spawn().unwrap();
    let client = bed.client("prod").await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns);
    let mut held = false;
    for _ in 0..100 {
        if leases
            .get_opt("perses-oci-statefulset-perses")
            .await
            .unwrap()
            .is_some()
        {
            held = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(held, "the first apply never took the lease");
    let (code, out, err) = apply(other.path(), &[]);
    // The second has a change to make, and is refused by the lock.
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("locked by admin@") && err.contains("since"),
        "{err}"
    );
    // The real StatefulSet controller and kubelet finish the first apply's rollout.
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("rolled out"), "{stdout}");
    assert!(
        stdout.contains("pods ready") || stdout.contains("pods updated"),
        "{stdout}"
    );
    assert!(
        leases
            .get_opt("perses-oci-statefulset-perses")
            .await
            .unwrap()
            .is_none(),
        "lease released"
    );
    let sts: Api<StatefulSet> = Api::namespaced(client, &ns);
    let status = sts.get("perses").await.unwrap().status.unwrap();
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(status.ready_replicas, Some(1));
}

#[tokio::test]
async fn rollout_timeout_names_state_and_rollback_command() {
    let (ns, image, _) = scenario("prod", None, "v1").await;
    // A pod that never becomes ready (nothing listens on the probed port): the kubelet keeps it
    // running and not ready, and the wait ends at its timeout.
    set_readiness(
        "prod",
        &ns,
        json!({"httpGet": {"path": "/api/v1/health", "port": 9}, "periodSeconds": 1}),
    )
    .await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    let (code, out, err) = run(dir.path(), &["apply", "--auto-approve", "--timeout", "8s"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("did not finish within 8s")
            && err.contains("0 of 1 pods ready")
            && err.contains("perses-oci rollback --env prod"),
        "{err}"
    );
}

#[tokio::test]
async fn history_and_rollback_restore_previous_digest() {
    let bed = bed();
    let (ns, image, d1) = scenario("prod", None, "v1").await;
    let d2 = support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v2",
        &dashboards("v2"),
    )
    .await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    assert_eq!(apply(dir.path(), &[]).0, 0);
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v2", ""),
    )
    .unwrap();
    assert_eq!(apply(dir.path(), &[]).0, 0);
    let (code, out, _) = run(dir.path(), &["history", "--env", "prod"]);
    assert_eq!(code, 0);
    assert!(out.contains(&d1) && out.contains(&d2), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].starts_with("1 ") && lines[2].starts_with("2 "),
        "{out}"
    );
    // Move tag v1: rollback must restore the recorded digest, not the tag's new one.
    support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v1",
        &dashboards("moved"),
    )
    .await;
    let (code, out, err) = run(
        dir.path(),
        &["rollback", "--env", "prod", "--auto-approve", "--no-wait"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("disagrees") && err.contains("tag = \"v1\""),
        "{err}"
    );
    let obj = get("prod", &ns).await;
    assert_eq!(
        volume(&obj, "perses-resources").unwrap()["image"]["reference"],
        format!("{image}:v1@{d1}")
    );
    // --write-config makes the file agree.
    let (code, _, err) = run(
        dir.path(),
        &[
            "rollback",
            "--env",
            "prod",
            "--to",
            "1",
            "--auto-approve",
            "--no-wait",
            "--write-config",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(dir.path().join("environments/prod.toml")).unwrap();
    assert!(text.contains("tag = \"v1\""), "{text}");
}

#[tokio::test]
async fn rbac_example_roles_allow_apply_and_name_missing_verb() {
    let bed = bed();
    let admin = bed.client("prod").await;
    let (ns, image, _) = scenario("prod", None, "v1").await;
    // Bind the example's roles, unchanged but for the namespace, to the bed's rights-less user.
    let yaml = std::fs::read_to_string(support::repo_root().join("examples/rbac.yaml")).unwrap();
    let mut roles = std::collections::BTreeMap::new();
    for doc in yaml.split("\n---\n") {
        let v: Value = serde_saphyr::from_str(doc).unwrap();
        if v["kind"] == "Role" {
            roles.insert(v["metadata"]["name"].as_str().unwrap().to_string(), v);
        }
    }
    let bind = |role: &str, ns: &str| {
        let mut r = roles[role].clone();
        r["metadata"]["namespace"] = json!(ns);
        let b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nobody"}]});
        (r, b)
    };
    let dynapi = |kind: &str, ns: &str| {
        let gvk = kube::api::GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
        let ar = kube::api::ApiResource::from_gvk(&gvk);
        Api::<kube::api::DynamicObject>::namespaced_with(admin.clone(), ns, &ar)
    };
    let create = |v: Value, ns: String| {
        let kind = v["kind"].as_str().unwrap().to_string();
        let api = dynapi(&kind, &ns);
        async move {
            let o: kube::api::DynamicObject = serde_json::from_value(v).unwrap();
            api.create(&Default::default(), &o).await.unwrap();
        }
    };
    let (r, b) = bind("perses-oci-apply", &ns);
    create(r, ns.clone()).await;
    create(b, ns.clone()).await;
    let dir = project(&[("prod", env_toml("prod-none", &ns, &image, "v1", ""))]);
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(
        code, 0,
        "apply as a user with exactly perses-oci-apply:\n{out}\n{err}"
    );

    // With only the plan role, apply is refused naming the verb and the resource.
    let (ns2, image2, _) = scenario("prod", None, "v1").await;
    let (r, b) = bind("perses-oci-plan", &ns2);
    create(r, ns2.clone()).await;
    create(b, ns2.clone()).await;
    let dir = project(&[("prod", env_toml("prod-none", &ns2, &image2, "v1", ""))]);
    let (code, out, _) = run(dir.path(), &["plan"]);
    assert_eq!(code, 0, "plan works with the plan role:\n{out}");
    let (code, out, err) = apply(dir.path(), &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("\"patch\"") && err.contains("statefulsets"),
        "{err}"
    );
}
