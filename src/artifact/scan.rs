//! An artifact (directory, registry image, OCI layout) read one file at a time, for diffs of
//! trees larger than memory: opening it keeps only the sha256 and size of each resource file,
//! and `Scan::read` hands out the bytes of the files asked for, again one at a time. An image's
//! layers stay on disk between the two (a layout's blobs in place, a registry's in anonymous
//! temporary files), with every check of `artifact::read` on the first read and each file's
//! sha256 on the next ones.

use super::read::{self, FileMeta, Indexed, Limits, ReadError, Visit, VisitFilter};
use super::source::Source;
use crate::perses::{self as lint, LintError, LintPool, Note, Report, is_resource_file};
use crate::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What is kept of a file between the reads (compare with `FileMeta::same_content`).
pub type Meta = FileMeta;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Lint(#[from] LintError),
    /// Worded as `source::at_sub_path` words it, so that `diff` says what it said.
    #[error(
        "{what}: sub_path {sub_path:?} does not exist in the artifact (top-level folders: {tops})"
    )]
    NoSubPath {
        what: String,
        sub_path: String,
        tops: String,
    },
    #[error(
        "{what}: {path} changed while the artifact was being read; nothing was compared (run again)"
    )]
    Changed { what: String, path: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An opened artifact, at a sub path.
#[derive(Debug)]
pub struct Scan {
    /// As the caller named it.
    pub what: String,
    /// The resource files (`lint::is_resource_file`) under the sub path, relative to it.
    pub files: BTreeMap<String, Meta>,
    /// The other files under the sub path (Perses ignores them), relative to it.
    pub others: BTreeMap<String, Meta>,
    /// What a directory's walk did not read (links, special files).
    pub warnings: Vec<Note>,
    /// `sub/`, or empty.
    prefix: String,
    backing: Backing,
}

#[derive(Debug)]
enum Backing {
    /// The directory the paths of `files` are relative to (the sub path included).
    Dir(PathBuf),
    Image(Box<Indexed>),
}

impl Scan {
    /// What describes the image (its reference, digests, platforms, annotations, sizes,
    /// directories; not its files): `None` for a directory.
    pub fn image(&self) -> Option<&read::Tree> {
        match &self.backing {
            Backing::Image(i) => Some(&i.tree),
            Backing::Dir(_) => None,
        }
    }

    /// Whether `at` is where the last version of `path` was read (see `open_with`).
    pub fn is_final(&self, path: &str, at: (usize, usize)) -> bool {
        match &self.backing {
            Backing::Dir(_) => true,
            Backing::Image(_) => self.files.get(path).is_some_and(|m| m.position() == at),
        }
    }

    /// Opens `what` (a directory, `REPO:TAG`, `REPO@sha256:...`, `oci:PATH:TAG`) and reads each
    /// file once, keeping its sha256 and size. `sub_path` selects a folder as
    /// `source::at_sub_path` does, with the same error when it holds no file.
    pub async fn open(
        what: &str,
        sub_path: Option<&str>,
        registry: &Registry,
    ) -> Result<Scan, ScanError> {
        let source = Source::parse(what).map_err(ScanError::Source)?;
        Scan::open_visiting(what, source, sub_path, registry, None).await
    }

    /// `open` of a source already parsed (`what` names it in messages).
    pub async fn open_source(
        what: &str,
        source: Source,
        sub_path: Option<&str>,
        registry: &Registry,
    ) -> Result<Scan, ScanError> {
        Scan::open_visiting(what, source, sub_path, registry, None).await
    }

    /// An artifact with no file (the live side of an artifact being added).
    pub fn empty(what: &str) -> Scan {
        Scan {
            what: what.to_string(),
            files: BTreeMap::new(),
            others: BTreeMap::new(),
            warnings: Vec::new(),
            prefix: String::new(),
            backing: Backing::Dir(PathBuf::new()),
        }
    }

    /// `open`, linting the resource files under the sub path on the way: one read of the
    /// artifact serves the index and the lint, whose files are parsed on every core, one file
    /// in memory per core. The report is what `lint_dir` gives for the same files (an image's
    /// later layers replace or delete files as a container sees them).
    pub async fn open_linted(
        what: &str,
        sub_path: Option<&str>,
        registry: &Registry,
        known_projects: &[String],
    ) -> Result<(Scan, Report), ScanError> {
        let source = Source::parse(what).map_err(ScanError::Source)?;
        Scan::open_source_linted(what, source, sub_path, registry, known_projects).await
    }

    /// `open_linted` of a source already parsed (`what` names it in messages).
    pub async fn open_source_linted(
        what: &str,
        source: Source,
        sub_path: Option<&str>,
        registry: &Registry,
        known_projects: &[String],
    ) -> Result<(Scan, Report), ScanError> {
        let pool = LintPool::new();
        let mut feed = pool.feeder();
        let visit: Box<Visit> = Box::new(move |at, path, bytes| feed(at, path, bytes));
        let scan = Scan::open_visiting(what, source, sub_path, registry, Some(visit)).await;
        let mut linter = tokio::task::spawn_blocking(move || pool.finish())
            .await
            .expect("lint does not panic");
        let scan = scan?;
        linter.retain_at(|path, at| scan.is_final(path, at));
        for other in scan.others.keys() {
            linter.add(other, &[]);
        }
        let mut report = linter.finish(known_projects);
        report.warnings.extend(scan.warnings.iter().cloned());
        report
            .warnings
            .sort_by(|a, b| lint::cmp_paths(&a.path, &b.path));
        Ok((scan, report))
    }

    async fn open_visiting(
        what: &str,
        source: Source,
        sub_path: Option<&str>,
        registry: &Registry,
        visit: Option<Box<Visit>>,
    ) -> Result<Scan, ScanError> {
        Scan::open_with(what, source, sub_path, registry, None, visit).await
    }

    /// `open`, handing the bytes of each resource file under the sub path (path relative to
    /// it) to `visit` on the way. For an image, every version of a path is handed out: keep the
    /// one whose position `Scan::files` names. `limits`: those of the environment when `None`.
    pub async fn open_with(
        what: &str,
        source: Source,
        sub_path: Option<&str>,
        registry: &Registry,
        limits: Option<Limits>,
        visit: Option<Box<Visit>>,
    ) -> Result<Scan, ScanError> {
        let sub = sub_path
            .map(|s| s.trim_matches('/'))
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let prefix = sub.as_ref().map(|s| format!("{s}/")).unwrap_or_default();
        let limits = || match limits {
            Some(l) => Ok(l),
            None => Limits::from_env().map_err(ScanError::Read),
        };
        // The visit sees paths relative to the sub path, of resource files only.
        let visit = visit.map(|mut f| {
            let n = prefix.len();
            let p = prefix.clone();
            let filter: Arc<VisitFilter> = Arc::new(move |path: &str| {
                path.strip_prefix(p.as_str()).is_some_and(is_resource_file)
            });
            let f: Box<Visit> = Box::new(move |at, path: &str, bytes| f(at, &path[n..], bytes));
            (f, filter)
        });
        let mut indexed = match (source, visit) {
            (Source::Dir(dir), visit) => {
                let what = what.to_string();
                return tokio::task::spawn_blocking(move || {
                    open_dir(what, &dir, sub.as_deref(), visit.map(|(f, _)| f))
                })
                .await
                .expect("the directory reader does not panic");
            }
            (Source::Layout(l), None) => read::index_layout(&l.path, &l.tag, limits()?).await?,
            (Source::Layout(l), Some(v)) => {
                read::index_layout_visiting(&l.path, &l.tag, limits()?, v).await?
            }
            (Source::Registry(r), None) => read::index_registry(registry, &r, limits()?).await?,
            (Source::Registry(r), Some(v)) => {
                read::index_registry_visiting(registry, &r, limits()?, v).await?
            }
        };
        if let Some(sub) = &sub
            && !indexed.files.keys().any(|p| p.starts_with(&prefix))
        {
            // Image paths come in byte order, where a folder's files are `top/...`.
            let mut tops: Vec<String> = top_folders(indexed.files.keys().map(String::as_str))
                .into_iter()
                .collect();
            tops.sort_by_key(|t| format!("{t}/"));
            return Err(no_sub_path(what, sub, &tops));
        }
        // Moved out rather than copied: an index of a large tree is most of what a diff holds.
        let mut others = BTreeMap::new();
        let files: BTreeMap<String, Meta> = std::mem::take(&mut indexed.files)
            .into_iter()
            .filter_map(|(p, m)| {
                let rel = if prefix.is_empty() {
                    p
                } else {
                    p.strip_prefix(&prefix)?.to_string()
                };
                if is_resource_file(&rel) {
                    Some((rel, m))
                } else {
                    others.insert(rel, m);
                    None
                }
            })
            .collect();
        Ok(Scan {
            what: what.to_string(),
            files,
            others,
            warnings: Vec::new(),
            prefix,
            backing: Backing::Image(Box::new(indexed)),
        })
    }

    /// Calls `each` with the path (relative to the sub path) and bytes of each of `paths` (keys
    /// of `files`), in no particular order. Blocking.
    pub fn read<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        each: &mut dyn FnMut(&str, Vec<u8>),
    ) -> Result<(), ScanError> {
        match &self.backing {
            Backing::Dir(root) => {
                for p in paths {
                    let path = p.split('/').fold(root.clone(), |d, c| d.join(c));
                    let bytes = std::fs::read(&path).map_err(|source| ScanError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    if !self
                        .files
                        .get(p)
                        .is_some_and(|m| m.same_content(&FileMeta::of_bytes(&bytes)))
                    {
                        return Err(ScanError::Changed {
                            what: self.what.clone(),
                            path: p.to_string(),
                        });
                    }
                    each(p, bytes);
                }
                Ok(())
            }
            Backing::Image(indexed) => {
                let mut full = Vec::new();
                for p in paths {
                    let (rel, meta) =
                        self.files
                            .get_key_value(p)
                            .ok_or_else(|| ScanError::Changed {
                                what: self.what.clone(),
                                path: p.to_string(),
                            })?;
                    // Without a sub path the image's paths are the keys: no copy of them.
                    let path = if self.prefix.is_empty() {
                        std::borrow::Cow::Borrowed(rel.as_str())
                    } else {
                        std::borrow::Cow::Owned(format!("{}{p}", self.prefix))
                    };
                    full.push((path, meta));
                }
                let n = self.prefix.len();
                indexed.read_entries(
                    full.iter().map(|(p, m)| (p.as_ref(), *m)),
                    &mut |p, bytes| each(&p[n..], bytes),
                )?;
                Ok(())
            }
        }
    }
}

fn meta_of(bytes: &[u8]) -> Meta {
    FileMeta::of_bytes(bytes)
}

/// Folders at the top of a tree that hold at least one file (deeper or not).
fn top_folders<'a>(paths: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    paths
        .filter_map(|p| p.split_once('/').map(|(t, _)| t.to_string()))
        .collect()
}

