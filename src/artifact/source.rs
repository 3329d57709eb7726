//! Where an artifact's files come from: a directory, a registry reference, or an OCI image
//! layout (`oci:PATH:TAG`). One loader for lint, diff and plan, with an in-process cache so that
//! fifty environments pinning the same digest read it once.

use super::layout::LayoutRef;
use super::read::{self, Limits};
use crate::registry::Registry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::OnceCell;

/// Relative `/`-separated path -> content, sorted.
pub type Files = Vec<(String, Vec<u8>)>;

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Layout(LayoutRef),
    Registry(String),
}

impl Source {
    /// `oci:PATH:TAG` is a layout, an existing directory is a directory, anything else a
    /// registry reference.
    pub fn parse(s: &str) -> Result<Source, String> {
        if let Some(l) = LayoutRef::parse(s) {
            return l.map(Source::Layout).map_err(|e| e.to_string());
        }
        if Path::new(s).is_dir() {
            return Ok(Source::Dir(PathBuf::from(s)));
        }
        Ok(Source::Registry(s.to_string()))
    }
}

/// An artifact's files, and the digest when it came from an image.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub files: Arc<Files>,
    pub digest: Option<String>,
}

type Cell = Arc<OnceCell<Result<Loaded, String>>>;

fn cache() -> &'static Mutex<HashMap<String, Cell>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Cell>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Loads a source; images are read once per process and reference (pin digests in references
/// to make the cache exact).
pub async fn load(source: &Source, registry: &Registry) -> Result<Loaded, String> {
    let key = match source {
        Source::Dir(p) => return load_dir(p),
        Source::Layout(l) => format!("oci:{}:{}", l.path.display(), l.tag),
        Source::Registry(r) => r.clone(),
    };
    let cell = cache().lock().unwrap().entry(key).or_default().clone();
    cell.get_or_init(|| async {
        let limits = Limits::from_env().map_err(|e| e.to_string())?;
        let tree = match source {
            Source::Layout(l) => read::read_layout(&l.path, &l.tag, limits).await,
            Source::Registry(r) => read::pull_tree(registry, r, limits).await,
            Source::Dir(_) => unreachable!("directories are not cached"),
        }
        .map_err(|e| e.to_string())?;
        Ok(Loaded {
            files: Arc::new(tree.files.into_iter().collect()),
            digest: Some(tree.digest),
        })
    })
    .await
    .clone()
}

fn load_dir(dir: &Path) -> Result<Loaded, String> {
    let tree = crate::perses::read_tree(dir).map_err(|e| e.to_string())?;
    Ok(Loaded {
        files: Arc::new(tree.files),
        digest: None,
    })
}

/// The files a container sees with `sub_path` (`None`: all); `Err` names the top-level folders
/// when the sub path does not exist.
pub fn at_sub_path(files: &Files, sub_path: Option<&str>) -> Result<Files, String> {
    let Some(sp) = sub_path
        .map(|s| s.trim_matches('/'))
        .filter(|s| !s.is_empty())
    else {
        return Ok(files.clone());
    };
    let prefix = format!("{sp}/");
    let out: Files = files
        .iter()
        .filter_map(|(p, b)| p.strip_prefix(&prefix).map(|r| (r.to_string(), b.clone())))
        .collect();
    if out.is_empty() {
        let mut tops: Vec<&str> = files
            .iter()
            .filter_map(|(p, _)| p.split_once('/').map(|(t, _)| t))
            .collect();
        tops.dedup();
        return Err(format!(
            "sub_path {sp:?} does not exist in the artifact (top-level folders: {})",
            if tops.is_empty() {
                "none".to_string()
            } else {
                tops.join(", ")
            }
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_select_and_name_what_exists() {
        let files: Files = vec![
            ("prod/a.json".into(), b"a".to_vec()),
            ("prod/x/b.json".into(), b"b".to_vec()),
            ("staging/c.json".into(), b"c".to_vec()),
        ];
        let p = at_sub_path(&files, Some("prod")).unwrap();
        assert_eq!(
            p.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["a.json", "x/b.json"]
        );
        assert_eq!(at_sub_path(&files, None).unwrap().len(), 3);
        let e = at_sub_path(&files, Some("dev")).unwrap_err();
        assert_eq!(
            e,
            "sub_path \"dev\" does not exist in the artifact (top-level folders: prod, staging)"
        );
    }

    #[test]
    fn sources_parse() {
        assert!(matches!(
            Source::parse("oci:some/dir:v1"),
            Ok(Source::Layout(_))
        ));
        assert!(matches!(Source::parse("."), Ok(Source::Dir(_))));
        assert_eq!(
            Source::parse("reg.example/x:v1"),
            Ok(Source::Registry("reg.example/x:v1".into()))
        );
    }
}
