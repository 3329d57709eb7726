//! On the bed's real node (kubelet + containerd, the real controllers): the real Perses chart,
//! artifacts perses-oci pushes, rollouts the StatefulSet controller runs, and the Perses server in
//! the pod as the judge of what was mounted. Pods are reached only through `kubectl
//! port-forward` and `kubectl exec`.

use crate::support::node::{PersesApi, resources_in};
use crate::support::{self, Bed, bed};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long Perses may take to provision after its pod is ready (it loads the folder in the
/// background after it starts; a few seconds here).
const PROVISIONED: Duration = Duration::from_secs(60);

pub fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
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

/// A resource tree as teams keep it: one folder per environment, JSON and YAML side by side
/// (the quickstart's resources).
pub fn resource_tree(root: &Path) -> PathBuf {
    let tree = root.join("resources");
    let src = support::repo_root().join("examples/quickstart/resources");
    for env in ["prod", "staging"] {
        std::fs::create_dir_all(tree.join(env)).unwrap();
        for e in std::fs::read_dir(src.join(env)).unwrap().flatten() {
            std::fs::copy(e.path(), tree.join(env).join(e.file_name())).unwrap();
        }
    }
    assert!(tree.join("prod/latency.yaml").is_file(), "a YAML dashboard");
    tree
}

/// Rewrites the display name of the `checkout` dashboard of `env` (a one-dashboard change).
pub fn rename_checkout(tree: &Path, env: &str, display: &str) {
    let path = tree.join(env).join("checkout.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["spec"]["display"]["name"] = Value::String(display.into());
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn checkout_display(api: &PersesApi) -> Option<String> {
    api.dashboard("shop", "checkout")
        .and_then(|d| d["spec"]["display"]["name"].as_str().map(str::to_string))
}

/// `perses-oci push TREE --image IMAGE:TAG`, which must succeed.
/// `perses-oci import` of the `prod` environment from the workload in `ns` on the `prod`
/// cluster, into `project`; its standard output and error (import warns on the latter).
pub fn import_prod(project: &Path, ns: &str) -> (String, String) {
    let (code, out, err) = run(
        project,
        &[
            "import",
            "--env",
            "prod",
            "--context",
            "prod",
            "--namespace",
            ns,
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    (out, err)
}

pub fn push(tree: &Path, image: &str, tag: &str, extra: &[&str]) -> String {
    let mut args = vec!["push", tree.to_str().unwrap(), "--image"];
    let reference = format!("{image}:{tag}");
    args.push(&reference);
    args.extend_from_slice(extra);
    let (code, out, err) = run(Path::new("."), &args);
    assert_eq!(code, 0, "push {reference}:\n{out}\n{err}");
    out
}

/// An environment on the chart's StatefulSet `perses`, container `perses`.
pub fn chart_env(context: &str, ns: &str, image: &str, tag: &str, extra: &str) -> String {
    format!(
        "[target]\ncontext = \"{context}\"\nnamespace = \"{ns}\"\nworkload = \"statefulset/perses\"\ncontainer = \"perses\"\n\n\
         [artifact]\nname = \"perses-resources\"\nimage = \"{image}\"\ntag = \"{tag}\"\n\
         pull_policy = \"IfNotPresent\"\nmount_path = \"/etc/perses/provisioning\"\nsub_path = \"prod\"\n{extra}"
    )
}

pub fn write_env(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join("environments")).unwrap();
    std::fs::write(dir.join(format!("environments/{name}.toml")), text).unwrap();
}

/// A namespace with the real chart installed by helm 3 (no `ociArtifacts`: perses-oci adds the
/// artifact), and a repository name for the namespace.
pub fn chart_namespace(bed: &Bed, prefix: &str, home: &Path) -> (String, String) {
    let ns = support::unique_ns(prefix);
    bed.kubectl_ok("prod", &["create", "namespace", &ns]);
    bed.helm_install_chart(3, "prod", &ns, "perses", home, &[]);
    let image = format!("{}/{ns}/perses-resources", bed.registry);
    (ns, image)
}

#[test]
fn the_chart_serves_exactly_the_sub_path_then_a_changed_dashboard_then_the_rollback() {
    let bed = bed();
    assert!(bed.nodes.iter().any(|n| n == "prod"), "the bed has no node");
    let work = tempfile::tempdir().unwrap();
    let (ns, image) = chart_namespace(bed, "node-chart", work.path());
    let tree = resource_tree(work.path());
    push(&tree, &image, "v1", &[]);
    let project = work.path().join("project");
    write_env(&project, "prod", &chart_env("prod", &ns, &image, "v1", ""));

    // 1. apply waits for the real rollout; Perses then serves exactly prod's resources.
    let (code, out, err) = run(&project, &["apply", "--auto-approve", "--timeout", "180s"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("prod: waiting for the rollout:") && out.contains("prod: rolled out"),
        "the wait follows the controller:\n{out}"
    );
    let sts: Value = serde_json::from_str(&bed.kubectl_ok(
        "prod",
        &["-n", &ns, "get", "statefulset", "perses", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    assert_eq!(sts["status"]["readyReplicas"], 1);
    let want = resources_in(&tree.join("prod"));
    assert!(
        want.contains(&"Dashboard shop/latency".to_string()),
        "the YAML dashboard is part of it: {want:?}"
    );
    let api = PersesApi::connect(bed, "prod", &ns, "perses-0");
    let served = api.wait_until(PROVISIONED, |a| {
        let r = a.resources();
        (r == want, r)
    });
    assert_eq!(served, want);
    drop(api);

    // 2. v2 changes one dashboard: plan says which, apply rolls it out, Perses serves it.
    rename_checkout(&tree, "prod", "Checkout v2");
    push(&tree, &image, "v2", &[]);
    write_env(&project, "prod", &chart_env("prod", &ns, &image, "v2", ""));
    let (code, out, err) = run(&project, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        out.contains("Content: 0 added, 1 changed, 0 removed (3 unchanged)")
            && out.contains("~ Dashboard shop/checkout (changed, checkout.json)")
            && out.contains("-      \"name\": \"Checkout\"")
            && out.contains("+      \"name\": \"Checkout v2\""),
        "{out}"
    );
    assert!(!out.contains("Dashboard shop/latency"), "{out}");
    let (code, out, err) = run(&project, &["apply", "--auto-approve", "--timeout", "180s"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let api = PersesApi::connect(bed, "prod", &ns, "perses-0");
    let shown = api.wait_until(PROVISIONED, |a| {
        let d = checkout_display(a);
        (d.as_deref() == Some("Checkout v2"), d)
    });
    assert_eq!(shown.as_deref(), Some("Checkout v2"));
    assert_eq!(api.resources(), want, "the same resources, one changed");
    drop(api);

    // rollback: the previous revision's digest, rolled out; Perses serves v1 again.
    let (code, out, err) = run(
        &project,
        &[
            "rollback",
            "--env",
            "prod",
            "--auto-approve",
            "--timeout",
            "180s",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("rolled out"), "{out}");
    let api = PersesApi::connect(bed, "prod", &ns, "perses-0");
    let shown = api.wait_until(PROVISIONED, |a| {
        let d = checkout_display(a);
        (d.as_deref() == Some("Checkout"), d)
    });
    assert_eq!(shown.as_deref(), Some("Checkout"));
}

#[test]
fn a_pinned_digest_keeps_the_old_content_when_the_tag_moves_and_drift_says_tag_moved() {
    let bed = bed();
    let work = tempfile::tempdir().unwrap();
    let (ns, image) = chart_namespace(bed, "node-pin", work.path());
    let tree = resource_tree(work.path());
    push(&tree, &image, "v1", &[]);
    let project = work.path().join("project");
    write_env(&project, "prod", &chart_env("prod", &ns, &image, "v1", ""));
    let (code, out, err) = run(&project, &["apply", "--auto-approve", "--timeout", "180s"]);
    assert_eq!(code, 0, "{out}\n{err}");

    // Someone re-pushes v1 with other content.
    rename_checkout(&tree, "prod", "Moved");
    push(&tree, &image, "v1", &["--force"]);
    // A new pod (the old one deleted, as a node drain or a crash would) mounts the pinned
    // digest: the content of the apply, not the tag's new one.
    bed.kubectl_ok(
        "prod",
        &["-n", &ns, "delete", "pod", "perses-0", "--wait=true"],
    );
    bed.wait_pod_ready("prod", &ns, "perses-0", Duration::from_secs(120));
    let api = PersesApi::connect(bed, "prod", &ns, "perses-0");
    let d = api.wait_until(PROVISIONED, |a| {
        let d = checkout_display(a);
        (d.is_some(), d)
    });
    assert_eq!(d.as_deref(), Some("Checkout"));
    let (code, out, err) = run(&project, &["drift", "--all"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.contains("prod: tag_moved"), "{out}");
}

fn tool(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn raw_manifest(reference: &str) -> Value {
    let raw = tool(
        std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    );
    serde_json::from_str(&raw).unwrap()
}

#[test]
fn every_artifact_shape_is_mounted_and_what_containerd_cannot_mount_plan_refuses() {
    let bed = bed();
    let work = tempfile::tempdir().unwrap();
    let (ns, image) = chart_namespace(bed, "node-shapes", work.path());
    let tree = resource_tree(work.path());
    let project = work.path().join("project");
    let want = resources_in(&tree.join("prod"));

    // perses-oci's own index (linux/amd64 + linux/arm64 sharing one layer).
    rename_checkout(&tree, "prod", "shape index");
    push(&tree, &image, "index", &[]);
    let index = raw_manifest(&format!("{image}:index"));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    // A single image manifest: the amd64 image of that index alone, as skopeo copies it.
    rename_checkout(&tree, "prod", "shape single");
    push(&tree, &image, "index-2", &[]);
    tool(std::process::Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--override-os=linux",
        "--override-arch=amd64",
        &format!("docker://{image}:index-2"),
        &format!("docker://{image}:single"),
    ]));
    let single = raw_manifest(&format!("{image}:single"));
    assert_eq!(
        single["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // An image built from the seed's Dockerfile (`FROM scratch`, `COPY dashboards/ /`) by
    // buildah, as teams build it today.
    rename_checkout(&tree, "prod", "shape buildah");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY dashboards/ /\n").unwrap();
    tool(
        std::process::Command::new("cp")
            .arg("-r")
            .arg(&tree)
            .arg(ctx.join("dashboards")),
    );
    let store = work.path().join("buildah");
    let buildah = |args: &[&str]| {
        let mut c = std::process::Command::new("buildah");
        c.arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        tool(&mut c)
    };
    buildah(&[
        "bud",
        "-q",
        "-f",
        ctx.join("Dockerfile").to_str().unwrap(),
        "-t",
        "localhost/seed:t",
        ctx.to_str().unwrap(),
    ]);
    buildah(&[
        "push",
        "-q",
        "--tls-verify=false",
        "localhost/seed:t",
        &format!("docker://{image}:buildah"),
    ]);

    for (tag, display) in [
        ("index", "shape index"),
        ("single", "shape single"),
        ("buildah", "shape buildah"),
    ] {
        write_env(&project, "prod", &chart_env("prod", &ns, &image, tag, ""));
        let (code, out, err) = run(&project, &["apply", "--auto-approve", "--timeout", "180s"]);
        assert_eq!(code, 0, "{tag}:\n{out}\n{err}");
        let api = PersesApi::connect(bed, "prod", &ns, "perses-0");
        let seen = api.wait_until(PROVISIONED, |a| {
            let d = checkout_display(a);
            (d.as_deref() == Some(display), d)
        });
        assert_eq!(seen.as_deref(), Some(display), "{tag}");
        assert_eq!(api.resources(), want, "{tag}");
    }

    // An OCI artifact as `oras push` writes it by default: no image config (the empty
    // descriptor) and an artifactType. plan refuses it...
    let oras_ref = format!("{image}:oras");
    tool(
        std::process::Command::new(&bed.oras)
            .current_dir(&tree)
            .args(["push", "--plain-http", &oras_ref, "prod"]),
    );
    let m = raw_manifest(&oras_ref);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    write_env(
        &project,
        "prod",
        &chart_env("prod", &ns, &image, "oras", ""),
    );
    let (code, out, err) = run(&project, &["plan"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("application/vnd.oci.empty.v1+json")
            && said.contains("not an image config, so not an image a kubelet can mount"),
        "{said}"
    );
    // ...and so does containerd: a pod mounting it does not start.
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "oras-mount"},
        "spec": {"containers": [{"name": "c", "image": bed.busybox_image,
            "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "art", "mountPath": "/mnt"}]}],
            "volumes": [{"name": "art", "image": {"reference": oras_ref}}]}});
    bed.kubectl_apply("prod", &ns, &pod.to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (reason, message) = loop {
        let p: Value = serde_json::from_str(&bed.kubectl_ok(
            "prod",
            &["-n", &ns, "get", "pod", "oras-mount", "-o", "json"],
        ))
        .unwrap();
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        let reason = w["reason"].as_str().unwrap_or("").to_string();
        if !reason.is_empty() && reason != "ContainerCreating" {
            break (reason, w["message"].as_str().unwrap_or("").to_string());
        }
        assert!(
            p["status"]["containerStatuses"][0]["state"]["running"].is_null(),
            "containerd mounted the oras artifact: {p}"
        );
        assert!(std::time::Instant::now() < deadline, "{p}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(reason, "CreateContainerError", "{message}");
    assert!(
        message.contains("ImageVolumeMountFailed")
            && message.contains("mismatched image rootfs and manifest layers"),
        "{message}"
    );
}

/// The offline flow of the quickstart on a real node: perses-oci reads the artifact from an OCI
/// layout (`source`), the workload names the registry repository, the layout is copied there
/// with the command plan prints, and the pod mounts exactly that digest.
#[test]
fn a_layout_source_is_planned_offline_then_copied_and_mounted_from_the_registry() {
    let bed = bed();
    let work = tempfile::tempdir().unwrap();
    let (ns, image) = chart_namespace(bed, "node-source", work.path());
    let tree = resource_tree(work.path());
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    // push's paths are the command line's (relative to the working directory), not --dir's.
    let layout = format!("oci:{}/build/layout:v1", project.display());
    let (code, out, err) = run(&project, &["push", tree.to_str().unwrap(), "--to", &layout]);
    assert_eq!(code, 0, "{out}\n{err}");
    let env = chart_env("prod", &ns, &image, "v1", "source = \"oci:build/layout\"\n");
    write_env(&project, "prod", &env);

    // plan reads the layout and says what to copy where; the registry has nothing yet.
    let (code, out, err) = run(&project, &["plan", "--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let env0 = &v["environments"][0];
    let after = env0["changes"][0]["after"]["reference"].as_str().unwrap();
    assert!(after.starts_with(&format!("{image}:v1@sha256:")), "{after}");
    let copy = env0["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "copy_to_registry")
        .unwrap_or_else(|| panic!("{out}"));
    let command = copy["message"].as_str().unwrap();
    let skopeo = command
        .split("before the pods restart: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{command}"));
    assert_eq!(
        skopeo,
        format!("skopeo copy --all oci:build/layout:v1 docker://{image}:v1")
    );

    // The printed command, run as printed (plus the bed's plain-HTTP flag), then apply.
    let mut args: Vec<&str> = skopeo.split(' ').skip(1).collect();
    args.insert(1, "--dest-tls-verify=false");
    tool(
        std::process::Command::new("skopeo")
            .args(&args)
            .current_dir(&project),
    );
    let (code, out, err) = run(&project, &["apply", "--auto-approve", "--timeout", "180s"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("prod: rolled out"), "{out}");
    let api = PersesApi::connect(bed, "prod", &ns, "perses-0");
    let want = resources_in(&tree.join("prod"));
    let served = api.wait_until(PROVISIONED, |a| {
        let r = a.resources();
        (r == want, r)
    });
    assert_eq!(served, want);
    drop(api);
    let (code, out, err) = run(&project, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "a second plan changes nothing:\n{out}\n{err}");
}
