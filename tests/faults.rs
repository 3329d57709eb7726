//! Destructive faults on a bed of this binary's own (tests in the main `bed` binary share
//! theirs): an API server killed in the middle of an apply, and an apply killed with SIGKILL
//! while it holds the workload's lease. Both wait for a real lease expiry (30 s), side by side.
//! Killed servers are restarted from their command lines and their pid files updated, so the
//! bed's teardown still stops them (and a shared bed set with PERSES_OCI_TESTBED_ENV is left
//! working).

#[path = "support/mod.rs"]
mod support;

#[path = "faultkit/mod.rs"]
mod faultkit;

use faultkit::{Action, Proc, Proxy, Seen};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{Reg, bed};

const LEASE: &str = "perses-oci-statefulset-perses";

fn files(variant: &str) -> BTreeMap<String, Vec<u8>> {
    let mut f = support::corpus_files("dev-data", "prod");
    f.remove("prod/ephemeraldashboard.json");
    f.insert("prod/variant.txt".into(), variant.as_bytes().to_vec());
    f
}

/// A namespace on `context` with the chart's workload, and tags v1 and v2 pushed.
async fn scenario(context: &str) -> (String, String) {
    let bed = bed();
    let client = bed.client(context).await;
    let ns = support::unique_ns(&format!("faults-{context}"));
    support::create_namespace(&client, &ns).await;
    let repo = format!("{ns}/perses-resources");
    for tag in ["v1", "v2"] {
        support::push_files(bed, Reg::Plain, &repo, tag, &files(tag)).await;
    }
    support::create_chart_workload(&client, &ns, None).await;
    (ns, format!("{}/{repo}", bed.registry))
}

