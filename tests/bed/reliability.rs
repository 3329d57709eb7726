//! Reliability on the real bed: transient registry and API server errors injected by proxies
//! (bounded retries, then a clear error), a registry killed in the middle of a push and before
//! an apply, concurrent applies and plans, hostile manifests and TOML, planted secrets looked
//! for in every output, and every command run with exactly the Roles of examples/rbac.yaml.
//! Destructive faults on the bed's own servers (API server stopped, apply killed) are in
//! tests/faults.rs, which has a bed of its own. Figures are printed with `FIGURE` for
//! docs/reliability.md (`cargo test --test bed reliability:: -- --nocapture`).

use crate::faultkit::{self, Action, OwnRegistry, Proxy, Seen};
use crate::plan::{dashboards, env_toml, project, scenario};
use crate::support::{self, ChartArtifact, Reg, bed};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Retries kept short so that injected faults cost little time; the bound stays the default 4.
const FAST: &[(&str, &str)] = &[("PERSES_OCI_RETRY_BASE_MS", "20")];

pub struct Out {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

pub fn run(dir: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = bed().cmd();
    if let Some(d) = dir {
        cmd.arg("--dir").arg(d);
    }
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn insecure(host: &str) -> String {
    format!("\n[registry]\ninsecure = [\"{host}\"]\n")
}

async fn workload(ns: &str) -> Value {
    let api: Api<StatefulSet> = Api::namespaced(bed().client("prod").await, ns);
    serde_json::to_value(api.get("perses").await.unwrap()).unwrap()
}

fn reference(obj: &Value) -> Option<String> {
    obj["spec"]["template"]["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "perses-resources")
        .and_then(|v| v["image"]["reference"].as_str().map(str::to_string))
}

fn history_len(obj: &Value) -> usize {
    obj["metadata"]["annotations"]["perses-oci.dev/history"]
        .as_str()
        .map(|h| serde_json::from_str::<Vec<Value>>(h).unwrap().len())
        .unwrap_or(0)
}

fn retries_logged(err: &str) -> usize {
    err.lines().filter(|l| l.contains("; retry ")).count()
}

/// A registry data request (manifests, blobs), not the `/v2/` ping used to find the protocol.
fn is_data(s: &Seen) -> bool {
    s.uri.contains("/manifests/") || s.uri.contains("/blobs/")
}

/// Answers the codes in turn to the first data GETs, then forwards. HEADs are let through:
/// oci-client answers a failed HEAD by trying a GET, which would hide the fault from the count.
fn sequence(codes: &'static [u16]) -> impl Fn(&Seen) -> Action + Send + Sync {
    let n = AtomicUsize::new(0);
    move |s| {
        if !is_data(s) || s.method != "GET" {
            return Action::Forward;
        }
        match codes.get(n.fetch_add(1, Ordering::SeqCst)) {
            Some(&c) => Action::Respond(c, format!("injected {c}")),
            None => Action::Forward,
        }
    }
}

#[tokio::test]
async fn registry_5xx_and_429_are_retried_then_reported_clearly() {
    let bed = bed();
    let (ns, _, digest) = scenario("prod", None, "v1").await;
    let repo = format!("{ns}/perses-resources");

    // 503, 429, 502 on the first three reads: plan gets through, logging each retry.
    let flaky = Proxy::http(&bed.registry, sequence(&[503, 429, 502]));
    let image = format!("{}/{repo}", flaky.host());
    let toml = env_toml("prod", &ns, &image, "v1", &insecure(&flaky.host()));
    let dir = project(&[("prod", toml)]);
    let o = run(Some(dir.path()), &["-v", "plan", "--format", "json"], FAST);
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&o.out).unwrap();
    assert_eq!(
        v["environments"][0]["changes"][0]["after"]["reference"],
        format!("{image}:v1@{digest}"),
        "{o}"
    );
    assert_eq!(flaky.injected(), 3);
    assert_eq!(retries_logged(&o.err), 3, "{o}");
    eprintln!("FIGURE registry transient: 3 injected (503, 429, 502), plan exit 0");

    // Always 503: the bound holds (1 + 4 attempts), the error names registry, tag and status,
    // and apply writes nothing.
    let down = Proxy::http(&bed.registry, |s: &Seen| {
        if is_data(s) {
            Action::Respond(503, "injected 503".into())
        } else {
            Action::Forward
        }
    });
    let image = format!("{}/{repo}", down.host());
    let toml = env_toml("prod", &ns, &image, "v1", &insecure(&down.host()));
    let dir = project(&[("prod", toml)]);
    let t = Instant::now();
    let o = run(
        Some(dir.path()),
        &["apply", "--auto-approve", "--no-wait"],
        FAST,
    );
    let took = t.elapsed();
    assert_eq!(o.code, 1, "{o}");
    let all = format!("{}{}", o.out, o.err);
    assert!(
        all.contains("503") && all.contains(&down.host()) && all.contains("\"v1\""),
        "{o}"
    );
    assert!(o.err.contains("gave up after 5 attempts"), "{o}");
    // Each attempt is a HEAD, then the GET oci-client falls back to.
    let attempts = down
        .seen()
        .iter()
        .filter(|(s, code)| s.method == "GET" && is_data(s) && *code == Some(503))
        .count();
    assert_eq!(attempts, 5, "{:?}", down.seen());
    assert_eq!(reference(&workload(&ns).await), None, "nothing applied");
    eprintln!(
        "FIGURE registry always 503: {attempts} attempts ({} injected answers), apply exit 1 in {took:?}, nothing applied",
        down.injected()
    );

    // A 404 is an answer, not a fault: no retry.
    let missing = Proxy::http(&bed.registry, |_: &Seen| Action::Forward);
    let image = format!("{}/{repo}", missing.host());
    let toml = env_toml("prod", &ns, &image, "v9", &insecure(&missing.host()));
    let dir = project(&[("prod", toml)]);
    let o = run(Some(dir.path()), &["-v", "plan"], FAST);
    assert_eq!(o.code, 1, "{o}");
    assert_eq!(retries_logged(&o.err), 0, "{o}");
}

#[test]
fn push_and_inspect_survive_transient_upload_and_download_errors() {
    let bed = bed();
    let repo = format!("{}/flaky", support::unique_ns("rel"));
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("prod")).unwrap();
    std::fs::write(src.path().join("prod/a.json"), b"{\"a\": 1}").unwrap();
    // Uploads: the first two blob writes fail (503, 429).
    let n = AtomicUsize::new(0);
    let up = Proxy::http(&bed.registry, move |s: &Seen| {
        let write = s.method != "GET" && s.method != "HEAD" && s.uri.contains("/blobs/");
        if write && n.fetch_add(1, Ordering::SeqCst) < 2 {
            Action::Respond(
                if n.load(Ordering::SeqCst) == 1 {
                    503
                } else {
                    429
                },
                "x".into(),
            )
        } else {
            Action::Forward
        }
    });
    let image = format!("{}/{repo}:v1", up.host());
    let o = run(
        None,
        &[
            "-v",
            "push",
            src.path().to_str().unwrap(),
            "--image",
            &image,
            "--no-lint",
        ],
        FAST,
    );
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(up.injected(), 2);
    assert_eq!(retries_logged(&o.err), 2, "{o}");
    // Downloads: the first two blob reads fail.
    let down = Proxy::http(&bed.registry, {
        let n = AtomicUsize::new(0);
        move |s: &Seen| {
            if s.method == "GET"
                && s.uri.contains("/blobs/")
                && n.fetch_add(1, Ordering::SeqCst) < 2
            {
                Action::Respond(500, "x".into())
            } else {
                Action::Forward
            }
        }
    });
    let image = format!("{}/{repo}:v1", down.host());
    let o = run(None, &["-v", "inspect", &image, "--tree"], FAST);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.out.contains("a.json"), "{o}");
    assert_eq!(down.injected(), 2);
}

