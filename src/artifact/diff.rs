//! Content diffs between two artifacts: which Perses resources are added, removed or changed,
//! keyed by (kind, project, name), with a unified diff of each changed one after normalising
//! JSON/YAML (key order, whitespace) so that a reformat is not a change. Secret and GlobalSecret
//! specs are masked. Pure: file lists in, a diff out.

use super::lint::{ResourceKey, file_resources, is_resource_file};
pub use crate::model::{ContentChange as ChangeKind, ContentDiff, ResourceChange};
use serde_json::Value;
use std::collections::BTreeMap;

/// Kinds whose `spec` is never shown.
pub const SECRET_KINDS: [&str; 2] = ["Secret", "GlobalSecret"];
const MASK: &str = "(masked)";

/// The resources of a file list, normalised (not masked: masking is for display only, so that
/// a changed secret is still a change).
fn resources(files: &[(String, Vec<u8>)]) -> BTreeMap<ResourceKey, (String, Value)> {
    let mut sorted: Vec<&(String, Vec<u8>)> =
        files.iter().filter(|(p, _)| is_resource_file(p)).collect();
    sorted.sort_by(|a, b| super::lint::cmp_paths(&a.0, &b.0));
    let mut out = BTreeMap::new();
    // Every identifiable object counts, loaded or not: a diff shows what the files say, and
    // lint says separately what Perses would skip. In reading order, so the definition Perses
    // ends up serving is the one kept.
    for (path, bytes) in sorted {
        for r in file_resources(path, bytes) {
            let key = r.key();
            let v = normalise(&r.kind, r.value);
            out.insert(key, (r.path, v));
        }
    }
    out
}

/// Drops what does not make a resource different (server-set metadata).
fn normalise(_kind: &str, mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["createdAt", "updatedAt", "version"] {
            meta.remove(k);
        }
    }
    v
}

/// What may be shown of a resource: a Secret's or GlobalSecret's spec is replaced.
fn masked(kind: &str, v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(obj) = v.as_object_mut()
        && SECRET_KINDS.contains(&kind)
        && obj.contains_key("spec")
    {
        obj.insert("spec".into(), Value::String(MASK.into()));
    }
    v
}

/// serde_json's maps are sorted (no preserve_order), so pretty printing is canonical.
fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value prints");
    s.push('\n');
    s
}

/// Diffs two file lists (paths relative to the same mount point).
pub fn content_diff(old: &[(String, Vec<u8>)], new: &[(String, Vec<u8>)]) -> ContentDiff {
    let a = resources(old);
    let b = resources(new);
    let mut out = ContentDiff::default();
    for (key, (path, before)) in &a {
        match b.get(key) {
            None => out
                .changes
                .push(change(ChangeKind::Removed, key, path, String::new())),
            Some((path_b, after)) if after != before => {
                let (x, y) = (
                    pretty(&masked(&key.kind, before)),
                    pretty(&masked(&key.kind, after)),
                );
                let diff = similar::TextDiff::from_lines(&x, &y)
                    .unified_diff()
                    .context_radius(3)
                    .header("before", "after")
                    .to_string();
                let diff = if x == y {
                    format!("(the {} spec changed; its values are masked)\n", key.kind)
                } else {
                    diff
                };
                out.changes
                    .push(change(ChangeKind::Changed, key, path_b, diff));
            }
            Some(_) => out.unchanged += 1,
        }
    }
    for (key, (path, _)) in &b {
        if !a.contains_key(key) {
            out.changes
                .push(change(ChangeKind::Added, key, path, String::new()));
        }
    }
    out.changes.sort_by(|x, y| {
        (x.kind.as_str(), &x.project, x.name.as_str()).cmp(&(
            y.kind.as_str(),
            &y.project,
            y.name.as_str(),
        ))
    });
    out
}

fn change(kind: ChangeKind, key: &ResourceKey, path: &str, diff: String) -> ResourceChange {
    ResourceChange {
        change: kind,
        kind: key.kind.clone(),
        project: key.project.clone(),
        name: key.name.clone(),
        path: path.to_string(),
        diff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, text: &str) -> (String, Vec<u8>) {
        (path.to_string(), text.as_bytes().to_vec())
    }

    const PROJECT: &str = r#"{"kind":"Project","metadata":{"name":"p"},"spec":{}}"#;

    #[test]
    fn a_reformat_is_not_a_change() {
        let a = [
            f("p.json", PROJECT),
            f(
                "d.json",
                r#"{"kind":"Dashboard","metadata":{"name":"d","project":"p"},"spec":{"a":1,"b":[1,2]}}"#,
            ),
        ];
        let b = [
            f("p.json", PROJECT),
            f(
                "d.yaml",
                "spec:\n  b: [1, 2]\n  a: 1\nmetadata:\n  project: p\n  name: d\nkind: Dashboard\n",
            ),
        ];
        let d = content_diff(&a, &b);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.unchanged, 2);
    }

    #[test]
    fn added_removed_changed_with_a_unified_diff() {
        let a = [
            f("p.json", PROJECT),
            f(
                "d1.json",
                r#"{"kind":"Dashboard","metadata":{"name":"d1","project":"p"},"spec":{"title":"old"}}"#,
            ),
            f(
                "d2.json",
                r#"{"kind":"Dashboard","metadata":{"name":"d2","project":"p"},"spec":{"x":1}}"#,
            ),
        ];
        let b = [
            f("p.json", PROJECT),
            f(
                "d1.json",
                r#"{"kind":"Dashboard","metadata":{"name":"d1","project":"p"},"spec":{"title":"new"}}"#,
            ),
            f(
                "d3.json",
                r#"{"kind":"Dashboard","metadata":{"name":"d3","project":"p"},"spec":{"x":1}}"#,
            ),
        ];
        let d = content_diff(&a, &b);
        assert_eq!(d.summary(), "1 added, 1 changed, 1 removed (1 unchanged)");
        let c = d
            .changes
            .iter()
            .find(|c| c.change == ChangeKind::Changed)
            .unwrap();
        assert_eq!(c.key(), "Dashboard p/d1");
        assert!(
            c.diff
                .contains("-    \"title\": \"old\"\n+    \"title\": \"new\"\n"),
            "{}",
            c.diff
        );
        assert!(c.diff.starts_with("--- before\n+++ after\n"), "{}", c.diff);
    }

    #[test]
    fn secrets_are_masked() {
        let a = [f(
            "s.json",
            r#"{"kind":"GlobalSecret","metadata":{"name":"s"},"spec":{"basicAuth":{"password":"hunter2"}}}"#,
        )];
        let b = [f(
            "s.json",
            r#"{"kind":"GlobalSecret","metadata":{"name":"s"},"spec":{"basicAuth":{"password":"correct-horse"}}}"#,
        )];
        let d = content_diff(&a, &b);
        // A changed secret is a change, but its values are not shown.
        assert_eq!(d.count(ChangeKind::Changed), 1);
        assert_eq!(
            d.changes[0].diff,
            "(the GlobalSecret spec changed; its values are masked)\n"
        );
        let c = content_diff(&[], &b);
        assert_eq!(c.count(ChangeKind::Added), 1);
        let all = format!("{d:?}{c:?}");
        assert!(!all.contains("hunter2") && !all.contains("correct-horse"));
    }
}
