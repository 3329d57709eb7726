//! Tests of the manifest editor: exact bytes before and after.

use super::*;
use crate::model::ArtifactState;

const FILE: &str = r#"# Perses, as rendered from the chart and kept in Git.
apiVersion: v1
kind: ConfigMap
metadata: {name: perses}
data:
  config.yaml: |
    provisioning:
      folders: [/etc/perses/provisioning]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: perses   # the release
  namespace: monitoring
spec:
  replicas: 1
  template:
    metadata:
      labels: {app: perses}
    spec:
      containers:
      - name: perses
        image: "persesdev/perses:v0.54.0"
        volumeMounts:
          - name: config
            mountPath: /etc/perses/config   # config
          # the artifact:
          - name: perses-resources
            mountPath: '/etc/perses/provisioning'
      - name: sidecar
        image: busybox
      volumes:
      - name: config
        configMap:
          name: perses
      - name: perses-resources    # managed by perses-oci
        image:
          reference: "reg.example/perses:v1"   # bumped by CI
          pullPolicy: IfNotPresent
---
apiVersion: v1
kind: Service
metadata:
  name: perses
"#;

fn state(reference: &str, pp: Option<&str>, mp: &str, sp: Option<&str>) -> ArtifactState {
    ArtifactState {
        reference: reference.into(),
        pull_policy: pp.map(str::to_string),
        mount_path: Some(mp.into()),
        sub_path: sp.map(str::to_string),
    }
}

fn edit(text: &str, edits: &[Edit]) -> Result<String, ManifestError> {
    let docs = documents("f.yaml", text)?;
    let doc = find_workload("f.yaml", &docs, None)?.clone();
    apply_edits("f.yaml", text, &doc, "perses", edits)
}

/// The lines of `after` that are not in `before`, and the reverse (multiset diff).
fn changed(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let d = similar::TextDiff::from_lines(before, after);
    let mut added = vec![];
    let mut removed = vec![];
    for c in d.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Insert => added.push(c.value().to_string()),
            similar::ChangeTag::Delete => removed.push(c.value().to_string()),
            _ => {}
        }
    }
    (added, removed)
}

#[test]
fn reads_the_workload_among_documents() {
    let docs = documents("f.yaml", FILE).unwrap();
    assert_eq!(docs.len(), 3);
    let w = find_workload("f.yaml", &docs, None).unwrap();
    assert_eq!(w.value["metadata"]["name"], "perses");
    assert!(find_config_map(&docs, "perses").is_some());
    let missing = WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: "x".into(),
    };
    let e = find_workload("f.yaml", &docs, Some(&missing)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "f.yaml: no deployment/x among its documents (found: statefulset/perses)"
    );
}

#[test]
fn update_changes_only_the_value_and_keeps_quotes_and_comments() {
    let s = state(
        "reg.example/perses:v2@sha256:ab",
        Some("IfNotPresent"),
        "/etc/perses/provisioning",
        None,
    );
    let out = edit(FILE, &[("perses-resources".into(), Some(s))]).unwrap();
    let (added, removed) = changed(FILE, &out);
    assert_eq!(
        removed,
        vec!["          reference: \"reg.example/perses:v1\"   # bumped by CI\n"]
    );
    assert_eq!(
        added,
        vec!["          reference: \"reg.example/perses:v2@sha256:ab\"   # bumped by CI\n"]
    );
    // Idempotent: applying the same state again changes nothing.
    let s = state(
        "reg.example/perses:v2@sha256:ab",
        Some("IfNotPresent"),
        "/etc/perses/provisioning",
        None,
    );
    assert_eq!(
        edit(&out, &[("perses-resources".into(), Some(s))]).unwrap(),
        out
    );
}

#[test]
fn sub_path_and_pull_policy_are_inserted_and_deleted_in_place() {
    let s = state(
        "reg.example/perses:v1",
        None,
        "/etc/perses/provisioning",
        Some("prod"),
    );
    let out = edit(FILE, &[("perses-resources".into(), Some(s))]).unwrap();
    let (added, removed) = changed(FILE, &out);
    assert_eq!(removed, vec!["          pullPolicy: IfNotPresent\n"]);
    assert_eq!(added, vec!["            subPath: prod\n"]);
    // What we wrote parses back to the state we asked for.
    let docs = documents("f.yaml", &out).unwrap();
    let w = find_workload("f.yaml", &docs, None).unwrap();
    let target = crate::model::Target {
        context: None,
        namespace: "monitoring".into(),
        workload: WorkloadRef {
            kind: WorkloadKind::StatefulSet,
            name: "perses".into(),
        },
        container: "perses".into(),
        manifest: None,
    };
    let ex = crate::cluster::observe::extract(&w.value, &target).unwrap();
    let a = ex
        .artifacts
        .iter()
        .find(|a| a.name == "perses-resources")
        .unwrap();
    assert_eq!(a.state.sub_path.as_deref(), Some("prod"));
    assert_eq!(a.state.pull_policy, None);
}

#[test]
fn add_and_remove_whole_entries() {
    let s = state(
        "reg.example/extra:v1",
        Some("Always"),
        "/etc/perses/provisioning/extra",
        None,
    );
    let out = edit(FILE, &[("extra".into(), Some(s))]).unwrap();
    let (added, removed) = changed(FILE, &out);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(
        added,
        vec![
            "          - name: extra\n",
            "            mountPath: /etc/perses/provisioning/extra\n",
            "      - name: extra\n",
            "        image:\n",
            "          reference: reg.example/extra:v1\n",
            "          pullPolicy: Always\n",
        ]
    );
    let back = edit(&out, &[("extra".into(), None)]).unwrap();
    assert_eq!(back, FILE);
    let gone = edit(FILE, &[("perses-resources".into(), None)]).unwrap();
    let (added, removed) = changed(FILE, &gone);
    assert!(added.is_empty());
    assert_eq!(removed.len(), 6, "{removed:?}");
    assert!(
        gone.contains("# the artifact:"),
        "comments between entries stay"
    );
}

#[test]
fn flow_style_is_refused_clearly() {
    let text = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: perses}\nspec:\n  template:\n    spec:\n      containers: [{name: perses}]\n      volumes: []\n";
    let s = state("r:v1", None, "/p", None);
    let e = edit(text, &[("a".into(), Some(s))]).unwrap_err();
    assert!(matches!(e, ManifestError::FlowStyle { .. }), "{e}");
}

#[test]
fn scalars_are_quoted_only_when_needed() {
    assert_eq!(
        scalar("reg:5000/x:v1@sha256:ab", None),
        "reg:5000/x:v1@sha256:ab"
    );
    assert_eq!(scalar("true", None), "\"true\"");
    assert_eq!(scalar("1.0", None), "\"1.0\"");
    assert_eq!(scalar("a: b", None), "\"a: b\"");
    assert_eq!(scalar("x", Some("'y'")), "'x'");
}