/// Incompressible bytes, so that a layer is as large as its files.
fn noise(len: usize, seed: u8) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest([seed]).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

#[tokio::test]
async fn registry_killed_mid_push_never_tags_a_partial_image_and_a_rerun_completes() {
    let bed = bed();
    let mut reg = OwnRegistry::start(bed);
    let pid = Arc::new(AtomicU64::new(reg.proc.pid as u64));
    let armed = Arc::new(AtomicBool::new(true));
    let killed_at = Arc::new(AtomicU64::new(0));
    let proxy = Proxy::http(&reg.host, {
        let (pid, armed, killed_at) = (pid.clone(), armed.clone(), killed_at.clone());
        move |s: &Seen| {
            if s.method == "PUT"
                && s.uri.contains("/blobs/uploads/")
                && armed.load(Ordering::SeqCst)
            {
                let (pid, armed, killed_at) = (pid.clone(), armed.clone(), killed_at.clone());
                Action::ForwardTapped(Box::new(move |sent| {
                    // 1 MiB of the 4 MiB layer is in the registry when it dies.
                    if sent >= 1 << 20 && armed.swap(false, Ordering::SeqCst) {
                        faultkit::signal(pid.load(Ordering::SeqCst) as u32, "KILL");
                        killed_at.store(sent, Ordering::SeqCst);
                    }
                }))
            } else {
                Action::Forward
            }
        }
    });
    let src = tempfile::tempdir().unwrap();
    for (path, data) in dashboards("mid-push") {
        let p = src.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    // Outside the mounted sub_path: only there to make the layer 4 MiB.
    std::fs::write(src.path().join("big.bin"), noise(4 << 20, 1)).unwrap();
    let repo = "team/perses-resources";
    let image = format!("{}/{repo}:v1", proxy.host());
    let push = || {
        run(
            None,
            &[
                "push",
                src.path().to_str().unwrap(),
                "--image",
                &image,
                "--no-lint",
            ],
            FAST,
        )
    };
    let o = push();
    assert_eq!(o.code, 1, "{o}");
    assert!(killed_at.load(Ordering::SeqCst) >= 1 << 20, "{o}");
    assert!(o.err.contains(&proxy.host()), "names the registry: {o}");
    assert_eq!(reg.tag_target(repo, "v1"), None, "the tag was written");

    reg.restart();
    pid.store(reg.proc.pid as u64, Ordering::SeqCst);
    let o = push();
    assert_eq!(o.code, 0, "{o}");
    let line = o.out.lines().next().unwrap();
    let digest = &line[line.find("@sha256:").unwrap() + 1..][..71];
    assert_eq!(reg.tag_target(repo, "v1").as_deref(), Some(digest));
    // Read back through every digest check of the reader.
    let o = run(None, &["inspect", &image, "--tree"], &[]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.out.contains("big.bin"), "{o}");
    eprintln!(
        "FIGURE registry SIGKILLed after {} of {} layer bytes: push exit 1, tag absent; restart + re-run: exit 0",
        killed_at.load(Ordering::SeqCst),
        4 << 20
    );

    // The same registry stopped before an apply: exit 1, a clear error, nothing written; once
    // it is back, the next apply converges.
    let client = bed.client("prod").await;
    let ns = support::unique_ns("rel-regdown");
    support::create_namespace(&client, &ns).await;
    support::create_chart_workload(&client, &ns, None).await;
    let img = format!("{}/{repo}", reg.host);
    let dir = project(&[(
        "prod",
        env_toml("prod", &ns, &img, "v1", "sub_path = \"prod\"\n"),
    )]);
    reg.proc.kill();
    let o = run(
        Some(dir.path()),
        &["apply", "--auto-approve", "--no-wait"],
        FAST,
    );
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.out.contains("unreachable") && o.out.contains(&reg.host)
            || o.err.contains("unreachable") && o.err.contains(&reg.host),
        "{o}"
    );
    assert_eq!(reference(&workload(&ns).await), None, "nothing applied");
    reg.restart();
    let o = run(
        Some(dir.path()),
        &["apply", "--auto-approve", "--no-wait"],
        FAST,
    );
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        reference(&workload(&ns).await),
        Some(format!("{img}:v1@{digest}"))
    );
}

