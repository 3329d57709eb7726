//! Manifest files as targets (GitOps): plan reads the workload from the file, apply rewrites
//! only the managed lines, a second apply changes nothing, and drift says `pending` while the
//! file lags the environment file. Artifacts come from a local OCI layout: no cluster, no
//! registry.

use assert_cmd::Command;
use std::path::Path;

/// Comments everywhere, flow mappings, odd quoting and indentation, three documents.
const MANIFEST: &str = r#"# kept in Git; synced by Argo CD
apiVersion: v1
kind: ConfigMap
metadata: {name: perses, namespace: monitoring}
data:
  config.yaml: |
    provisioning:
      folders: ["/etc/perses/provisioning"]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: perses      # the release
  namespace: monitoring
spec:
  replicas: 1
  template:
    metadata: {labels: {app: perses}}
    spec:
      containers:
      - name: perses
        image: 'persesdev/perses:v0.54.0'
        args: ["--config=/etc/perses/config/config.yaml"]
        volumeMounts:
          - {name: config, mountPath: /etc/perses/config}   # flow style entries stay as they are
      - name: sidecar   # not ours
        image: busybox
      volumes:
      - name: config
        configMap: {name: perses}
---
apiVersion: v1
kind: Service
metadata: {name: perses}
"#;

fn bin() -> Command {
    let mut c = Command::cargo_bin("perses-oci").unwrap();
    c.env("NO_COLOR", "1").env("SOURCE_DATE_EPOCH", "0");
    c
}

fn setup(dir: &Path, tag: &str) {
    std::fs::create_dir_all(dir.join("environments")).unwrap();
    std::fs::create_dir_all(dir.join("deploy")).unwrap();
    std::fs::create_dir_all(dir.join("resources/prod")).unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/perses/dev-data");
    for e in std::fs::read_dir(corpus).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("ephemeraldashboard.json") {
            std::fs::copy(&p, dir.join("resources/prod").join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.join("environments/prod.toml"),
        format!("[target]\nmanifest = \"deploy/perses.yaml\"\n\n[artifact]\nname = \"perses-resources\"\nimage = \"oci:build/layout\"\ntag = \"{tag}\"\nmount_path = \"/etc/perses/provisioning\"\nsub_path = \"prod\"\n"),
    )
    .unwrap();
}

fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let d = similar::TextDiff::from_lines(before, after);
    let (mut add, mut del) = (vec![], vec![]);
    for c in d.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Insert => add.push(c.value().to_string()),
            similar::ChangeTag::Delete => del.push(c.value().to_string()),
            _ => {}
        }
    }
    (add, del)
}

#[test]
fn apply_changes_only_managed_lines_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, "v1");
    std::fs::write(dir.join("deploy/perses.yaml"), MANIFEST).unwrap();
    let out = bin()
        .current_dir(dir)
        .args(["push", "resources", "--to", "oci:build/layout:v1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // skopeo reads the layout perses-oci wrote (a peer, not our own reader).
    if let Ok(s) = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "oci:build/layout:v1"])
        .current_dir(dir)
        .output()
    {
        assert!(
            s.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&s.stderr)
        );
        assert!(
            String::from_utf8_lossy(&s.stdout).contains("application/vnd.oci.image.index.v1+json")
        );
    }

    // drift: the file lags the environment file.
    let d = bin()
        .current_dir(dir)
        .args(["drift", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        d.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&d.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(v["environments"][0]["class"], "pending", "{v}");

    let a = bin()
        .current_dir(dir)
        .args(["apply", "--auto-approve"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&a.stdout);
    assert!(
        a.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let after = std::fs::read_to_string(dir.join("deploy/perses.yaml")).unwrap();
    let (add, del) = changed_lines(MANIFEST, &after);
    assert!(del.is_empty(), "{del:?}");
    let digest = {
        let i = after.find("@sha256:").unwrap();
        after[i + 1..i + 72].to_string()
    };
    assert_eq!(
        add,
        vec![
            "          - name: perses-resources\n".to_string(),
            "            mountPath: /etc/perses/provisioning\n".into(),
            "            subPath: prod\n".into(),
            "      - name: perses-resources\n".into(),
            "        image:\n".into(),
            format!("          reference: oci:build/layout:v1@{digest}\n"),
        ]
    );

    // Second apply: nothing to do, not a byte changed.
    let a = bin()
        .current_dir(dir)
        .args(["apply", "--auto-approve"])
        .output()
        .unwrap();
    assert!(a.status.success());
    assert!(String::from_utf8_lossy(&a.stdout).contains("No changes."));
    assert_eq!(
        std::fs::read_to_string(dir.join("deploy/perses.yaml")).unwrap(),
        after
    );
    let d = bin()
        .current_dir(dir)
        .args(["drift", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        d.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&d.stdout)
    );

    // A new tag changes exactly the reference line.
    std::fs::write(
        dir.join("resources/prod/extra.json"),
        r#"{"kind":"Folder","metadata":{"name":"extra","project":"perses"},"spec":{}}"#,
    )
    .unwrap();
    let out = bin()
        .current_dir(dir)
        .args(["push", "resources", "--to", "oci:build/layout:v2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    setup(dir, "v2");
    let p = bin().current_dir(dir).args(["plan"]).output().unwrap();
    let plan = String::from_utf8_lossy(&p.stdout);
    assert!(
        plan.contains("+ Folder perses/extra (added, extra.json)"),
        "{plan}"
    );
    let a = bin()
        .current_dir(dir)
        .args(["apply", "--auto-approve"])
        .output()
        .unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let v2 = std::fs::read_to_string(dir.join("deploy/perses.yaml")).unwrap();
    let (add, del) = changed_lines(&after, &v2);
    assert_eq!(
        del,
        vec![format!(
            "          reference: oci:build/layout:v1@{digest}\n"
        )]
    );
    assert_eq!(add.len(), 1);
    assert!(
        add[0].starts_with("          reference: oci:build/layout:v2@sha256:"),
        "{add:?}"
    );
}

#[test]
fn a_file_without_the_workload_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, "v1");
    std::fs::write(
        dir.join("deploy/perses.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n",
    )
    .unwrap();
    let out = bin()
        .current_dir(dir)
        .args(["push", "resources", "--to", "oci:build/layout:v1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let p = bin().current_dir(dir).args(["plan"]).output().unwrap();
    assert_eq!(p.status.code(), Some(1));
    let text = String::from_utf8_lossy(&p.stdout);
    assert!(
        text.contains("deploy/perses.yaml: no StatefulSet or Deployment among its documents"),
        "{text}"
    );
}