fn project(context: &str, ns: &str, image: &str, tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("environments")).unwrap();
    std::fs::write(
        dir.path().join("environments/prod.toml"),
        format!(
            "[target]\ncontext = \"{context}\"\nnamespace = \"{ns}\"\n\n[artifact]\nname = \"perses-resources\"\nimage = \"{image}\"\ntag = \"{tag}\"\nmount_path = \"/etc/perses/provisioning\"\n"
        ),
    )
    .unwrap();
    dir
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = bed().cmd();
    cmd.arg("--dir").arg(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

async fn reference(context: &str, ns: &str) -> Option<String> {
    let api: Api<StatefulSet> = Api::namespaced(bed().client(context).await, ns);
    let obj = serde_json::to_value(api.get("perses").await.unwrap()).unwrap();
    obj["spec"]["template"]["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "perses-resources")
        .and_then(|v| v["image"]["reference"].as_str().map(str::to_string))
}

async fn lease(context: &str, ns: &str) -> Option<Value> {
    let api: Api<Lease> = Api::namespaced(bed().client(context).await, ns);
    api.get_opt(LEASE)
        .await
        .unwrap()
        .map(|l| serde_json::to_value(l).unwrap())
}

#[tokio::test]
async fn api_server_killed_during_apply_nothing_half_written_and_a_rerun_converges() {
    let bed = bed();
    let (ns, image) = scenario("staging").await;
    let mut server = Proc::of_bed(bed, "staging-apiserver");
    let upstream = faultkit::api_server_addr(bed, "staging");
    let pid = server.pid;
    let killed = Arc::new(AtomicBool::new(false));
    // The API server dies the moment the real write (not the dry run) is on its way.
    let proxy = Proxy::api_server(bed, &upstream, {
        let killed = killed.clone();
        move |s: &Seen| {
            let write = s.method == "PATCH"
                && s.uri.contains("/statefulsets/")
                && !s.uri.contains("dryRun");
            if write && !killed.swap(true, Ordering::SeqCst) {
                faultkit::kill_and_wait(pid);
            }
            Action::Forward
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let kc = faultkit::kubeconfig_via(bed, "staging", &proxy, tmp.path());
    let dir = project("staging", &ns, &image, "v1");
    let t = Instant::now();
    let (code, out, err) = run(
        dir.path(),
        &["apply", "--auto-approve", "--no-wait"],
        &[
            ("KUBECONFIG", kc.to_str().unwrap()),
            ("PERSES_OCI_RETRY_BASE_MS", "100"),
        ],
    );
    let failed_after = t.elapsed();
    assert!(killed.load(Ordering::SeqCst), "{out}\n{err}");
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("API server of context staging is unreachable"),
        "{out}\n{err}"
    );
    assert!(err.contains("gave up after 5 attempts"), "{err}");

    server.restart();
    assert!(
        faultkit::wait_api_ready(bed, "staging", Duration::from_secs(60)),
        "the API server did not come back"
    );
    let restarted = t.elapsed();
    assert_eq!(reference("staging", &ns).await, None, "nothing was written");
    // The dead apply could not delete its lease: it is still there, and it will expire.
    let l = lease("staging", &ns)
        .await
        .expect("the lease is left behind");
    assert!(
        l["spec"]["holderIdentity"]
            .as_str()
            .unwrap()
            .contains("(pid "),
        "{l}"
    );
    let (code, out, err) = run(
        dir.path(),
        &[
            "apply",
            "--auto-approve",
            "--no-wait",
            "--lock-timeout",
            "60s",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let converged = t.elapsed();
    let digest = reference("staging", &ns).await.unwrap();
    assert!(
        digest.starts_with(&format!("{image}:v1@sha256:")),
        "{digest}"
    );
    let (code, out, _) = run(dir.path(), &["apply", "--auto-approve", "--no-wait"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("No changes"), "{out}");
    eprintln!(
        "FIGURE API server SIGKILLed at the write: apply exit 1 after {failed_after:?}; restarted at {restarted:?}; re-run converged at {converged:?} (waited for the lease)"
    );
}

#[tokio::test]
async fn apply_killed_with_sigkill_holding_the_lease_then_it_expires_and_the_next_apply_converges()
{
    let bed = bed();
    let (ns, image) = scenario("prod").await;
    let dir = project("prod", &ns, &image, "v1");
    // An apply that waits for a rollout nobody plays: it holds the lease until killed.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("perses-oci"))
        .envs(bed.vars.iter().map(|(k, v)| (k, v)))
        .arg("--dir")
        .arg(dir.path())
        .args(["apply", "--auto-approve", "--timeout", "300s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        if let Some(l) = lease("prod", &ns).await {
            break l;
        }
        assert!(Instant::now() < deadline, "the apply never took the lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    faultkit::signal(child.id(), "KILL");
    let status = child.wait().unwrap();
    let killed_at = Instant::now();
    assert_eq!(status.code(), None, "killed by a signal");
    let holder = held["spec"]["holderIdentity"].as_str().unwrap().to_string();
    assert!(
        holder.contains(&format!("(pid {})", child.id())),
        "{holder}"
    );

    // Another change, at once: refused, naming the dead holder.
    let next = project("prod", &ns, &image, "v2");
    let (code, out, err) = run(next.path(), &["apply", "--auto-approve", "--no-wait"], &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains(&holder), "{err}");
    // Nobody renews a dead holder's lease.
    let renew = lease("prod", &ns).await.unwrap()["spec"]["renewTime"].clone();
    // Waiting for it: the lease expires (30 s after its last renewal) and the apply goes on.
    let (code, out, err) = run(
        next.path(),
        &[
            "apply",
            "--auto-approve",
            "--no-wait",
            "--lock-timeout",
            "60s",
        ],
        &[],
    );
    let waited = killed_at.elapsed();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(45),
        "the lease expired after {waited:?}"
    );
    let r = reference("prod", &ns).await.unwrap();
    assert!(r.starts_with(&format!("{image}:v2@sha256:")), "{r}");
    assert!(lease("prod", &ns).await.is_none(), "the new apply released");
    let (code, out, _) = run(next.path(), &["apply", "--auto-approve", "--no-wait"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("No changes"), "{out}");
    eprintln!(
        "FIGURE apply SIGKILLed holding the lease (renewTime {renew}): next apply refused at once, then waited {waited:?} for the expiry and converged"
    );
}