/// A JSON Status as the API server writes it.
fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
    .to_string()
}

fn is_write(s: &Seen) -> bool {
    s.method == "PATCH" && s.uri.contains("/statefulsets/") && !s.uri.contains("dryRun")
}

#[tokio::test]
async fn api_server_429_and_5xx_are_retried_409_is_not() {
    let bed = bed();
    let (ns, image, d1) = scenario("prod", None, "v1").await;
    let upstream = faultkit::api_server_addr(bed, "prod");
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    let apply = |kubeconfig: &Path| {
        run(
            Some(dir.path()),
            &["-v", "apply", "--auto-approve", "--no-wait"],
            &[
                ("KUBECONFIG", kubeconfig.to_str().unwrap()),
                ("PERSES_OCI_RETRY_BASE_MS", "20"),
            ],
        )
    };

    // Two 503s on reads of the workload and two 429s on the write: apply gets through.
    let (reads, writes) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let proxy = Proxy::api_server(bed, &upstream, move |s: &Seen| {
        if s.method == "GET" && s.uri.contains("/statefulsets/") {
            if reads.fetch_add(1, Ordering::SeqCst) < 2 {
                return Action::Respond(503, status(503, "ServiceUnavailable", "injected"));
            }
        } else if is_write(s) && writes.fetch_add(1, Ordering::SeqCst) < 2 {
            return Action::Respond(
                429,
                status(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                ),
            );
        }
        Action::Forward
    });
    let kc = faultkit::kubeconfig_via(bed, "prod", &proxy, tmp.path());
    let o = apply(&kc);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(proxy.injected(), 4, "{:?}", proxy.seen());
    assert_eq!(retries_logged(&o.err), 4, "{o}");
    let obj = workload(&ns).await;
    assert_eq!(reference(&obj), Some(format!("{image}:v1@{d1}")));
    assert_eq!(history_len(&obj), 1, "one revision, however many attempts");

    // A 409 on the write is a field conflict: reported at once, never retried.
    support::push_files(
        bed,
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
    let conflict = status(
        409,
        "Conflict",
        "Apply failed with 1 conflict: conflict with \"helm\" using apps/v1: .spec.template.spec.volumes[name=\"perses-resources\"].image.reference",
    );
    let proxy = Proxy::api_server(bed, &upstream, move |s: &Seen| {
        if is_write(s) {
            Action::Respond(409, conflict.clone())
        } else {
            Action::Forward
        }
    });
    let kc = faultkit::kubeconfig_via(bed, "prod", &proxy, tmp.path());
    let o = apply(&kc);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.err.contains("\"helm\"") && o.err.contains("--force-conflicts"),
        "{o}"
    );
    assert_eq!(proxy.seen().iter().filter(|(s, _)| is_write(s)).count(), 1);
    assert_eq!(retries_logged(&o.err), 0, "{o}");

    // 503 on every write: five attempts, a clear error, the lease released, nothing changed.
    let proxy = Proxy::api_server(bed, &upstream, |s: &Seen| {
        if is_write(s) {
            Action::Respond(503, status(503, "ServiceUnavailable", "injected"))
        } else {
            Action::Forward
        }
    });
    let kc = faultkit::kubeconfig_via(bed, "prod", &proxy, tmp.path());
    let o = apply(&kc);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.err.contains("503") && o.err.contains("patch"), "{o}");
    assert!(o.err.contains("gave up after 5 attempts"), "{o}");
    assert_eq!(proxy.seen().iter().filter(|(s, _)| is_write(s)).count(), 5);
    let obj = workload(&ns).await;
    assert_eq!(reference(&obj), Some(format!("{image}:v1@{d1}")));
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(bed.client("prod").await, &ns);
    assert!(
        leases
            .get_opt("perses-oci-statefulset-perses")
            .await
            .unwrap()
            .is_none(),
        "the lease is released after a failed write"
    );
    eprintln!(
        "FIGURE API server: 2x503 reads + 2x429 writes survived; 409 not retried (1 write); 503 always: 5 writes then exit 1"
    );
}

