//! The real Perses chart installed by real helm 3 and helm 4 with `ociArtifacts`, then taken
//! over by perses-oci: `import` and `plan` say what the next `helm upgrade` will do before
//! anything happens, and the next `helm upgrade` does exactly that (helm 3 silently puts the
//! chart's reference back; helm 4 fails with a conflict naming perses-oci).

use super::node::{chart_env, import_prod, push, resource_tree, run, write_env};
use crate::support::{self, Bed, bed};
use std::path::Path;

/// Installs the chart with the artifact as the seed's workflow does (`--set ociArtifacts...`);
/// no `--wait`: what is checked here is the workload object, not its pods.
fn install(bed: &Bed, major: u8, ns: &str, home: &Path, reference: &str) {
    let mut cmd = bed.helm(major, "prod", home);
    cmd.args(["install", "perses"])
        .arg(support::node::chart_dir())
        .args(["--namespace", ns]);
    let mut values = bed.chart_values();
    values.extend([
        "ociArtifacts.name=perses-resources".to_string(),
        format!("ociArtifacts.image.reference={reference}"),
        "ociArtifacts.image.pullPolicy=IfNotPresent".into(),
        "ociArtifacts.mountPath=/etc/perses/provisioning".into(),
        "ociArtifacts.subPath=prod".into(),
    ]);
    for v in values {
        cmd.arg("--set").arg(v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "helm {major} install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn live_reference(bed: &Bed, ns: &str) -> String {
    bed.kubectl_ok(
        "prod",
        &[
            "-n",
            ns,
            "get",
            "statefulset",
            "perses",
            "-o",
            "jsonpath={.spec.template.spec.volumes[?(@.name==\"perses-resources\")].image.reference}",
        ],
    )
}

fn takeover(major: u8) {
    let bed = bed();
    let work = tempfile::tempdir().unwrap();
    let ns = support::unique_ns(&format!("helm{major}"));
    bed.kubectl_ok("prod", &["create", "namespace", &ns]);
    let image = format!("{}/{ns}/perses-resources", bed.registry);
    let tree = resource_tree(work.path());
    push(&tree, &image, "v1", &[]);
    super::node::rename_checkout(&tree, "prod", "Checkout v2");
    push(&tree, &image, "v2", &[]);
    install(bed, major, &ns, work.path(), &format!("{image}:v1"));
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();

    // import says it before the first apply.
    let (_, err) = import_prod(&project, &ns);
    let how = if major == 3 {
        "which Helm writes with a three-way merge"
    } else {
        "which Helm 4 writes with server-side apply"
    };
    assert!(
        err.contains(
            "warning: artifact \"perses-resources\": statefulset/perses is Helm release \"perses\""
        ) && err.contains(how),
        "{err}"
    );

    // plan says what the next helm upgrade will do, before apply.
    write_env(&project, "prod", &chart_env("prod", &ns, &image, "v2", ""));
    let (code, out, err) = run(&project, &["plan", "--format", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let codes: Vec<&str> = v["environments"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    let want = if major == 3 {
        "helm_upgrade_reverts"
    } else {
        "helm_upgrade_conflicts"
    };
    assert!(codes.contains(&want), "{codes:?}\n{out}");
    let (_, human, _) = run(&project, &["plan"]);
    let predicted = if major == 3 {
        "silently puts the chart's value back"
    } else {
        "fails with a conflict naming \"perses-oci\""
    };
    assert!(human.contains(predicted), "{human}");

    // apply takes the field over, as the warning allowed.
    let (code, out, err) = run(
        &project,
        &["apply", "--auto-approve", "--no-wait", "--force-conflicts"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(live_reference(bed, &ns).starts_with(&format!("{image}:v2@sha256:")));

    // An unrelated helm upgrade does what plan said.
    let mut up = bed.helm(major, "prod", work.path());
    up.args(["upgrade", "perses"])
        .arg(support::node::chart_dir())
        .args([
            "--namespace",
            &ns,
            "--reuse-values",
            "--set",
            "config.provisioning.interval=5m",
        ]);
    let out = up.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if major == 3 {
        assert!(out.status.success(), "{stderr}");
        assert_eq!(
            live_reference(bed, &ns),
            format!("{image}:v1"),
            "helm 3 reverted"
        );
        let (code, out, _) = run(&project, &["drift"]);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains("cluster_edited") && out.contains("helm"),
            "{out}"
        );
        // install was revision 1, the upgrade revision 2.
        assert!(
            out.contains(&format!("(Helm release \"perses\" in {ns}, revision 2; missed handover step: the release's values still render `ociArtifacts`")),
            "{out}"
        );
    } else {
        assert!(!out.status.success(), "helm 4 upgrade should fail");
        assert!(
            stderr.contains("conflict") && stderr.contains("perses-oci"),
            "{stderr}"
        );
        assert!(live_reference(bed, &ns).starts_with(&format!("{image}:v2@sha256:")));
    }
    bed.kubectl_ok("prod", &["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
fn helm_3_takeover_is_predicted_then_reverted_by_the_next_upgrade() {
    takeover(3);
}

#[test]
fn helm_4_takeover_is_predicted_then_the_next_upgrade_conflicts() {
    takeover(4);
}
