//! `inspect`: read an artifact from a registry or an OCI layout, with every check of
//! `artifact::read`, and sum up what a mount would show: files per top-level folder (the
//! `subPath` candidates) and Perses resources per kind.

use crate::artifact::layout::{LayoutError, LayoutRef};
use crate::artifact::read::{Limits, Tree};
use crate::artifact::scan::{Scan, ScanError};
use crate::artifact::source::Source;
use crate::model::RegistrySettings;
use crate::perses as lint;
use crate::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// `REPO:TAG`, `REPO@sha256:...` or `oci:PATH:TAG`.
    pub reference: String,
    pub registry: RegistrySettings,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Files under one top-level folder (`""`: files at the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub name: String,
    pub files: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// What describes the image (its `files` are left empty: see `files`).
    pub tree: Tree,
    /// Every file, with its size.
    pub files: BTreeMap<String, u64>,
    pub folders: Vec<Folder>,
    /// Resources per `kind`, over the files Perses reads.
    pub kinds: BTreeMap<String, usize>,
    /// Files Perses reads (by extension).
    pub resource_files: usize,
    /// Of those, files Perses would skip as undecodable.
    pub unreadable: Vec<String>,
}

/// What a file decodes to: the kinds of its objects, or `Err` when Perses skips it.
pub type Decoded = Result<Vec<String>, ()>;

/// Reads the image once, one file in memory at a time, decoding each resource file on the way.
pub async fn inspect(opts: &InspectOptions) -> Result<Inspection, InspectError> {
    let source = match LayoutRef::parse(&opts.reference) {
        Some(r) => Source::Layout(r?),
        None => Source::Registry(opts.reference.clone()),
    };
    let registry = Registry::new(opts.registry.clone());
    type Seen = Vec<((usize, usize), String, Decoded)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = seen.clone();
    let visit = Box::new(move |at, path: &str, bytes: Vec<u8>| {
        let kinds = lint::parse_resources(path, &bytes)
            .map(|objects| {
                objects
                    .iter()
                    .map(|o| o["kind"].as_str().unwrap_or("(no kind)").to_string())
                    .collect()
            })
            .map_err(|_| ());
        sink.lock().unwrap().push((at, path.to_string(), kinds));
    });
    let scan = Scan::open_with(
        &opts.reference,
        source,
        None,
        &registry,
        Some(opts.limits),
        Some(visit),
    )
    .await?;
    let decoded: BTreeMap<String, Decoded> = std::mem::take(&mut *seen.lock().unwrap())
        .into_iter()
        .filter(|(at, path, _)| scan.is_final(path, *at))
        .map(|(_, path, kinds)| (path, kinds))
        .collect();
    let tree = scan.image().cloned().unwrap_or_default();
    let files = scan
        .files
        .iter()
        .chain(&scan.others)
        .map(|(p, m)| (p.clone(), m.size))
        .collect();
    Ok(summarize(tree, files, &decoded))
}

/// Folder and kind counts of an image's files (pure): `files` are every file with its size,
/// `decoded` what each resource file decodes to.
pub fn summarize(
    tree: Tree,
    files: BTreeMap<String, u64>,
    decoded: &BTreeMap<String, Decoded>,
) -> Inspection {
    let mut folders: BTreeMap<String, Folder> = BTreeMap::new();
    for d in &tree.dirs {
        if !d.contains('/') {
            folders.entry(d.clone()).or_insert_with(|| Folder {
                name: d.clone(),
                files: 0,
                bytes: 0,
            });
        }
    }
    let mut kinds = BTreeMap::new();
    let mut resource_files = 0;
    let mut unreadable = Vec::new();
    for (path, size) in &files {
        let top = path.split_once('/').map(|(t, _)| t).unwrap_or("");
        let f = folders.entry(top.to_string()).or_insert_with(|| Folder {
            name: top.to_string(),
            files: 0,
            bytes: 0,
        });
        f.files += 1;
        f.bytes += size;
        if lint::is_resource_file(path) {
            resource_files += 1;
            match decoded.get(path) {
                Some(Ok(objects)) => {
                    for kind in objects {
                        *kinds.entry(kind.clone()).or_insert(0) += 1;
                    }
                }
                _ => unreadable.push(path.clone()),
            }
        }
    }
    Inspection {
        tree,
        files,
        folders: folders.into_values().collect(),
        kinds,
        resource_files,
        unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_kinds_are_counted() {
        let mut tree = Tree::default();
        let mut files = BTreeMap::new();
        let mut decoded = BTreeMap::new();
        for (p, d) in [
            (
                "prod/a.json",
                r#"{"kind":"Dashboard","metadata":{"name":"a","project":"p"},"spec":{"x":1}}"#,
            ),
            ("prod/b.yaml", "kind: Datasource\nmetadata:\n  name: b\n"),
            (
                "staging/list.json",
                r#"[{"kind":"Dashboard"},{"kind":"Project"}]"#,
            ),
            ("README.md", "hello"),
            ("prod/broken.json", "{"),
        ] {
            files.insert(p.to_string(), d.len() as u64);
            if lint::is_resource_file(p) {
                let kinds = lint::parse_resources(p, d.as_bytes())
                    .map(|os| {
                        os.iter()
                            .map(|o| o["kind"].as_str().unwrap_or("(no kind)").to_string())
                            .collect()
                    })
                    .map_err(|_| ());
                decoded.insert(p.to_string(), kinds);
            }
        }
        tree.dirs
            .extend(["prod".to_string(), "staging".into(), "empty".into()]);
        let i = summarize(tree, files, &decoded);
        let f: Vec<(&str, usize)> = i
            .folders
            .iter()
            .map(|f| (f.name.as_str(), f.files))
            .collect();
        assert_eq!(f, vec![("", 1), ("empty", 0), ("prod", 3), ("staging", 1)]);
        assert_eq!(i.kinds.get("Dashboard"), Some(&2));
        assert_eq!(i.kinds.get("Datasource"), Some(&1));
        assert_eq!(i.kinds.get("Project"), Some(&1));
        assert_eq!(i.resource_files, 4);
        assert_eq!(i.unreadable, vec!["prod/broken.json".to_string()]);
    }
}