#[tokio::test]
async fn concurrent_applies_on_one_workload_exactly_one_writes() {
    let bed = bed();
    let (ns, image, digest) = scenario("prod", None, "v1").await;
    let dirs: Vec<tempfile::TempDir> = (0..4)
        .map(|_| project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]))
        .collect();
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("perses-oci"));
            c.envs(bed.vars.iter().map(|(k, v)| (k, v)))
                .arg("--dir")
                .arg(d.path())
                .args(["apply", "--auto-approve", "--no-wait"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let outs: Vec<Out> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            Out {
                code: o.status.code().unwrap_or(-1),
                out: String::from_utf8_lossy(&o.stdout).into_owned(),
                err: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        })
        .collect();
    let wrote: Vec<&Out> = outs
        .iter()
        .filter(|o| o.out.contains("prod: applied to"))
        .collect();
    let all = outs.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(wrote.len(), 1, "{all:#?}");
    assert_eq!(wrote[0].code, 0);
    for o in &outs {
        if !o.out.contains("prod: applied to") {
            // Refused by the lease, or by the re-read under it, or planned after the write.
            assert!(
                (o.code == 1
                    && (o.err.contains("locked by") || o.err.contains("changed in the cluster")))
                    || (o.code == 0 && o.out.contains("No changes")),
                "{o}"
            );
        }
    }
    let obj = workload(&ns).await;
    assert_eq!(reference(&obj), Some(format!("{image}:v1@{digest}")));
    assert_eq!(history_len(&obj), 1, "exactly one revision");
    let refused = outs.iter().filter(|o| o.code == 1).count();
    eprintln!("FIGURE 4 concurrent applies: 1 wrote, {refused} refused, history 1 revision");
}

#[test]
fn twenty_plans_at_once_agree() {
    let bed = bed();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ns, image, _) = rt.block_on(scenario("prod", None, "v1"));
    let dir = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    let t = Instant::now();
    let children: Vec<_> = (0..20)
        .map(|_| {
            let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("perses-oci"));
            c.envs(bed.vars.iter().map(|(k, v)| (k, v)))
                .arg("--dir")
                .arg(dir.path())
                .args(["plan", "--format", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let took = t.elapsed();
    let first: Value = serde_json::from_slice(&outs[0].stdout).unwrap();
    for o in &outs {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v, first);
    }
    assert_eq!(first["summary"]["add"], 1);
    let obj = rt.block_on(workload(&ns));
    assert_eq!(reference(&obj), None, "plans write nothing");
    eprintln!("FIGURE 20 concurrent plans: all exit 0, identical JSON, {took:?} wall");
}

// Hostile manifests and TOML.

fn sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI layout holding `manifest` (and `blobs`) under tag `v1`.
fn layout(dir: &Path, manifest: &[u8], blobs: &[&[u8]]) -> String {
    let b = dir.join("blobs/sha256");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for blob in blobs.iter().chain([&manifest]) {
        std::fs::write(b.join(&sha(blob)[7..]), blob).unwrap();
    }
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha(manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    format!("oci:{}:v1", dir.display())
}

/// A manifest of `n` layers, all the same small valid layer, and its config.
fn many_layers(n: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "a.json", &b"{}"[..]).unwrap();
    let raw = tar.into_inner().unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": vec![sha(&raw); n]}}))
    .unwrap();
    let layer = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       "digest": sha(&raw), "size": raw.len()});
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": vec![layer; n]}))
    .unwrap();
    (manifest, config, raw)
}

#[tokio::test]
async fn hostile_manifests_are_refused_quickly() {
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    // 100,000 layers (12 MiB of manifest): the bed's registry refuses to store it, so a hostile
    // registry (a proxy in front of the bed's) serves it.
    let (manifest, config, raw) = many_layers(100_000);
    let body = Arc::new(manifest.clone());
    let hostile = Proxy::http(&bed.registry, move |s: &Seen| {
        if s.uri.contains("/manifests/") {
            Action::Serve("application/vnd.oci.image.manifest.v1+json", body.clone())
        } else {
            Action::Forward
        }
    });
    let r = format!("{}/{}/layers:v1", hostile.host(), support::unique_ns("rel"));
    let mut tried = 0;
    let mut check = |reference: &str, want: &str| {
        let t = Instant::now();
        let o = run(None, &["inspect", reference, "--tree"], &[]);
        let took = t.elapsed();
        tried += 1;
        assert_eq!(o.code, 1, "{o}");
        assert!(o.err.contains(want), "{o}");
        assert!(!o.err.contains("panicked"), "{o}");
        assert!(took.as_secs() < 10, "{reference}: {took:?}");
        took
    };
    let r100k = check(&r, "manifests and configs are read up to");
    // The same, from an OCI layout on disk.
    let l100k = check(
        &layout(&tmp.path().join("100k"), &manifest, &[&config, &raw]),
        "manifests and configs are read up to",
    );
    // 1,001 layers fit in 4 MiB: refused by the layer cap before any layer is read.
    let (manifest, config, raw) = many_layers(1001);
    let l1001 = check(
        &layout(&tmp.path().join("1001"), &manifest, &[&config, &raw]),
        "lists 1001 layers; at most 1000 are read",
    );
    // An index that names itself, a manifest that is not JSON, a layer of an unknown type.
    let dir = tmp.path().join("notjson");
    check(&layout(&dir, b"\x00\xffnot json", &[]), "is not valid");
    let (mut m, config, raw) = many_layers(1);
    m = String::from_utf8(m)
        .unwrap()
        .replace("v1.tar\"", "v1.tar+zstd\"")
        .into_bytes();
    check(
        &layout(&tmp.path().join("zstd"), &m, &[&config, &raw]),
        "zstd layers are not supported",
    );
    eprintln!(
        "FIGURE hostile manifests: {tried} refused; 100,000 layers in {r100k:?} (registry) / {l100k:?} (layout), 1,001 layers in {l1001:?}"
    );
}