fn no_sub_path(what: &str, sub: &str, tops: &[String]) -> ScanError {
    ScanError::NoSubPath {
        what: what.to_string(),
        sub_path: sub.to_string(),
        tops: if tops.is_empty() {
            "none".to_string()
        } else {
            tops.join(", ")
        },
    }
}

fn open_dir(
    what: String,
    dir: &Path,
    sub: Option<&str>,
    mut visit: Option<Box<Visit>>,
) -> Result<Scan, ScanError> {
    let mut files = BTreeMap::new();
    let mut others = BTreeMap::new();
    let mut n = 0usize;
    let mut take = |rel: String, bytes: Vec<u8>| {
        if is_resource_file(&rel) {
            files.insert(rel.clone(), meta_of(&bytes));
            if let Some(f) = &mut visit {
                f((0, n), &rel, bytes);
                n += 1;
            }
        } else {
            others.insert(rel, meta_of(&bytes));
        }
    };
    let Some(sub) = sub else {
        let warnings = lint::visit_tree(dir, &mut |rel, bytes| take(rel, bytes))?;
        return Ok(Scan {
            what,
            files,
            others,
            warnings,
            prefix: String::new(),
            backing: Backing::Dir(dir.to_path_buf()),
        });
    };
    // Only the sub path's folder is walked when the whole tree's walk would reach it: a plain
    // relative path whose every component is a real folder (the walk follows no link).
    let root = sub.split('/').fold(dir.to_path_buf(), |d, c| d.join(c));
    let plain = sub
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..")
        && sub
            .split('/')
            .scan(dir.to_path_buf(), |d, c| {
                d.push(c);
                Some(std::fs::symlink_metadata(&*d).is_ok_and(|m| m.is_dir()))
            })
            .all(|real| real);
    let mut any = false;
    let warnings = if plain {
        lint::visit_tree(&root, &mut |rel, bytes| {
            any = true;
            take(rel, bytes);
        })?
    } else {
        // The tree is still walked, as a load of the whole directory would, for its errors.
        let prefix = format!("{sub}/");
        let w = lint::visit_tree(dir, &mut |rel, bytes| {
            if let Some(rest) = rel.strip_prefix(&prefix) {
                any = true;
                take(rest.to_string(), bytes);
            }
        })?;
        w.into_iter()
            .filter_map(|mut n| {
                n.path = n.path.strip_prefix(&prefix)?.to_string();
                Some(n)
            })
            .collect()
    };
    if !any {
        let mut paths = Vec::new();
        lint::visit_tree(dir, &mut |rel, _| paths.push(rel))?;
        let tops: Vec<String> = top_folders(paths.iter().map(String::as_str))
            .into_iter()
            .collect();
        return Err(no_sub_path(&what, sub, &tops));
    }
    Ok(Scan {
        what,
        files,
        others,
        warnings,
        prefix: format!("{sub}/"),
        backing: Backing::Dir(root),
    })
}
