//! Content diffs between two artifacts: which Perses resources are added, removed or changed,
//! keyed by (kind, project, name), with a unified diff of each changed one after normalising
//! JSON/YAML (key order, whitespace) so that a reformat is not a change. Secret and GlobalSecret
//! specs are masked. `content_diff` takes two file lists in memory; `scanned_diff` takes two
//! `Scan`s and reads one file at a time, parsing only what it needs.

use super::scan::{Scan, ScanError};
pub use crate::model::{ContentChange as ChangeKind, ContentDiff, DiffFormat, ResourceChange};
use crate::perses::{Resource, ResourceKey, cmp_paths, file_resources, is_resource_file};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Kinds whose `spec` is never shown.
pub const SECRET_KINDS: [&str; 2] = ["Secret", "GlobalSecret"];
const MASK: &str = "(masked)";

/// The resources of a file list, normalised (not masked: masking is for display only, so that
/// a changed secret is still a change).
fn resources(files: &[(String, Vec<u8>)]) -> BTreeMap<ResourceKey, (String, Value)> {
    let mut sorted: Vec<&(String, Vec<u8>)> =
        files.iter().filter(|(p, _)| is_resource_file(p)).collect();
    sorted.sort_by(|a, b| crate::perses::cmp_paths(&a.0, &b.0));
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

/// serde_json's maps are sorted (no preserve_order), so pretty printing is canonical, in
/// JSON and in YAML (block style, strings quoted where YAML would read them otherwise).
fn pretty(v: &Value, format: DiffFormat) -> String {
    match format {
        DiffFormat::Json => {
            let mut s = serde_json::to_string_pretty(v).expect("a JSON value prints");
            s.push('\n');
            s
        }
        DiffFormat::Yaml => {
            let mut s = serde_saphyr::to_string(v).expect("a JSON value prints as YAML");
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
    }
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
                out.changes.push(changed(key, path_b, before, after));
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
    sort(&mut out);
    out
}

fn sort(out: &mut ContentDiff) {
    out.changes.sort_by(|x, y| {
        (x.kind.as_str(), &x.project, x.name.as_str()).cmp(&(
            y.kind.as_str(),
            &y.project,
            y.name.as_str(),
        ))
    });
}

/// A changed resource, with the unified diff of what may be shown of it.
fn changed(key: &ResourceKey, path_b: &str, before: &Value, after: &Value) -> ResourceChange {
    let format = DiffFormat::of_path(path_b);
    let (x, y) = (
        pretty(&masked(&key.kind, before), format),
        pretty(&masked(&key.kind, after), format),
    );
    let diff = if x == y {
        format!("(the {} spec changed; its values are masked)\n", key.kind)
    } else {
        similar::TextDiff::from_lines(&x, &y)
            .unified_diff()
            .context_radius(3)
            .header("before", "after")
            .to_string()
    };
    change(ChangeKind::Changed, key, path_b, diff)
}

/// Above this many bytes of differing files (both sides together), their resources' values are
/// not kept from the first parse: the files of changed resources are read again instead, so
/// that two unrelated trees do not end up in memory as JSON values.
pub const KEEP_VALUES_BYTES: u64 = 8 << 20;

/// `content_diff` of two scanned artifacts, with the same result. A file with the same bytes
/// at the same path on both sides defines the same resources on both: it is parsed once (on
/// the `b` side) for its keys only, so that the unchanged ones are counted and a resource
/// defined both there and in a differing file is resolved as Perses resolves it (the last
/// definition in reading order wins). The differing files of each side are parsed once more;
/// values are compared by the sha256 of their normalised JSON. Blocking.
pub fn scanned_diff(a: &Scan, b: &Scan) -> Result<ContentDiff, ScanError> {
    scanned_diff_with(a, b, KEEP_VALUES_BYTES)
}

/// One definition of a resource in a differing file.
struct Def {
    path: Arc<str>,
    /// Position among the file's resources: a later one of the same file wins.
    n: usize,
    sha256: [u8; 32],
    /// Normalised; only below `KEEP_VALUES_BYTES`.
    value: Option<Value>,
}

/// The definition that wins, by key, among files of one kind (differing, or identical).
type Defs = BTreeMap<ResourceKey, Def>;
/// For identical files, by `key_id`: they hold most keys of a large tree, and a digest is
/// smaller than the key's three strings.
type Shared = HashMap<KeyId, (Arc<str>, usize)>;
type KeyId = [u8; 32];

fn key_id(kind: &str, project: Option<&str>, name: &str) -> KeyId {
    let mut h = Sha256::new();
    // Length-prefixed, so that no two keys hash the same bytes.
    for part in [Some(kind), project, Some(name)] {
        match part {
            Some(s) => {
                h.update([1]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

fn id_of(k: &ResourceKey) -> KeyId {
    key_id(&k.kind, k.project.as_deref(), &k.name)
}

fn later(path: &str, n: usize, than: (&str, usize)) -> bool {
    match cmp_paths(path, than.0) {
        Ordering::Equal => n > than.1,
        o => o == Ordering::Greater,
    }
}

/// sha256 of the compact JSON (serde_json's maps are sorted, so equal values hash equal).
fn value_sha256(v: &Value) -> [u8; 32] {
    struct W(Sha256);
    impl std::io::Write for W {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = W(Sha256::new());
    serde_json::to_writer(&mut w, v).expect("a JSON value prints");
    w.0.finalize().into()
}

fn add_defs(defs: &mut Defs, path: &str, bytes: &[u8], keep: bool) {
    let path: Arc<str> = path.into();
    for (n, r) in file_resources(&path, bytes).into_iter().enumerate() {
        let key = r.key();
        if defs
            .get(&key)
            .is_some_and(|d| !later(&path, n, (&d.path, d.n)))
        {
            continue;
        }
        let v = normalise(&r.kind, r.value);
        let def = Def {
            path: path.clone(),
            n,
            sha256: value_sha256(&v),
            value: keep.then_some(v),
        };
        defs.insert(key, def);
    }
}

fn add_keys(shared: &mut Shared, path: &str, bytes: &[u8]) {
    add_keys_of(shared, path, &file_resources(path, bytes));
}

fn add_keys_of(shared: &mut Shared, path: &str, resources: &[Resource]) {
    let path: Arc<str> = path.into();
    for (n, r) in resources.iter().enumerate() {
        let key = key_id(&r.kind, r.project.as_deref(), &r.name);
        if shared
            .get(&key)
            .is_some_and(|(p, m)| !later(&path, n, (p, *m)))
        {
            continue;
        }
        shared.insert(key, (path.clone(), n));
    }
}

/// The winning definition on one side.
#[derive(Clone, Copy)]
enum Win<'a> {
    Own(&'a Def),
    Shared(&'a Arc<str>, usize),
}

impl Win<'_> {
    fn path(&self) -> &str {
        match self {
            Win::Own(d) => &d.path,
            Win::Shared(p, _) => p,
        }
    }

    fn at(&self) -> (Arc<str>, usize) {
        match self {
            Win::Own(d) => (d.path.clone(), d.n),
            Win::Shared(p, n) => ((*p).clone(), *n),
        }
    }
}

fn winner<'a>(own: Option<&'a Def>, shared: Option<&'a (Arc<str>, usize)>) -> Option<Win<'a>> {
    match (own, shared) {
        (Some(d), Some((p, n))) if later(p, *n, (&d.path, d.n)) => Some(Win::Shared(p, *n)),
        (Some(d), _) => Some(Win::Own(d)),
        (None, Some((p, n))) => Some(Win::Shared(p, *n)),
        (None, None) => None,
    }
}

/// The resources of a file of `b` as `file_resources` lists them (in order), when the caller has
/// parsed `b` already (to lint it, say); `None` for a file it does not know.
pub type KnownResources<'a> = &'a (dyn Fn(&str) -> Option<Vec<Resource>> + Sync);

/// `scanned_diff`, taking the resources of `b`'s files from `known`: the files identical on
/// both sides are then not read again (most of a large tree, when one dashboard changes).
pub fn scanned_diff_known(
    a: &Scan,
    b: &Scan,
    known: KnownResources,
) -> Result<ContentDiff, ScanError> {
    scanned_diff_full(a, b, KEEP_VALUES_BYTES, Some(known))
}

/// `scanned_diff` with the threshold for keeping values as a parameter (for the tests).
pub fn scanned_diff_with(a: &Scan, b: &Scan, keep_bytes: u64) -> Result<ContentDiff, ScanError> {
    scanned_diff_full(a, b, keep_bytes, None)
}

fn scanned_diff_full(
    a: &Scan,
    b: &Scan,
    keep_bytes: u64,
    known: Option<KnownResources>,
) -> Result<ContentDiff, ScanError> {
    let same: BTreeSet<&str> = a
        .files
        .iter()
        .filter(|(p, m)| b.files.get(*p).is_some_and(|n| n.same_content(m)))
        .map(|(p, _)| p.as_str())
        .collect();
    let only = |s: &'_ Scan| -> Vec<String> {
        s.files
            .keys()
            .filter(|p| !same.contains(p.as_str()))
            .cloned()
            .collect()
    };
    let (da, db) = (only(a), only(b));
    let bytes = |s: &Scan, ps: &[String]| ps.iter().map(|p| s.files[p].size).sum::<u64>();
    let keep = bytes(a, &da) + bytes(b, &db) <= keep_bytes;

    // Both sides at once: `a` reads its differing files, `b` its differing and identical ones.
    let (ad, bd_shared) = std::thread::scope(|t| {
        let ja = t.spawn(|| {
            let mut defs = Defs::new();
            a.read(da.iter().map(String::as_str), &mut |p, bytes| {
                add_defs(&mut defs, p, &bytes, keep)
            })
            .map(|_| defs)
        });
        // `b` reads (decompresses) on this thread and parses on another: most of its files
        // are identical ones, and parsing them is most of the work. A short queue: files in
        // flight are memory (64 of them cost 10-25 MB of peak on the 1 GB diff).
        let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(8);
        // Identical files whose resources the caller knows are not read.
        let mut shared = Shared::new();
        let mut unknown_same: Vec<&str> = Vec::new();
        for p in &same {
            match known.and_then(|k| k(p)) {
                Some(resources) => add_keys_of(&mut shared, p, &resources),
                None => unknown_same.push(p),
            }
        }
        let parser = t.spawn(move || {
            let mut bd = Defs::new();
            for (p, bytes) in rx {
                if same.contains(p.as_str()) {
                    add_keys(&mut shared, &p, &bytes)
                } else {
                    add_defs(&mut bd, &p, &bytes, keep)
                }
            }
            (bd, shared)
        });
        let wanted = db
            .iter()
            .map(String::as_str)
            .chain(unknown_same.iter().copied());
        let rb = b.read(wanted, &mut |p, bytes| {
            // The parser only stops by panicking, which the join below reports.
            let _ = tx.send((p.to_string(), bytes));
        });
        drop(tx);
        let parsed = parser.join().expect("the parser does not panic");
        (
            ja.join().expect("the reader does not panic"),
            rb.map(|_| parsed),
        )
    });
    let ad = ad?;
    let (bd, shared) = bd_shared?;

    let mut out = ContentDiff::default();
    // A key defined in identical files only has the same winner on both sides.
    let in_differing: std::collections::HashSet<KeyId> =
        ad.keys().chain(bd.keys()).map(id_of).collect();
    out.unchanged = shared.keys().filter(|k| !in_differing.contains(*k)).count();
    let keys: BTreeSet<&ResourceKey> = ad.keys().chain(bd.keys()).collect();
    let mut candidates = Vec::new();
    for key in keys {
        let s = shared.get(&id_of(key));
        match (winner(ad.get(key), s), winner(bd.get(key), s)) {
            (Some(x), None) => {
                out.changes
                    .push(change(ChangeKind::Removed, key, x.path(), String::new()))
            }
            (None, Some(y)) => {
                out.changes
                    .push(change(ChangeKind::Added, key, y.path(), String::new()))
            }
            (Some(Win::Own(x)), Some(Win::Own(y))) if x.sha256 == y.sha256 => out.unchanged += 1,
            // One definition, in an identical file, wins on both sides.
            (Some(Win::Shared(..)), Some(Win::Shared(..))) => out.unchanged += 1,
            (Some(x), Some(y)) => candidates.push((key, x, y)),
            (None, None) => unreachable!("every key has a definition on some side"),
        }
    }

    // Values not kept: read again the files of the candidates (an identical file from `b`).
    let mut need_a: BTreeMap<Arc<str>, BTreeSet<usize>> = BTreeMap::new();
    let mut need_b: BTreeMap<Arc<str>, BTreeSet<usize>> = BTreeMap::new();
    for (_, x, y) in &candidates {
        for (w, on_a) in [(x, true), (y, false)] {
            let need = match w {
                Win::Own(d) if d.value.is_some() => continue,
                Win::Own(_) if on_a => &mut need_a,
                Win::Own(_) | Win::Shared(..) => &mut need_b,
            };
            let (p, n) = w.at();
            need.entry(p).or_default().insert(n);
        }
    }
    let values_a = values_at(a, &need_a)?;
    let values_b = values_at(b, &need_b)?;
    let value = |w: &Win, values: &HashMap<(Arc<str>, usize), Value>| -> Value {
        match w {
            Win::Own(Def { value: Some(v), .. }) => v.clone(),
            Win::Own(_) => values[&w.at()].clone(),
            Win::Shared(..) => values_b[&w.at()].clone(),
        }
    };
    for (key, x, y) in candidates {
        let (before, after) = (value(&x, &values_a), value(&y, &values_b));
        if before == after {
            out.unchanged += 1;
        } else {
            out.changes.push(changed(key, y.path(), &before, &after));
        }
    }
    sort(&mut out);
    Ok(out)
}

/// The normalised values of the `n`th resources of some files.
fn values_at(
    s: &Scan,
    need: &BTreeMap<Arc<str>, BTreeSet<usize>>,
) -> Result<HashMap<(Arc<str>, usize), Value>, ScanError> {
    let mut out = HashMap::new();
    s.read(need.keys().map(|p| &**p), &mut |p, bytes| {
        let (path, ns) = need.get_key_value(p).expect("a file asked for");
        for (n, r) in file_resources(p, &bytes).into_iter().enumerate() {
            if ns.contains(&n) {
                out.insert((path.clone(), n), normalise(&r.kind, r.value));
            }
        }
    })?;
    Ok(out)
}

fn change(kind: ChangeKind, key: &ResourceKey, path: &str, diff: String) -> ResourceChange {
    ResourceChange {
        change: kind,
        kind: key.kind.clone(),
        project: key.project.clone(),
        name: key.name.clone(),
        path: path.to_string(),
        diff_format: DiffFormat::of_path(path),
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

    const YAML_V1: &str = "kind: Dashboard
metadata:
  name: d
  project: p
spec:
  display:
    name: Latency
    description: '012'
  duration: 1h
  panels: {}
";

    #[test]
    fn a_yaml_file_is_diffed_in_yaml_and_a_reformat_is_no_change() {
        let v2 = YAML_V1.replace("name: Latency", "name: Latency (SLO)");
        let d = content_diff(&[f("d.yaml", YAML_V1)], &[f("d.yaml", &v2)]);
        let c = &d.changes[0];
        assert_eq!(c.diff_format, DiffFormat::Yaml);
        assert_eq!(
            c.diff,
            "--- before\n+++ after\n@@ -5,6 +5,6 @@\n spec:\n   display:\n     description: \"012\"\n-    name: Latency\n+    name: Latency (SLO)\n   duration: 1h\n   panels: {}\n"
        );
        // The same resource as flow YAML and as JSON: no change, whatever the file's format.
        let flow = "{kind: Dashboard, metadata: {name: d, project: p}, spec: {display: {name: Latency, description: '012'}, duration: 1h, panels: {}}}";
        assert!(content_diff(&[f("d.yaml", YAML_V1)], &[f("d.yml", flow)]).is_empty());
        let json = r#"{"kind":"Dashboard","metadata":{"name":"d","project":"p"},"spec":{"display":{"name":"Latency","description":"012"},"duration":"1h","panels":{}}}"#;
        assert!(content_diff(&[f("d.yaml", YAML_V1)], &[f("d.json", json)]).is_empty());
        // A file moved from YAML to JSON and changed is drawn in the new file's format.
        let d = content_diff(
            &[f("d.yaml", YAML_V1)],
            &[f("d.json", &json.replace("Latency", "L"))],
        );
        assert_eq!(d.changes[0].diff_format, DiffFormat::Json);
        assert!(
            d.changes[0].diff.contains("+      \"name\": \"L\""),
            "{}",
            d.changes[0].diff
        );
    }

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

    /// Both diffs of two trees written to directories: the in-memory one (the reference) and
    /// the scanned one, with values kept and not.
    fn both(a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)], sub: Option<&str>) -> ContentDiff {
        let tmp = tempfile::tempdir().unwrap();
        for (side, files) in [("a", a), ("b", b)] {
            for (p, bytes) in files {
                let path = tmp.path().join(side).join(p);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
        }
        let (sa, sb) = scans(tmp.path(), sub);
        let at = |files: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
            let Some(sp) = sub.map(|s| s.trim_matches('/')).filter(|s| !s.is_empty()) else {
                return files.to_vec();
            };
            files
                .iter()
                .filter_map(|(p, b)| {
                    p.strip_prefix(&format!("{sp}/"))
                        .map(|r| (r.to_string(), b.clone()))
                })
                .collect()
        };
        let want = content_diff(&at(a), &at(b));
        for keep in [KEEP_VALUES_BYTES, 0] {
            let got = scanned_diff_with(&sa, &sb, keep).unwrap();
            assert_eq!(got, want, "keep_bytes {keep}");
        }
        // With the resources of `b` known from its lint, identical files are not read again,
        // and the answer is the same.
        let sub = sub.map(|s| s.trim_matches('/'));
        let report = crate::perses::lint_dir(&tmp.path().join("b"), sub, &[]).unwrap();
        let known = |p: &str| {
            report
                .files
                .iter()
                .find(|f| f.path == p)
                .map(|f| f.resources.clone())
        };
        assert_eq!(scanned_diff_known(&sa, &sb, &known).unwrap(), want);
        want
    }

    fn scans(root: &std::path::Path, sub: Option<&str>) -> (Scan, Scan) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reg = crate::registry::Registry::new(Default::default());
        let open = |side: &str| {
            let what = root.join(side).display().to_string();
            rt.block_on(Scan::open(&what, sub, &reg)).unwrap()
        };
        (open("a"), open("b"))
    }

    fn dash(name: &str, spec: &str) -> String {
        format!(
            r#"{{"kind":"Dashboard","metadata":{{"name":"{name}","project":"p"}},"spec":{spec}}}"#
        )
    }

    #[test]
    fn scanned_moved_reformatted_and_identical_files_diff_as_in_memory() {
        let a = [
            f("p.json", PROJECT),
            f("same.json", &dash("same", r#"{"x":1}"#)),
            f("old/moved.json", &dash("moved", r#"{"x":1}"#)),
            f("moved-changed.json", &dash("mc", r#"{"x":1}"#)),
            f("fmt.json", &dash("fmt", r#"{"a":1,"b":2}"#)),
            f("gone.json", &dash("gone", "{}")),
            f("notes.txt", "not a resource"),
        ];
        let b = [
            f("p.json", PROJECT),
            f("same.json", &dash("same", r#"{"x":1}"#)),
            f("new/moved.json", &dash("moved", r#"{"x":1}"#)),
            f("z/mc.json", &dash("mc", r#"{"x":2}"#)),
            f(
                "fmt.json",
                &format!("{}\n", dash("fmt", r#"{ "b": 2, "a": 1 }"#)),
            ),
            f(
                "added.yaml",
                "kind: Dashboard\nmetadata: {name: added, project: p}\nspec: {}\n",
            ),
            f("notes.txt", "other text"),
        ];
        let d = both(&a, &b, None);
        assert_eq!(d.summary(), "1 added, 1 changed, 1 removed (4 unchanged)");
        let c = d
            .changes
            .iter()
            .find(|c| c.change == ChangeKind::Changed)
            .unwrap();
        assert_eq!((c.name.as_str(), c.path.as_str()), ("mc", "z/mc.json"));
    }

    #[test]
    fn scanned_duplicates_resolve_as_perses_reads_them() {
        // `d` is defined in an identical file and in differing ones: the last in reading order
        // wins on each side, wherever it is.
        let a = [
            f("m.json", &dash("d", r#"{"v":"shared"}"#)),
            f("a.json", &dash("d", r#"{"v":"early"}"#)),
            f("z.json", &dash("e", r#"{"v":"a"}"#)),
            f("y/x.json", &dash("e", r#"{"v":"shared"}"#)),
            f(
                "l.json",
                &format!("[{},{}]", dash("g", "1"), dash("g", "2")),
            ),
        ];
        let b = [
            f("m.json", &dash("d", r#"{"v":"shared"}"#)),
            f("z.json", &dash("d", r#"{"v":"late"}"#)),
            f("y/x.json", &dash("e", r#"{"v":"shared"}"#)),
            f(
                "l.json",
                &format!("[{},{}]", dash("g", "2"), dash("g", "1")),
            ),
        ];
        let d = both(&a, &b, None);
        assert_eq!(d.summary(), "0 added, 3 changed, 0 removed (0 unchanged)");
        // In reverse: the identical file's definition wins on one side only.
        let d = both(&b, &a, None);
        assert_eq!(d.count(ChangeKind::Changed), 3);
    }

    #[test]
    fn scanned_secrets_stay_masked_and_sub_paths_select() {
        let secret = |pw: &str| {
            format!(
                r#"{{"kind":"GlobalSecret","metadata":{{"name":"s"}},"spec":{{"basicAuth":{{"password":"{pw}"}}}}}}"#
            )
        };
        let a = [
            f("prod/s.json", &secret("hunter2")),
            f("prod/d.json", &dash("d", "{}")),
            f("staging/d.json", &dash("d", r#"{"x":1}"#)),
        ];
        let b = [
            f("prod/s.json", &secret("correct-horse")),
            f("prod/d.json", &dash("d", "{}")),
            f("staging/d.json", &dash("d", r#"{"x":2}"#)),
        ];
        let d = both(&a, &b, Some("prod"));
        assert_eq!(d.summary(), "0 added, 1 changed, 0 removed (1 unchanged)");
        assert_eq!(
            d.changes[0].diff,
            "(the GlobalSecret spec changed; its values are masked)\n"
        );
        assert!(!format!("{d:?}").contains("hunter2"));
        let d = both(&a, &b, Some("/staging/"));
        assert_eq!(d.summary(), "0 added, 1 changed, 0 removed (0 unchanged)");

        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/prod")).unwrap();
        std::fs::write(tmp.path().join("a/prod/x.json"), "{}").unwrap();
        let reg = crate::registry::Registry::new(Default::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let what = tmp.path().join("a").display().to_string();
        let e = rt
            .block_on(Scan::open(&what, Some("dev"), &reg))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{what}: sub_path \"dev\" does not exist in the artifact (top-level folders: prod)"
            )
        );
    }

    #[test]
    fn scanned_identical_files_are_read_on_one_side_only() {
        let tmp = tempfile::tempdir().unwrap();
        for side in ["a", "b"] {
            std::fs::create_dir_all(tmp.path().join(side)).unwrap();
            std::fs::write(tmp.path().join(side).join("same.json"), dash("s", "{}")).unwrap();
        }
        std::fs::write(tmp.path().join("a/d.json"), dash("d", "1")).unwrap();
        std::fs::write(tmp.path().join("b/d.json"), dash("d", "2")).unwrap();
        let (sa, sb) = scans(tmp.path(), None);
        // Reading `a`'s copy of the identical file now would fail: it no longer matches.
        std::fs::write(tmp.path().join("a/same.json"), "rewritten").unwrap();
        let d = scanned_diff(&sa, &sb).unwrap();
        assert_eq!(d.summary(), "0 added, 1 changed, 0 removed (1 unchanged)");
        // A differing file that changes between the reads is an error, not a wrong answer.
        std::fs::write(tmp.path().join("b/d.json"), dash("d", "3")).unwrap();
        let e = scanned_diff(&sa, &sb).unwrap_err();
        assert!(matches!(e, ScanError::Changed { .. }), "{e}");
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