#[test]
fn hostile_toml_is_refused_with_a_position_and_a_short_message() {
    let base = |ns: &str, name: &str, tag: &str, mount: &str| {
        format!(
            "[target]\ncontext = \"prod\"\nnamespace = \"{ns}\"\n\n[artifact]\nname = \"{name}\"\nimage = \"127.0.0.1:5000/x/y\"\ntag = \"{tag}\"\nmount_path = \"{mount}\"\n"
        )
    };
    let m = "/etc/perses/provisioning";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge",
            base("prod", "a", &"v".repeat(10 << 20), m).into_bytes(),
            "prod.toml:8:7: artifact.tag: must be at most 128 characters",
        ),
        (
            "escape",
            base("prod\\u001b[31mred\\u0007", "a", "v1", m).into_bytes(),
            "target.namespace: must not contain control characters",
        ),
        (
            "nul",
            b"[target]\nnamespace = \"a\x00b\"\n".to_vec(),
            "prod.toml:2:15: invalid TOML",
        ),
        (
            "bell",
            b"# \x07\n[target]\n".to_vec(),
            "prod.toml:1:3: invalid TOML",
        ),
        (
            "utf8",
            b"[target]\nnamespace = \"\xff\xfe\"\n".to_vec(),
            "prod.toml:2:14: not valid UTF-8",
        ),
        (
            "zero-width",
            base("prod", "perses\u{200b}resources", "v1", m).into_bytes(),
            "artifact.name: must not contain invisible or text-direction characters (found U+200B)",
        ),
        (
            "right-to-left override",
            base("prod", "a", "v1", "/etc/perses/\u{202e}nosj.d").into_bytes(),
            "artifact.mount_path: must not contain invisible or text-direction characters (found U+202E)",
        ),
        (
            "homoglyph",
            base("pr\u{043e}d", "a", "v1", m).into_bytes(),
            "target.namespace: must be a DNS-1123 label",
        ),
        (
            "emoji",
            base("prod", "a", "v1\u{1F600}", m).into_bytes(),
            "artifact.tag: may contain only",
        ),
        (
            "deep-array",
            format!("a = {}{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            "max recursion depth",
        ),
        (
            "deep-table",
            format!("a = {}1{}\n", "{b = ".repeat(50_000), "}".repeat(50_000)).into_bytes(),
            "max recursion depth",
        ),
        (
            "many-keys",
            (0..50_000)
                .map(|i| format!("k{i} = {i}\n"))
                .collect::<String>()
                .into_bytes(),
            "unknown key",
        ),
    ];
    let mut worst = std::time::Duration::ZERO;
    for (name, text, want) in &cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("environments")).unwrap();
        std::fs::write(dir.path().join("environments/prod.toml"), text).unwrap();
        let t = Instant::now();
        let o = run(Some(dir.path()), &["validate"], &[]);
        worst = worst.max(t.elapsed());
        assert_eq!(
            o.code,
            1,
            "{name}: {}",
            &o.to_string()[..o.to_string().len().min(2000)]
        );
        assert!(
            o.err.contains(want),
            "{name}: {}",
            &o.err[..o.err.len().min(2000)]
        );
        assert!(!o.err.contains("panicked"), "{name}: {}", o.err);
        // Short, and never raw control characters on the terminal.
        assert!(
            o.err.len() < 64 << 10,
            "{name}: {} bytes of errors",
            o.err.len()
        );
        assert!(
            !o.err.chars().any(|c| c.is_control() && c != '\n'),
            "{name}: raw control characters in {:?}",
            &o.err[..o.err.len().min(500)]
        );
        let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(written.len(), 1, "{name}: wrote into the project");
    }
    // A file name that is not a DNS label (Cyrillic `о`): the project itself is refused.
    let dir = project(&[("pr\u{043e}d", base("prod", "a", "v1", m))]);
    let o = run(Some(dir.path()), &["validate"], &[]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.err.contains("must be a DNS-1123 label"), "{o}");
    eprintln!(
        "FIGURE hostile TOML: {} files refused with file:line:col, slowest {worst:?}",
        cases.len() + 1
    );
}

// Least privilege and secrets.

/// Creates a Role of examples/rbac.yaml (unchanged but for the namespace) in `ns` and binds it
/// to `subject`.
async fn bind_example_role(admin: &kube::Client, ns: &str, role: &str, subject: Value) {
    let yaml = std::fs::read_to_string(support::repo_root().join("examples/rbac.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let mut r = docs
        .into_iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == role)
        .unwrap();
    r["metadata"]["namespace"] = json!(ns);
    let name = format!("{role}-{}", subject["name"].as_str().unwrap());
    let b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [subject]});
    for obj in [r, b] {
        let gvk = kube::api::GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            obj["kind"].as_str().unwrap(),
        );
        let api = Api::<kube::api::DynamicObject>::namespaced_with(
            admin.clone(),
            ns,
            &kube::api::ApiResource::from_gvk(&gvk),
        );
        match api
            .create(&Default::default(), &serde_json::from_value(obj).unwrap())
            .await
        {
            Ok(_) => {}
            // The Role is shared by several bindings.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("{e}"),
        }
    }
}

fn user_nobody() -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nobody"})
}

