//! `inspect`: read an artifact from a registry or an OCI layout, with every check of
//! `artifact::read`, and sum up what a mount would show: files per top-level folder (the
//! `subPath` candidates) and Perses resources per kind.

use crate::artifact::layout::{LayoutError, LayoutRef};
use crate::artifact::read::{self, Limits, ReadError, Tree};
use crate::model::RegistrySettings;
use crate::perses as lint;
use crate::registry::Registry;
use std::collections::BTreeMap;

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
    Read(#[from] ReadError),
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
    pub tree: Tree,
    pub folders: Vec<Folder>,
    /// Resources per `kind`, over the files Perses reads.
    pub kinds: BTreeMap<String, usize>,
    /// Files Perses reads (by extension).
    pub resource_files: usize,
    /// Of those, files Perses would skip as undecodable.
    pub unreadable: Vec<String>,
}

pub async fn inspect(opts: &InspectOptions) -> Result<Inspection, InspectError> {
    let tree = match LayoutRef::parse(&opts.reference) {
        Some(r) => {
            let r = r?;
            read::read_layout(&r.path, &r.tag, opts.limits).await?
        }
        None => {
            let registry = Registry::new(opts.registry.clone());
            read::pull_tree(&registry, &opts.reference, opts.limits).await?
        }
    };
    Ok(summarize(tree))
}

/// Folder and kind counts of a tree (pure).
pub fn summarize(tree: Tree) -> Inspection {
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
    for (path, data) in &tree.files {
        let top = path.split_once('/').map(|(t, _)| t).unwrap_or("");
        let f = folders.entry(top.to_string()).or_insert_with(|| Folder {
            name: top.to_string(),
            files: 0,
            bytes: 0,
        });
        f.files += 1;
        f.bytes += data.len() as u64;
        if lint::is_resource_file(path) {
            resource_files += 1;
            match lint::parse_resources(path, data) {
                Ok(objects) => {
                    for o in objects {
                        let kind = o["kind"].as_str().unwrap_or("(no kind)").to_string();
                        *kinds.entry(kind).or_insert(0) += 1;
                    }
                }
                Err(_) => unreadable.push(path.clone()),
            }
        }
    }
    Inspection {
        tree,
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
            tree.files.insert(p.into(), d.as_bytes().to_vec());
        }
        tree.dirs
            .extend(["prod".to_string(), "staging".into(), "empty".into()]);
        let i = summarize(tree);
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
