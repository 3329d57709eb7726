//! The handovers of docs/helm.md, with real helm 3 and helm 4 and the real chart: from "the
//! chart renders the volume from `ociArtifacts`" to "perses-oci owns it". The pod template is
//! read after every step and compared with what that step may change, so a moment without the
//! artifact, a revert or a deletion fails the test; then the later `helm upgrade`s a team runs
//! (values changed, chart version bumped, `helm rollback`) must leave the artifact alone.

use super::node::{chart_env, push, resource_tree, run, write_env};
use crate::support::{self, Bed, bed};
use serde_json::Value;
use std::path::{Path, PathBuf};

const OLD_PATH: &str = "/etc/perses/provisioning";
const NEW_PATH: &str = "/etc/perses/provisioning-oci";

/// The values the chart runs with on the bed, plus `extra`.
fn values(bed: &Bed, extra: &[String]) -> Vec<String> {
    let mut v = bed.chart_values();
    v.extend_from_slice(extra);
    v
}

fn oci_artifacts(reference: &str) -> Vec<String> {
    vec![
        "ociArtifacts.name=perses-resources".into(),
        format!("ociArtifacts.image.reference={reference}"),
        "ociArtifacts.image.pullPolicy=IfNotPresent".into(),
        format!("ociArtifacts.mountPath={OLD_PATH}"),
        "ociArtifacts.subPath=prod".into(),
    ]
}

/// `helm install` or `helm upgrade` of `chart` with exactly `values` (no `--reuse-values`: each
/// step says all it sets, as a values file in Git would). No `--wait`: what is compared is the
/// workload object.
fn helm(bed: &Bed, major: u8, home: &Path, verb: &str, ns: &str, chart: &Path, values: &[String]) {
    helm_with(bed, major, home, &[verb], ns, chart, values)
}

