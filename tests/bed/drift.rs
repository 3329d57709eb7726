//! `drift` through the real binary on the real bed: every class from a real scenario, the exit
//! codes, the Prometheus metrics file, and in-cluster mode with a service-account token.

use crate::plan::{dashboards, env_toml, project, scenario};
use crate::support::{self, ChartArtifact, Reg, bed};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
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

fn apply(dir: &Path) {
    let (code, out, err) = run(dir, &["apply", "--auto-approve", "--no-wait"]);
    assert_eq!(code, 0, "apply:\n{out}\n{err}");
}

/// `drift --format json` plus `extra`: (exit code, document, stderr).
fn drift_json(dir: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["drift", "--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(dir, &args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("json: {e}\n{out}\n{err}"));
    (code, v, err)
}

fn env<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no environment {name} in {v}"))
}

fn is_rfc3339(s: &Value) -> bool {
    s.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

/// A namespace with the chart's workload, applied once by perses-oci at tag v1.
async fn applied(tag: &str) -> (String, String, String, tempfile::TempDir) {
    let (ns, image, digest) = scenario("prod", None, tag).await;
    let dir = project(&[("prod", env_toml("prod", &ns, &image, tag, ""))]);
    apply(dir.path());
    (ns, image, digest, dir)
}

#[tokio::test]
async fn in_sync_right_after_apply() {
    let (_, _, _, dir) = applied("v1").await;
    let (code, v, err) = drift_json(dir.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["format_version"], "1.1");
    assert!(is_rfc3339(&v["checked_at"]), "{v}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "in_sync", "{v}");
    assert!(is_rfc3339(&e["checked_at"]), "{e}");
    assert_eq!(e["details"]["last_applied"]["revision"], 1, "{e}");
    assert_eq!(v["summary"]["in_sync"], 1);
    assert_eq!(v["summary"]["pending"], 0);
    // The human line, and Markdown.
    let (code, out, _) = run(dir.path(), &["drift"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("prod: in_sync — 1 artifact"), "{out}");
    let (code, out, _) = run(dir.path(), &["drift", "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(out.contains("| prod | `in_sync` |"), "{out}");
}

#[tokio::test]
async fn cluster_edited_names_the_field_manager() {
    let (ns, image, digest, dir) = applied("v1").await;
    // What `kubectl edit` sends: a strategic merge patch, operation Update, its own manager.
    let api: Api<StatefulSet> = Api::namespaced(bed().client("prod").await, &ns);
    let pp = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    let patch = json!({"spec": {"template": {"spec": {"volumes": [
        {"name": "perses-resources", "image": {"reference": format!("{image}:v0")}}]}}}});
    api.patch("perses", &pp, &Patch::Strategic(&patch))
        .await
        .unwrap();
    let (code, v, err) = drift_json(dir.path(), &[]);
    assert_eq!(code, 2, "{v}\n{err}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "cluster_edited", "{e}");
    let d = &e["details"];
    assert_eq!(d["manager"], "kubectl-edit", "{d}");
    assert_eq!(d["operation"], "Update", "{d}");
    assert!(is_rfc3339(&d["time"]), "{d}");
    assert_eq!(d["fields"], json!(["reference"]));
    assert_eq!(d["artifact"], "perses-resources");
    assert_eq!(d["applied"], format!("{image}:v1@{digest}"));
    assert_eq!(d["live"], format!("{image}:v0"));
    assert_eq!(
        d.get("also"),
        None,
        "the file still equals what was applied: {d}"
    );
    let (code, out, _) = run(dir.path(), &["drift"]);
    assert_eq!(code, 2);
    assert!(
        out.starts_with(
            "prod: cluster_edited — artifact \"perses-resources\" reference changed by field manager \"kubectl-edit\" (Update) at 20"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn tag_moved_after_a_re_push() {
    let (ns, _, d1, dir) = applied("v1").await;
    let d2 = support::push_files(
        bed(),
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v1",
        &dashboards("moved"),
    )
    .await;
    assert_ne!(d1, d2);
    let (code, v, err) = drift_json(dir.path(), &[]);
    assert_eq!(code, 2, "{v}\n{err}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "tag_moved", "{e}");
    assert_eq!(e["details"]["from"], d1.as_str());
    assert_eq!(e["details"]["to"], d2.as_str());
    assert_eq!(e["details"]["artifact"], "perses-resources");
    assert!(
        e["details"]["tag"].as_str().unwrap().ends_with(":v1"),
        "{e}"
    );
}

#[tokio::test]
async fn pending_after_a_merged_change_and_when_never_applied() {
    let (ns, image, d1, dir) = applied("v1").await;
    let d2 = support::push_files(
        bed(),
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v2",
        &dashboards("v2"),
    )
    .await;
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v2", ""),
    )
    .unwrap();
    let (code, v, err) = drift_json(dir.path(), &[]);
    assert_eq!(code, 2, "{v}\n{err}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "pending", "{e}");
    let c = &e["details"]["changes"][0];
    assert_eq!(c["action"], "update");
    assert_eq!(c["fields"], json!(["tag"]));
    assert_eq!(c["from"], format!("{image}:v1@{d1}"));
    assert_eq!(c["to"], format!("{image}:v2@{d2}"));
    assert_eq!(e["details"]["last_applied"]["revision"], 1);
    // Applying it brings the environment back in sync.
    apply(dir.path());
    assert_eq!(drift_json(dir.path(), &[]).0, 0);

    // Never applied by perses-oci: a chart-rendered older tag, and no artifact at all.
    let (ns_h, image_h, _) = scenario("prod", Some(ChartArtifact::new("IMAGE:v0")), "v1").await;
    let (ns_n, image_n, _) = scenario("prod", None, "v1").await;
    let dir = project(&[
        ("helm", env_toml("prod", &ns_h, &image_h, "v1", "")),
        ("new", env_toml("prod", &ns_n, &image_n, "v1", "")),
    ]);
    let (code, v, err) = drift_json(dir.path(), &["--all"]);
    assert_eq!(code, 2, "{v}\n{err}");
    let h = env(&v, "helm");
    assert_eq!(h["class"], "pending", "{h}");
    assert_eq!(h["details"]["changes"][0]["fields"], json!(["tag"]));
    assert_eq!(h["details"]["last_applied"], Value::Null);
    let n = env(&v, "new");
    assert_eq!(n["class"], "pending", "{n}");
    assert_eq!(n["details"]["changes"][0]["action"], "add");
    assert_eq!(v["summary"]["pending"], 2);
}

#[tokio::test]
async fn missing_workload_and_missing_volume() {
    let (ns, _, _, dir) = applied("v1").await;
    let api: Api<StatefulSet> = Api::namespaced(bed().client("prod").await, &ns);
    api.delete("perses", &DeleteParams::default())
        .await
        .unwrap();
    let (code, v, err) = drift_json(dir.path(), &[]);
    assert_eq!(code, 2, "a 404 is drift, not an error: {v}\n{err}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "missing", "{e}");
    assert_eq!(e["details"]["missing"], "workload");
    assert_eq!(e["details"]["workload"], "statefulset/perses");
    assert_eq!(e["details"]["namespace"], ns.as_str());
    assert!(e["message"].as_str().unwrap().contains("not found"), "{e}");

    // Another manager removes the volume and its mount.
    let (ns, _, _, dir) = applied("v1").await;
    let api: Api<StatefulSet> = Api::namespaced(bed().client("prod").await, &ns);
    let patch = json!({"spec": {"template": {"spec": {
        "volumes": [{"name": "perses-resources", "$patch": "delete"}],
        "containers": [{"name": "perses", "volumeMounts": [
            {"mountPath": "/etc/perses/provisioning", "$patch": "delete"}]}]}}}});
    let pp = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    api.patch("perses", &pp, &Patch::Strategic(&patch))
        .await
        .unwrap();
    let (code, v, err) = drift_json(dir.path(), &[]);
    assert_eq!(code, 2, "{v}\n{err}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "missing", "{e}");
    assert_eq!(e["details"]["missing"], "volume");
    assert_eq!(e["details"]["artifacts"][0]["artifact"], "perses-resources");
}

#[tokio::test]
async fn errors_unreachable_forbidden_bad_config_win_over_drift() {
    let (ns, image, _, _) = applied("v1").await;
    let down_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let good = env_toml("prod", &ns, &image, "v1", "");
    let dir = project(&[
        ("a-good", good.clone()),
        (
            "b-registry-down",
            env_toml(
                "prod",
                &ns,
                &format!("127.0.0.1:{down_port}/x/perses"),
                "v1",
                "",
            ),
        ),
        ("c-forbidden", env_toml("prod-none", &ns, &image, "v1", "")),
        ("d-bad-config", good.replace("mount_path", "mout_path")),
        (
            "e-pending",
            env_toml("prod", &ns, &image, "v1", "sub_path = \"prod\"\n"),
        ),
    ]);
    let (code, v, err) = drift_json(dir.path(), &["--all"]);
    assert_eq!(code, 1, "an error wins over drift (exit 2): {v}\n{err}");
    assert_eq!(env(&v, "a-good")["class"], "in_sync", "{v}");
    assert_eq!(env(&v, "e-pending")["class"], "pending", "{v}");
    let reason = |n: &str| {
        let e = env(&v, n);
        assert_eq!(e["class"], "error", "{e}");
        assert_eq!(e["details"]["reason"], e["message"]);
        e["message"].as_str().unwrap().to_string()
    };
    let m = reason("b-registry-down");
    assert!(
        m.contains("unreachable") && m.contains(&format!("127.0.0.1:{down_port}")),
        "{m}"
    );
    let m = reason("c-forbidden");
    assert!(
        m.contains("forbidden") && m.contains("get") && m.contains("statefulsets"),
        "{m}"
    );
    let m = reason("d-bad-config");
    assert!(
        m.contains("d-bad-config.toml:") && m.contains("mout_path"),
        "{m}"
    );
    assert_eq!(v["summary"]["error"], 3);
    // A workload that is gone while the registry is down: error, by precedence.
    let dir = project(&[(
        "gone",
        env_toml(
            "prod",
            "no-such-namespace",
            &format!("127.0.0.1:{down_port}/x/perses"),
            "v1",
            "",
        ),
    )]);
    let (code, v, _) = drift_json(dir.path(), &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(env(&v, "gone")["class"], "error", "{v}");

    // An API server that does not answer: the bed's kubeconfig with prod's port closed.
    let bed = bed();
    let port = std::fs::read_to_string(bed.dir.join("clusters/prod/port")).unwrap();
    let kubeconfig = std::fs::read_to_string(&bed.kubeconfig).unwrap().replace(
        &format!("127.0.0.1:{}", port.trim()),
        &format!("127.0.0.1:{down_port}"),
    );
    let kc_dir = tempfile::tempdir().unwrap();
    let kc = kc_dir.path().join("kubeconfig");
    std::fs::write(&kc, kubeconfig).unwrap();
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    let (code, v, err) = drift_json(dir.path(), &["--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(code, 1, "{v}\n{err}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "error", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("unreachable"),
        "{e}"
    );
}

/// A parsed Prometheus text exposition: samples by (name, sorted labels), and the order
/// HELP/TYPE/samples appeared in, checked against the format's rules.
#[derive(Debug, Default)]
struct Exposition {
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
    types: BTreeMap<String, String>,
}

fn metric_name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `{a="x",b="y"}` (escapes `\\`, `\"`, `\n`); returns the labels and the rest.
fn parse_labels(s: &str) -> (Vec<(String, String)>, &str) {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').expect("labels start with {");
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return (labels, r);
        }
        let eq = rest.find('=').expect("label =");
        let name = &rest[..eq];
        assert!(label_name_ok(name), "label name {name:?}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .expect("label value quoted");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated label value");
            match c {
                '\\' => match chars.next().expect("escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other}"),
                },
                '"' => break i,
                '\n' => panic!("newline in a label value"),
                c => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_exposition(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "the last line ends with a newline");
    let mut ex = Exposition::default();
    let mut helped = BTreeSet::new();
    let mut sampled = BTreeSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, body) = (
                parts.next().unwrap(),
                parts.next().expect("metric name"),
                parts.next().unwrap_or(""),
            );
            assert!(metric_name_ok(name), "{line}");
            assert!(!sampled.contains(name), "{kind} after samples: {line}");
            match kind {
                "HELP" => {
                    assert!(!body.is_empty(), "{line}");
                    assert!(helped.insert(name.to_string()), "second HELP: {line}");
                }
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&body),
                        "{line}"
                    );
                    assert!(
                        ex.types
                            .insert(name.to_string(), body.to_string())
                            .is_none(),
                        "second TYPE: {line}"
                    );
                }
                _ => panic!("unknown comment {line}"),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("name then value");
        let name = &line[..name_end];
        assert!(metric_name_ok(name), "{line}");
        assert!(
            helped.contains(name) && ex.types.contains_key(name),
            "HELP and TYPE come before the samples: {line}"
        );
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..])
        } else {
            (vec![], &line[name_end..])
        };
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("one space before the value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value {value:?}: {line}"));
        sampled.insert(name.to_string());
        labels.sort();
        assert!(
            ex.samples
                .insert((name.to_string(), labels), value)
                .is_none(),
            "duplicate series: {line}"
        );
    }
    ex
}

const CLASSES: [&str; 6] = [
    "in_sync",
    "pending",
    "cluster_edited",
    "tag_moved",
    "missing",
    "error",
];

fn drift_series(ex: &Exposition) -> BTreeMap<(String, String), f64> {
    ex.samples
        .iter()
        .filter(|((n, _), _)| n == "perses_oci_drift")
        .map(|((_, labels), v)| {
            let get = |k: &str| {
                labels
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            assert_eq!(labels.len(), 2, "{labels:?}");
            ((get("environment"), get("class")), *v)
        })
        .collect()
}

fn last_success(ex: &Exposition) -> f64 {
    ex.samples[&(
        "perses_oci_drift_last_success_timestamp_seconds".to_string(),
        vec![],
    )]
}

#[tokio::test]
async fn metrics_file_has_one_series_per_environment_and_class() {
    let (ns, image, _, _) = applied("v1").await;
    let dir = project(&[
        ("prod", env_toml("prod", &ns, &image, "v1", "")),
        (
            "staging",
            env_toml("prod", &ns, &image, "v1", "sub_path = \"prod\"\n"),
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    let metrics = out.path().join("perses-oci-drift.prom");
    let m = metrics.to_str().unwrap();
    let before = chrono::Utc::now().timestamp() as f64;
    let (code, v, err) = drift_json(dir.path(), &["--all", "--metrics-file", m]);
    assert_eq!(code, 2, "{v}\n{err}");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let ex = parse_exposition(&text);
    assert_eq!(ex.types["perses_oci_drift"], "gauge");
    assert_eq!(
        ex.types["perses_oci_drift_last_success_timestamp_seconds"],
        "gauge"
    );
    assert_eq!(ex.types["perses_oci_drift_check_duration_seconds"], "gauge");
    let series = drift_series(&ex);
    assert_eq!(series.len(), 2 * CLASSES.len(), "{text}");
    for (envname, class) in [("prod", "in_sync"), ("staging", "pending")] {
        for c in CLASSES {
            let want = if c == class { 1.0 } else { 0.0 };
            assert_eq!(
                series[&(envname.to_string(), c.to_string())],
                want,
                "{envname} {c}\n{text}"
            );
        }
    }
    let t1 = last_success(&ex);
    assert!(
        t1 >= before && t1 <= chrono::Utc::now().timestamp() as f64 + 1.0,
        "{t1}\n{text}"
    );
    let duration = ex.samples[&(
        "perses_oci_drift_check_duration_seconds".to_string(),
        vec![],
    )];
    assert!((0.0..60.0).contains(&duration), "{text}");
    // Only the file itself is left in the directory (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);

    // A check with an error keeps the last success of the previous file.
    let bad = project(&[
        ("prod", env_toml("prod", &ns, &image, "v1", "")),
        ("broken", env_toml("prod-none", &ns, &image, "v1", "")),
    ]);
    let (code, _, _) = drift_json(bad.path(), &["--all", "--metrics-file", m]);
    assert_eq!(code, 1);
    let text = std::fs::read_to_string(&metrics).unwrap();
    let ex = parse_exposition(&text);
    assert_eq!(last_success(&ex), t1, "{text}");
    let series = drift_series(&ex);
    assert_eq!(series.len(), 2 * CLASSES.len());
    assert_eq!(series[&("broken".to_string(), "error".to_string())], 1.0);
}

/// Binds the example's read-only Role to a service account and returns a token for it.
async fn service_account_token(client: &kube::Client, ns: &str, name: &str) -> String {
    let yaml = std::fs::read_to_string(support::repo_root().join("examples/rbac.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let mut role = docs
        .into_iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "perses-oci-plan")
        .expect("perses-oci-plan in examples/rbac.yaml");
    role["metadata"]["namespace"] = json!(ns);
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "perses-oci-plan", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "perses-oci-plan"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]});
    for obj in [role, binding] {
        let gvk = kube::api::GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            obj["kind"].as_str().unwrap(),
        );
        let api = Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            ns,
            &kube::api::ApiResource::from_gvk(&gvk),
        );
        api.create(
            &PostParams::default(),
            &serde_json::from_value(obj).unwrap(),
        )
        .await
        .unwrap();
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create_token_request(name, &PostParams::default(), &req)
        .await
        .expect("TokenRequest")
        .status
        .expect("token in status")
        .token
}

#[tokio::test]
async fn in_cluster_with_a_read_only_service_account() {
    let bed = bed();
    let (ns, image, _, _) = applied("v1").await;
    let client = bed.client("prod").await;
    let token = service_account_token(&client, &ns, "perses-oci-drift").await;
    // The files a pod gets at /var/run/secrets/kubernetes.io/serviceaccount.
    let sa_dir = tempfile::tempdir().unwrap();
    std::fs::write(sa_dir.path().join("token"), &token).unwrap();
    std::fs::copy(bed.dir.join("pki/ca.pem"), sa_dir.path().join("ca.crt")).unwrap();
    std::fs::write(sa_dir.path().join("namespace"), &ns).unwrap();
    let port = std::fs::read_to_string(bed.dir.join("clusters/prod/port")).unwrap();
    let home = tempfile::tempdir().unwrap();
    // No `context`: in a pod there is no kubeconfig.
    let no_context =
        |tag: &str| env_toml("prod", &ns, &image, tag, "").replace("context = \"prod\"\n", "");
    let dir = project(&[("prod", no_context("v1"))]);
    let in_pod = |dir: &Path| {
        let out = bed
            .cmd()
            .env_remove("KUBECONFIG")
            .env("HOME", home.path())
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", port.trim())
            .env("PERSES_OCI_SERVICEACCOUNT_DIR", sa_dir.path())
            .arg("--dir")
            .arg(dir)
            .args(["drift", "--all", "--format", "json"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "json: {e}\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), v)
    };
    let (code, v) = in_pod(dir.path());
    assert_eq!(code, 0, "{v}");
    assert_eq!(env(&v, "prod")["class"], "in_sync", "{v}");

    support::push_files(
        bed,
        Reg::Plain,
        &format!("{ns}/perses-resources"),
        "v2",
        &dashboards("v2"),
    )
    .await;
    std::fs::write(dir.path().join("environments/prod.toml"), no_context("v2")).unwrap();
    let (code, v) = in_pod(dir.path());
    assert_eq!(code, 2, "{v}");
    let e = env(&v, "prod");
    assert_eq!(e["class"], "pending", "{e}");
    assert_eq!(e["details"]["changes"][0]["fields"], json!(["tag"]));

    // The service account may only read: in another namespace it is refused, and says so.
    let (ns2, image2, _) = scenario("prod", None, "v1").await;
    let other = project(&[(
        "other",
        env_toml("prod", &ns2, &image2, "v1", "").replace("context = \"prod\"\n", ""),
    )]);
    let (code, v) = in_pod(other.path());
    assert_eq!(code, 1, "{v}");
    let m = env(&v, "other")["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("forbidden") && m.contains("in-cluster") && m.contains("perses-oci-drift"),
        "{m}"
    );
}

/// Every object of examples/kubernetes, in a fresh namespace, through a server-side dry run on
/// the bed: the API server validates and defaults them as it would store them, without storing.
#[tokio::test]
async fn kubernetes_examples_pass_a_server_side_dry_run() {
    let bed = bed();
    let client = bed.client("prod").await;
    let ns = support::unique_ns("examples");
    support::create_namespace(&client, &ns).await;
    let dir = support::repo_root().join("examples/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut kinds = BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
            doc["metadata"]["namespace"] = json!(ns);
            // `get_mut`, not indexing: `doc["subjects"]` would insert a null field.
            if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    s["namespace"] = json!(ns);
                }
            }
            let kind = doc["kind"].as_str().unwrap().to_string();
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (
                    String::new(),
                    doc["apiVersion"].as_str().unwrap().to_string(),
                ),
            };
            let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &kind);
            let api = Api::<kube::api::DynamicObject>::namespaced_with(
                client.clone(),
                &ns,
                &kube::api::ApiResource::from_gvk(&gvk),
            );
            let stored = api
                .patch(
                    &name,
                    &PatchParams::apply("test").dry_run(),
                    &Patch::Apply(&doc),
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {kind} {name}: {e}", path.display()));
            assert_eq!(stored.metadata.name.as_deref(), Some(name.as_str()));
            kinds.insert(kind);
        }
    }
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "CronJob",
            "Role",
            "RoleBinding",
            "ServiceAccount"
        ]
        .map(String::from)
        .into()
    );
    // A dry run stores nothing.
    let sas: Api<ServiceAccount> = Api::namespaced(client, &ns);
    assert!(sas.get_opt("perses-oci-drift").await.unwrap().is_none());
}