#[tokio::test]
async fn every_command_with_the_minimal_roles_of_examples_rbac() {
    let bed = bed();
    let admin = bed.client("prod").await;
    let mut ran = 0;
    // `code` 0 or 2 (drift found): allowed; 1: refused, naming what `want` lists.
    let mut check = |dir: &Path, args: &[&str], code: i32, want: &[&str]| {
        let o = run(Some(dir), args, FAST);
        ran += 1;
        assert_eq!(o.code, code, "{args:?}:\n{o}");
        let all = format!("{}{}", o.out, o.err);
        if code == 1 {
            assert!(all.contains("forbidden"), "{args:?}: {o}");
        }
        for w in want {
            assert!(all.contains(w), "{args:?} should name {w}: {o}");
        }
    };
    let v2 = |ns: String| async move {
        support::push_files(
            support::bed(),
            Reg::Plain,
            &format!("{ns}/perses-resources"),
            "v2",
            &dashboards("v2"),
        )
        .await;
    };

    // The plan role: every read works; every write is refused, naming its verb and resource.
    let (ns, image, _) = scenario("prod", None, "v1").await;
    v2(ns.clone()).await;
    bind_example_role(&admin, &ns, "perses-oci-plan", user_nobody()).await;
    // Two revisions written by an admin, so that there is something to roll back to.
    let adm = project(&[("prod", env_toml("prod", &ns, &image, "v1", ""))]);
    check(
        adm.path(),
        &["apply", "--auto-approve", "--no-wait"],
        0,
        &[],
    );
    std::fs::write(
        adm.path().join("environments/prod.toml"),
        env_toml("prod", &ns, &image, "v2", ""),
    )
    .unwrap();
    check(
        adm.path(),
        &["apply", "--auto-approve", "--no-wait"],
        0,
        &[],
    );
    let dir = project(&[("prod", env_toml("prod-none", &ns, &image, "v1", ""))]);
    let d = dir.path();
    let import = [
        "import",
        "--env",
        "imported",
        "--context",
        "prod-none",
        "--namespace",
        &ns,
    ];
    check(d, &["validate"], 0, &[]);
    check(d, &["plan"], 0, &["dry run was skipped"]);
    check(d, &["drift"], 2, &[]);
    check(d, &["history", "--env", "prod"], 0, &[]);
    check(
        d,
        &["apply", "--auto-approve", "--no-wait"],
        1,
        &["\"patch\"", "statefulsets"],
    );
    check(
        d,
        &["rollback", "--env", "prod", "--auto-approve", "--no-wait"],
        1,
        &["\"patch\"", "statefulsets"],
    );
    check(
        d,
        &["force-unlock", "--env", "prod"],
        1,
        &["\"get\"", "leases"],
    );
    check(d, &import, 0, &[]);

    // The apply role: every command works.
    let (ns, image, _) = scenario("prod", None, "v1").await;
    v2(ns.clone()).await;
    bind_example_role(&admin, &ns, "perses-oci-apply", user_nobody()).await;
    let dir = project(&[("prod", env_toml("prod-none", &ns, &image, "v1", ""))]);
    let d = dir.path();
    let import = [
        "import",
        "--env",
        "imported",
        "--context",
        "prod-none",
        "--namespace",
        &ns,
    ];
    check(d, &["plan"], 0, &[]);
    check(d, &["apply", "--auto-approve", "--no-wait"], 0, &[]);
    std::fs::write(
        d.join("environments/prod.toml"),
        env_toml("prod-none", &ns, &image, "v2", ""),
    )
    .unwrap();
    check(d, &["apply", "--auto-approve", "--no-wait"], 0, &[]);
    check(d, &["history", "--env", "prod"], 0, &[]);
    check(
        d,
        &["rollback", "--env", "prod", "--auto-approve", "--no-wait"],
        0,
        &[],
    );
    check(d, &["drift"], 2, &[]);
    check(d, &["force-unlock", "--env", "prod"], 0, &[]);
    check(d, &import, 0, &[]);
    eprintln!("FIGURE least privilege: {ran} command runs with exactly the example Roles");
}

/// Every encoding of a secret that could reach a log: as is, and base64 as in headers and
/// Docker configs.
fn forms(secret: &str) -> Vec<String> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b64 = |bytes: &[u8]| {
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = c.iter().fold(0u32, |a, &b| (a << 8) | b as u32) << (8 * (3 - c.len()));
            for i in 0..=c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            }
        }
        out
    };
    vec![secret.to_string(), b64(secret.as_bytes())]
}

/// At `-vvv`, whose filter (`trace` for every crate) lets through every event the default, `-v`
/// and `-vv` print, in the same format (stdout does not depend on the verbosity): one command
/// line per way a secret could go out (plan file, JSON, metrics file, a write, a content diff,
/// a push, refused credentials, a pod). The long test runs every command in every format at
/// every verbosity.
#[tokio::test]
async fn planted_secrets_appear_in_no_output_plan_file_or_log() {
    secrets_matrix(&[Some("-vvv")], false).await;
}

#[tokio::test]
#[ignore = "long: every command and format at every verbosity (cargo test --test bed -- --ignored)"]
async fn planted_secrets_every_command_format_and_verbosity() {
    secrets_matrix(&[None, Some("-v"), Some("-vv"), Some("-vvv")], true).await;
}