/// `helm VERB...` where `verb` may carry flags (`["upgrade", "--server-side=true"]`).
fn helm_with(
    bed: &Bed,
    major: u8,
    home: &Path,
    verb: &[&str],
    ns: &str,
    chart: &Path,
    values: &[String],
) {
    let mut cmd = bed.helm(major, "prod", home);
    cmd.arg(verb[0])
        .arg("perses")
        .arg(chart)
        .args(&verb[1..])
        .args(["--namespace", ns]);
    for v in values {
        cmd.arg("--set").arg(v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "helm {major} {verb:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rollback(bed: &Bed, major: u8, home: &Path, ns: &str) {
    let out = bed
        .helm(major, "prod", home)
        .args(["rollback", "perses", "--namespace", ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {major} rollback: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pod template as stored.
fn template(bed: &Bed, ns: &str) -> Value {
    let out = bed.kubectl_ok(
        "prod",
        &["-n", ns, "get", "statefulset", "perses", "-o", "json"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    v["spec"]["template"].clone()
}

/// The template without the chart's `checksum/config` annotation, which changes with every
/// config value and is not what is compared.
fn without_checksum(mut t: Value) -> Value {
    if let Some(a) = t["metadata"]["annotations"].as_object_mut() {
        a.remove("checksum/config");
    }
    t
}

fn volumes(t: &mut Value) -> &mut Vec<Value> {
    t["spec"]["volumes"].as_array_mut().unwrap()
}

fn perses_mounts(t: &mut Value) -> &mut Vec<Value> {
    t["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "perses")
        .unwrap()["volumeMounts"]
        .as_array_mut()
        .unwrap()
}

fn volume<'a>(t: &'a Value, name: &str) -> Option<&'a Value> {
    t["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
}

/// `t` with the image volume `name` (and the perses container's mount of it) taken out.
fn without_volume(mut t: Value, name: &str) -> Value {
    volumes(&mut t).retain(|v| v["name"] != name);
    perses_mounts(&mut t).retain(|m| m["name"] != name);
    t
}

fn set_reference(mut t: Value, name: &str, reference: &str) -> Value {
    let v = volumes(&mut t)
        .iter_mut()
        .find(|v| v["name"] == name)
        .unwrap();
    v["image"]["reference"] = Value::String(reference.into());
    t
}

/// A copy of the real chart with its version bumped, as a chart release does.
fn bumped_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("chart-bumped");
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(support::node::chart_dir())
        .arg(&chart)
        .status()
        .unwrap();
    assert!(st.success());
    let path = chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let bumped: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                "version: 99.0.0".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(bumped, text);
    std::fs::write(&path, bumped + "\n").unwrap();
    chart
}

fn plan_json(project: &Path) -> Value {
    let (code, out, err) = run(project, &["plan", "--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    serde_json::from_str(&out).unwrap()
}

fn check_codes(v: &Value) -> Vec<String> {
    v["environments"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect()
}

fn no_changes_and_in_sync(project: &Path) {
    let (code, out, err) = run(project, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "plan after the handover:\n{out}\n{err}");
    let (code, out, err) = run(project, &["drift"]);
    assert_eq!(code, 0, "drift after the handover:\n{out}\n{err}");
    assert!(out.contains("in_sync"), "{out}");
}

struct Setup {
    work: tempfile::TempDir,
    ns: String,
    image: String,
    project: PathBuf,
}

fn setup(major: u8) -> Setup {
    let bed = bed();
    let work = tempfile::tempdir().unwrap();
    let ns = support::unique_ns(&format!("handover{major}"));
    bed.kubectl_ok("prod", &["create", "namespace", &ns]);
    let image = format!("{}/{ns}/perses-resources", bed.registry);
    let tree = resource_tree(work.path());
    push(&tree, &image, "v1", &[]);
    super::node::rename_checkout(&tree, "prod", "Checkout v2");
    push(&tree, &image, "v2", &[]);
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    Setup {
        work,
        ns,
        image,
        project,
    }
}

fn import(s: &Setup) {
    super::node::import_prod(&s.project, &s.ns);
}

/// Helm 4 (server-side apply): adopt the chart's values (perses-oci co-owns them, nothing
/// changes), then drop `ociArtifacts` from the values: the volume stays, owned by perses-oci.
#[test]
fn helm_4_handover_keeps_the_pod_template_and_later_upgrades_leave_the_artifact() {
    let bed = bed();
    let s = setup(4);
    let home = s.work.path();
    let chart = support::node::chart_dir();
    let v1 = format!("{}:v1", s.image);
    helm(
        bed,
        4,
        home,
        "install",
        &s.ns,
        &chart,
        &values(bed, &oci_artifacts(&v1)),
    );
    let t0 = template(bed, &s.ns);
    assert_eq!(
        volume(&t0, "perses-resources").unwrap()["image"]["reference"],
        v1
    );

    // 1. import; plan shows an adopt (no value changes) and what it prepares.
    import(&s);
    let p = plan_json(&s.project);
    let change = &p["environments"][0]["changes"][0];
    assert_eq!(change["action"], "adopt", "{p}");
    assert_eq!(change["before"], change["after"], "{p}");
    let checks = p["environments"][0]["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c["code"] == "helm_shared"
            && c["message"]
                .as_str()
                .unwrap()
                .contains("leaves the volume and its mount to perses-oci")),
        "{p}"
    );
    // ... and apply takes the share without --force-conflicts and without a rollout.
    let (code, out, err) = run(&s.project, &["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("no rollout"), "{out}");
    let t1 = template(bed, &s.ns);
    assert_eq!(t1, t0, "the adopt changed the pod template");

    // 2. The values drop ociArtifacts (helm 4 upgrades a release it installed server-side).
    helm(bed, 4, home, "upgrade", &s.ns, &chart, &values(bed, &[]));
    let t2 = template(bed, &s.ns);
    assert_eq!(t2, t1, "dropping ociArtifacts changed the pod template");
    no_changes_and_in_sync(&s.project);

    // 3. From now on perses-oci moves the tag, without --force-conflicts: helm owns none of it.
    let env = std::fs::read_to_string(s.project.join("environments/prod.toml")).unwrap();
    assert!(env.contains("tag = \"v1\""), "{env}");
    write_env(
        &s.project,
        "prod",
        &env.replace("tag = \"v1\"", "tag = \"v2\""),
    );
    let p = plan_json(&s.project);
    assert!(
        !check_codes(&p)
            .iter()
            .any(|c| c.starts_with("helm_upgrade")),
        "{p}"
    );
    let (code, out, err) = run(&s.project, &["apply", "--auto-approve", "--no-wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let t3 = template(bed, &s.ns);
    let v2 = format!("{}:v2", s.image);
    assert_eq!(t3, set_reference(t2, "perses-resources", &v2));

    later_upgrades(bed, 4, &s, &values(bed, &[]), &t3);
}

/// A Helm 3 release moved to server-side apply first (one `helm upgrade --server-side=true`
/// by Helm 4 on unchanged values), then handed over as a Helm 4 one, keeping the volume's name.
#[test]
fn helm_3_release_migrated_to_server_side_is_handed_over_like_helm_4() {
    let bed = bed();
    let s = setup(34);
    let home = s.work.path();
    let chart = support::node::chart_dir();
    let v1 = format!("{}:v1", s.image);
    let chart_values = values(bed, &oci_artifacts(&v1));
    helm(bed, 3, home, "install", &s.ns, &chart, &chart_values);
    let t0 = template(bed, &s.ns);
    import(&s);
    let p = plan_json(&s.project);
    assert!(
        p["environments"][0]["checks"]
            .to_string()
            .contains("three-way merge"),
        "{p}"
    );

    // 1. Helm 4 takes the release server-side on the same values: nothing changes.
    helm_with(
        bed,
        4,
        home,
        &["upgrade", "--server-side=true"],
        &s.ns,
        &chart,
        &chart_values,
    );
    assert_eq!(template(bed, &s.ns), t0);
    // plan now sees Helm's server-side entry, and the adopt is the Helm 4 first step.
    let p = plan_json(&s.project);
    assert_eq!(p["environments"][0]["changes"][0]["action"], "adopt", "{p}");
    assert!(
        p["environments"][0]["checks"]
            .to_string()
            .contains("leaves the volume and its mount to perses-oci"),
        "{p}"
    );
    let (code, out, err) = run(&s.project, &["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(template(bed, &s.ns), t0);

    // 2. Helm 4 (`--server-side=auto`, now server-side for this release) drops ociArtifacts.
    helm(bed, 4, home, "upgrade", &s.ns, &chart, &values(bed, &[]));
    assert_eq!(
        template(bed, &s.ns),
        t0,
        "dropping ociArtifacts changed the pod template"
    );
    no_changes_and_in_sync(&s.project);

    let env = std::fs::read_to_string(s.project.join("environments/prod.toml")).unwrap();
    write_env(
        &s.project,
        "prod",
        &env.replace("tag = \"v1\"", "tag = \"v2\""),
    );
    let (code, out, err) = run(&s.project, &["apply", "--auto-approve", "--no-wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let t3 = template(bed, &s.ns);
    assert_eq!(
        t3,
        set_reference(t0, "perses-resources", &format!("{}:v2", s.image))
    );
    later_upgrades(bed, 4, &s, &values(bed, &[]), &t3);
}

/// Helm 3 (three-way merge): a list entry the old manifest had and the new one lacks is
/// deleted whoever owns it, so the artifact moves to a volume name and mount path the chart
/// never rendered: Perses reads both folders for one step, then only perses-oci's.
#[test]
fn helm_3_handover_under_a_new_name_never_lacks_the_artifact_and_later_upgrades_leave_it() {
    let bed = bed();
    let s = setup(3);
    let home = s.work.path();
    let chart = support::node::chart_dir();
    let v1 = format!("{}:v1", s.image);
    helm(
        bed,
        3,
        home,
        "install",
        &s.ns,
        &chart,
        &values(bed, &oci_artifacts(&v1)),
    );
    let t0 = template(bed, &s.ns);

    // Adopting the chart's own volume is no handover under helm 3, and plan says why.
    import(&s);
    let p = plan_json(&s.project);
    assert_eq!(p["environments"][0]["changes"][0]["action"], "adopt", "{p}");
    assert!(
        p["environments"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "helm_shared"
                && c["message"]
                    .as_str()
                    .unwrap()
                    .contains("still deletes the volume and its mount")),
        "{p}"
    );

    // The environment file names perses-oci's own volume; Perses does not read its folder
    // yet, and plan refuses it.
    let extra = "";
    let env = chart_env("prod", &s.ns, &s.image, "v1", extra)
        .replace(
            "name = \"perses-resources\"",
            "name = \"perses-resources-oci\"",
        )
        .replace(
            &format!("mount_path = \"{OLD_PATH}\""),
            &format!("mount_path = \"{NEW_PATH}\""),
        );
    write_env(&s.project, "prod", &env);
    let (code, out, _) = run(&s.project, &["plan", "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("provisioning_folder"), "{out}");

    // 1. Perses reads both folders; the chart still renders its volume.
    let both = format!("config.provisioning.folders={{{OLD_PATH},{NEW_PATH}}}");
    let mut with_both = oci_artifacts(&v1);
    with_both.push(both);
    helm(
        bed,
        3,
        home,
        "upgrade",
        &s.ns,
        &chart,
        &values(bed, &with_both),
    );
    let t1 = template(bed, &s.ns);
    assert_eq!(without_checksum(t1.clone()), without_checksum(t0));

    // 2. perses-oci adds its volume beside the chart's: plan warns only about --force.
    let p = plan_json(&s.project);
    let change = &p["environments"][0]["changes"][0];
    assert_eq!(change["action"], "add", "{p}");
    let codes = check_codes(&p);
    assert!(codes.contains(&"helm_release".to_string()), "{p}");
    assert!(!codes.iter().any(|c| c.starts_with("helm_upgrade")), "{p}");
    let (code, out, err) = run(&s.project, &["apply", "--auto-approve", "--no-wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let t2 = template(bed, &s.ns);
    let ours = volume(&t2, "perses-resources-oci")
        .expect("perses-oci's volume")
        .clone();
    assert!(
        ours["image"]["reference"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{v1}@sha256:")),
        "{ours}"
    );
    assert_eq!(without_volume(t2.clone(), "perses-resources-oci"), t1);

    // 3. The values drop ociArtifacts and the old folder in one upgrade: the three-way merge
    // deletes the chart's volume and mount, and keeps perses-oci's.
    let only_new = format!("config.provisioning.folders={{{NEW_PATH}}}");
    let after = values(bed, std::slice::from_ref(&only_new));
    helm(bed, 3, home, "upgrade", &s.ns, &chart, &after);
    let t3 = template(bed, &s.ns);
    assert_eq!(
        without_checksum(t3.clone()),
        without_checksum(without_volume(t2, "perses-resources"))
    );
    no_changes_and_in_sync(&s.project);

    // perses-oci moves the tag; helm owns nothing of it.
    write_env(
        &s.project,
        "prod",
        &env.replace("tag = \"v1\"", "tag = \"v2\""),
    );
    let (code, out, err) = run(&s.project, &["apply", "--auto-approve", "--no-wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let t4 = template(bed, &s.ns);
    let reference = volume(&t4, "perses-resources-oci").unwrap()["image"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reference.starts_with(&format!("{}:v2@sha256:", s.image)),
        "{reference}"
    );
    assert_eq!(t4, set_reference(t3, "perses-resources-oci", &reference));

    later_upgrades(bed, 3, &s, &after, &t4);
}

/// What a team runs on the release afterwards: a values change, a chart version bump, and a
/// rollback to the revision before the bump. Each may change the config checksum, nothing else.
fn later_upgrades(bed: &Bed, major: u8, s: &Setup, base: &[String], owned: &Value) {
    let home = s.work.path();
    let want = without_checksum(owned.clone());
    let mut changed = base.to_vec();
    changed.push("config.provisioning.interval=5m".into());
    helm(
        bed,
        major,
        home,
        "upgrade",
        &s.ns,
        &support::node::chart_dir(),
        &changed,
    );
    assert_eq!(
        without_checksum(template(bed, &s.ns)),
        want,
        "helm {major} upgrade with changed values"
    );
    let bumped = bumped_chart(home);
    helm(bed, major, home, "upgrade", &s.ns, &bumped, &changed);
    assert_eq!(
        without_checksum(template(bed, &s.ns)),
        want,
        "helm {major} upgrade to a bumped chart"
    );
    rollback(bed, major, home, &s.ns);
    assert_eq!(
        without_checksum(template(bed, &s.ns)),
        want,
        "helm {major} rollback"
    );
    no_changes_and_in_sync(&s.project);
    bed.kubectl_ok("prod", &["delete", "namespace", &s.ns, "--wait=false"]);
}