async fn secrets_matrix(verbosities: &[Option<&'static str>], full: bool) {
    let bed = bed();
    let admin = bed.client("prod").await;
    let (user, password) = bed.registry_credentials();
    let kube_token = std::fs::read_to_string(bed.dir.join("pki/admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let tag = support::unique_ns("planted");
    let secret_v1 = format!("globalsecret-password-{tag}-v1");
    let secret_v2 = format!("globalsecret-password-{tag}-v2");
    let project_secret = format!("secret-password-{tag}");
    let wrong_password = format!("wrong-registry-password-{tag}");
    let identity_token = format!("registry-identity-token-{tag}");

    // Artifacts on the basic-auth registry whose Secret and GlobalSecret hold planted values.
    let ns = support::unique_ns("rel-secrets");
    support::create_namespace(&admin, &ns).await;
    let repo = format!("{ns}/perses-resources");
    let image = format!("{}/{repo}", bed.registry_auth);
    let files = |gs: &str| {
        let mut f = dashboards(gs);
        let g = String::from_utf8(f["prod/3-globalsecret.json"].clone()).unwrap();
        f.insert(
            "prod/3-globalsecret.json".into(),
            g.replace("\"Girl\"", &format!("\"{gs}\"")).into_bytes(),
        );
        let s = String::from_utf8(f["prod/7-secret.json"].clone()).unwrap();
        f.insert(
            "prod/7-secret.json".into(),
            s.replace("\"detective\"", &format!("\"{project_secret}\""))
                .into_bytes(),
        );
        f
    };
    support::push_files(bed, Reg::Auth, &repo, "v1", &files(&secret_v1)).await;
    support::push_files(bed, Reg::Auth, &repo, "v2", &files(&secret_v2)).await;
    let mut live = ChartArtifact::new(&format!("{image}:v1"));
    live.sub_path = Some("prod".into());

    // A real service-account token for the in-cluster runs, with the plan role.
    bind_example_role(
        &admin,
        &ns,
        "perses-oci-plan",
        json!({"kind": "ServiceAccount", "name": "drift", "namespace": ns}),
    )
    .await;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    sas.create(
        &Default::default(),
        &serde_json::from_value(json!({"metadata": {"name": "drift"}})).unwrap(),
    )
    .await
    .unwrap();
    let sa_token = sas
        .create_token_request("drift", &Default::default(), &Default::default())
        .await
        .unwrap()
        .status
        .unwrap()
        .token;

    let planted: Vec<(&str, String)> = vec![
        ("registry password", password.clone()),
        ("registry user:password", format!("{user}:{password}")),
        ("kube bearer token", kube_token.clone()),
        ("service-account token", sa_token.clone()),
        ("wrong registry password", wrong_password.clone()),
        ("registry identity token", identity_token.clone()),
        ("GlobalSecret v1 value", secret_v1.clone()),
        ("GlobalSecret v2 value", secret_v2.clone()),
        ("Secret value", project_secret.clone()),
    ];

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // A Docker config with a wrong password, an auth file with an identity token, and a pod's
    // service-account directory.
    let wrong = w.join("docker-wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::write(wrong.join("config.json"), json!({"auths": {bed.registry_auth.clone(): {"auth": forms(&format!("{user}:{wrong_password}"))[1]}}}).to_string()).unwrap();
    let idfile = w.join("auth.json");
    std::fs::write(
        &idfile,
        json!({"auths": {bed.registry_auth.clone(): {"identitytoken": identity_token}}})
            .to_string(),
    )
    .unwrap();
    let sa_dir = w.join("serviceaccount");
    std::fs::create_dir_all(&sa_dir).unwrap();
    std::fs::write(sa_dir.join("token"), &sa_token).unwrap();
    std::fs::copy(bed.dir.join("pki/ca.pem"), sa_dir.join("ca.crt")).unwrap();
    std::fs::write(sa_dir.join("namespace"), &ns).unwrap();
    let api_port = faultkit::api_server_addr(bed, "prod")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();

    let src = w.join("src");
    for (p, data) in files(&secret_v2) {
        let p = src.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let (v1, v2) = (format!("{image}:v1"), format!("{image}:v2"));
    let pushed = format!("{}/{ns}/pushed:v1", bed.registry_auth);

    // One namespace and workload per verbosity, run side by side.
    let mut spaces = Vec::new();
    for _ in verbosities {
        let nsv = support::unique_ns("rel-secrets");
        support::create_namespace(&admin, &nsv).await;
        support::create_chart_workload(&admin, &nsv, Some(&live)).await;
        bind_example_role(
            &admin,
            &nsv,
            "perses-oci-plan",
            json!({"kind": "ServiceAccount", "name": "drift", "namespace": ns}),
        )
        .await;
        spaces.push(nsv);
    }
    let t = Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|sc| {
        let handles: Vec<_> = verbosities
            .iter()
            .zip(&spaces)
            .map(|(&verbosity, nsv)| {
                let (planted, src, wrong, idfile, sa_dir, w, api_port) =
                    (&planted, &src, &wrong, &idfile, &sa_dir, w, &api_port);
                let (image, v1, v2, pushed) = (&image, &v1, &v2, &pushed);
                sc.spawn(move || {
                    let mut scanned = 0usize;
                    let mut runs = 0usize;
                    let mut scan = |what: &str, text: &str| {
                        scanned += text.len();
                        for (name, secret) in planted {
                            for f in forms(secret) {
                                assert!(!text.contains(&f), "{name} found in {what}:\n{text}");
                            }
                        }
                    };
                    let ns = nsv;
                    let pushed =
                        pushed.replace("/pushed:", &format!("/pushed-{}:", runs_tag(verbosity)));
                    let dir = project(&[(
                        "prod",
                        env_toml("prod", ns, image, "v2", "sub_path = \"prod\"\n"),
                    )]);
                    let d = dir.path();
                    let plan_file = d.join("plan.json");
                    let metrics = d.join("drift.prom");
                    let (pf, mf) = (plan_file.to_str().unwrap(), metrics.to_str().unwrap());
                    let mut cmds: Vec<Cmd> = vec![
                        (vec!["validate"], vec![]),
                        (vec!["plan", "--out", pf], vec![]),
                        (vec!["plan", "--format", "json"], vec![]),
                        (vec!["plan", "--format", "markdown"], vec![]),
                        (vec!["drift", "--metrics-file", mf], vec![]),
                        (vec!["drift", "--format", "json"], vec![]),
                        (vec!["drift", "--format", "markdown"], vec![]),
                        (
                            vec!["apply", "--auto-approve", "--no-wait", "--force-conflicts"],
                            vec![],
                        ),
                        (vec!["apply", pf, "--no-wait"], vec![]),
                        (vec!["history", "--env", "prod"], vec![]),
                        (
                            vec![
                                "rollback",
                                "--env",
                                "prod",
                                "--auto-approve",
                                "--no-wait",
                                "--force-conflicts",
                            ],
                            vec![],
                        ),
                        (vec!["force-unlock", "--env", "prod"], vec![]),
                        (vec!["lint", &v2], vec![]),
                        (vec!["lint", &v2, "--format", "json"], vec![]),
                        (vec!["diff", &v1, &v2], vec![]),
                        (vec!["diff", &v1, &v2, "--format", "json"], vec![]),
                        (vec!["inspect", &v2, "--tree"], vec![]),
                        (
                            vec![
                                "push",
                                src.to_str().unwrap(),
                                "--image",
                                &pushed,
                                "--no-lint",
                            ],
                            vec![],
                        ),
                        (
                            vec![
                                "import",
                                "--env",
                                "imported",
                                "--context",
                                "prod",
                                "--namespace",
                                &ns,
                                "--force",
                            ],
                            vec![],
                        ),
                        // Refused credentials and unsupported ones.
                        (
                            vec!["plan", "--env", "prod"],
                            vec![("DOCKER_CONFIG", wrong.to_string_lossy().into_owned())],
                        ),
                        (
                            vec!["inspect", &v2],
                            vec![("DOCKER_CONFIG", wrong.to_string_lossy().into_owned())],
                        ),
                        (
                            vec!["plan", "--env", "prod"],
                            vec![("REGISTRY_AUTH_FILE", idfile.to_string_lossy().into_owned())],
                        ),
                    ];
                    // In a pod: no kubeconfig, the service account's token.
                    let in_pod = vec![
                        ("KUBECONFIG", String::new()),
                        ("HOME", w.to_string_lossy().into_owned()),
                        ("KUBERNETES_SERVICE_HOST", "127.0.0.1".into()),
                        ("KUBERNETES_SERVICE_PORT", api_port.clone()),
                        (
                            "PERSES_OCI_SERVICEACCOUNT_DIR",
                            sa_dir.to_string_lossy().into_owned(),
                        ),
                    ];
                    let pod = project(&[(
                        "prod",
                        env_toml("prod", ns, image, "v2", "sub_path = \"prod\"\n")
                            .replace("context = \"prod\"\n", ""),
                    )]);
                    // The normal suite's subset: see the test's comment.
                    const SUBSET: [usize; 8] = [1, 2, 4, 7, 15, 17, 19, 21];
                    let cmds: Vec<Cmd> = cmds
                        .drain(..)
                        .enumerate()
                        .filter(|(i, _)| full || SUBSET.contains(i))
                        .map(|(_, c)| c)
                        .collect();
                    for (args, env) in cmds {
                        let mut cmd = bed.cmd();
                        cmd.arg("--dir")
                            .arg(d)
                            .args(verbosity)
                            .args(&args)
                            .env("PERSES_OCI_RETRY_BASE_MS", "10");
                        for (k, v) in &env {
                            cmd.env(k, v);
                        }
                        let o = cmd.output().unwrap();
                        runs += 1;
                        scan(
                            &format!("{verbosity:?} {args:?} stdout"),
                            &String::from_utf8_lossy(&o.stdout),
                        );
                        scan(
                            &format!("{verbosity:?} {args:?} stderr"),
                            &String::from_utf8_lossy(&o.stderr),
                        );
                    }
                    let in_pod_cmds = [
                        vec!["plan"],
                        vec!["drift"],
                        vec!["drift", "--format", "json"],
                    ];
                    for args in in_pod_cmds.into_iter().skip(if full { 0 } else { 2 }) {
                        let mut cmd = bed.cmd();
                        cmd.arg("--dir")
                            .arg(pod.path())
                            .args(verbosity)
                            .args(&args)
                            .env_remove("KUBECONFIG");
                        for (k, v) in &in_pod {
                            if *k != "KUBECONFIG" {
                                cmd.env(k, v);
                            }
                        }
                        let o = cmd.output().unwrap();
                        runs += 1;
                        let (out, err) = (
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr),
                        );
                        assert!(
                            o.status.code() == Some(0) || o.status.code() == Some(2),
                            "in a pod {args:?}: {out}\n{err}"
                        );
                        scan(&format!("{verbosity:?} in-pod {args:?} stdout"), &out);
                        scan(&format!("{verbosity:?} in-pod {args:?} stderr"), &err);
                    }
                    let imported = d.join("environments/imported.toml");
                    let written = if full {
                        vec![&plan_file, &metrics, &imported]
                    } else {
                        vec![&plan_file, &metrics]
                    };
                    for f in written {
                        let text = std::fs::read_to_string(f)
                            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                        scan(&f.display().to_string(), &text);
                    }
                    (runs, scanned)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let runs: usize = results.iter().map(|r| r.0).sum();
    let scanned: usize = results.iter().map(|r| r.1).sum();
    // The scan finds what it looks for: the Docker config holds the password's base64 form.
    let config = std::fs::read_to_string(bed.docker_config.join("config.json")).unwrap();
    assert!(config.contains(&forms(&format!("{user}:{password}"))[1]));
    eprintln!(
        "FIGURE secrets at {verbosities:?}: {} planted (x2 encodings), {runs} runs, {scanned} bytes scanned, 0 found, {:?}",
        planted.len(),
        t.elapsed()
    );
}

/// Arguments and extra environment of one run.
type Cmd<'a> = (Vec<&'a str>, Vec<(&'a str, String)>);

fn runs_tag(v: Option<&str>) -> String {
    v.unwrap_or("v0").trim_start_matches('-').to_string()
}
