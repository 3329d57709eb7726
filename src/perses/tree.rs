//! Reading a tree of resource files from a directory, in Perses' reading order, safely (no
//! links followed), and linting it on every core.

use super::cmp_paths;
use super::linter::Linter;
use super::report::{Note, Report};
use std::path::{Path, PathBuf};

/// Why a tree could not be read at all (as opposed to problems in its files).
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid sub-path {sub_path:?}: {reason}")]
    BadSubPath {
        sub_path: String,
        reason: &'static str,
    },
    #[error("sub-path {sub_path:?} does not exist in {root}")]
    SubPathNotFound { sub_path: String, root: String },
}

/// The files of a directory, plus what was not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    /// Every regular file, relative and `/`-separated, in Perses' reading order.
    pub files: Vec<(String, Vec<u8>)>,
    pub warnings: Vec<Note>,
}

/// A `--sub-path` as Kubernetes takes it: relative, no `..`; `.` and empty parts dropped.
/// The empty string means the root itself.
pub fn normalize_sub_path(sub_path: &str) -> Result<String, LintError> {
    let bad = |reason| LintError::BadSubPath {
        sub_path: sub_path.to_string(),
        reason,
    };
    if sub_path.starts_with('/') || sub_path.starts_with('\\') {
        return Err(bad("it must be relative"));
    }
    let mut parts = Vec::new();
    for part in sub_path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it must not contain '..'")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The files under `sub_path` of an in-memory tree, with paths relative to it: what a
/// container sees when the volume is mounted with that `subPath`.
pub fn select_sub_path(
    files: Vec<(String, Vec<u8>)>,
    sub_path: &str,
    root: &str,
) -> Result<Vec<(String, Vec<u8>)>, LintError> {
    let norm = normalize_sub_path(sub_path)?;
    if norm.is_empty() {
        return Ok(files);
    }
    let prefix = format!("{norm}/");
    let selected: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter_map(|(p, b)| p.strip_prefix(&prefix).map(|rest| (rest.to_string(), b)))
        .collect();
    if selected.is_empty() {
        return Err(LintError::SubPathNotFound {
            sub_path: sub_path.to_string(),
            root: root.to_string(),
        });
    }
    Ok(selected)
}

/// Reads every regular file under `dir`, recursively. Symbolic links are not followed (a link
/// in an image volume may point outside it); each one is reported as a warning instead.
pub fn read_tree(dir: &Path) -> Result<Tree, LintError> {
    let mut tree = Tree::default();
    let mut files = Vec::new();
    tree.warnings = visit_tree(dir, &mut |rel, bytes| files.push((rel, bytes)))?;
    files.sort_by(|a, b| cmp_paths(&a.0, &b.0));
    tree.files = files;
    Ok(tree)
}

/// Calls `each` with every regular file under `dir` (relative path, content), one at a time,
/// so that a caller can process a tree larger than memory; returns the warnings about what was
/// not read, sorted. Files come in directory order, not Perses' reading order.
pub fn visit_tree(
    dir: &Path,
    each: &mut dyn FnMut(String, Vec<u8>),
) -> Result<Vec<Note>, LintError> {
    let meta = std::fs::metadata(dir).map_err(|e| not_found_or_io(dir, e))?;
    if !meta.is_dir() {
        return Err(LintError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut warnings = Vec::new();
    walk(dir, "", each, &mut warnings)?;
    warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    Ok(warnings)
}

/// Lints the directory `dir` (at `sub_path`), reading one file at a time: memory stays at the
/// size of the largest files in flight plus the keys of the tree. Files are parsed on every
/// core while this thread reads the next ones.
pub fn lint_dir(
    dir: &Path,
    sub_path: Option<&str>,
    known_projects: &[String],
) -> Result<Report, LintError> {
    let root = resolve_sub_path(dir, sub_path)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    // A few files per worker in flight: enough to keep them busy, little memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(4 * workers);
    let rx = std::sync::Mutex::new(rx);
    let (linter, warnings) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = &rx;
                scope.spawn(move || {
                    let mut linter = Linter::new();
                    loop {
                        let next = rx.lock().expect("no worker panics").recv();
                        match next {
                            Ok((path, bytes)) => linter.add(&path, &bytes),
                            Err(_) => return linter,
                        }
                    }
                })
            })
            .collect();
        let warnings = visit_tree(&root, &mut |rel, bytes| {
            // A send fails only if every worker is gone, i.e. has panicked: join reports it.
            let _ = tx.send((rel, bytes));
        });
        drop(tx);
        let mut all = Linter::new();
        for h in handles {
            all.merge(h.join().expect("lint does not panic"));
        }
        (all, warnings)
    });
    let warnings = warnings?;
    let mut report = linter.finish(known_projects);
    report.warnings.extend(warnings);
    report.warnings.sort_by(|a, b| cmp_paths(&a.path, &b.path));
    Ok(report)
}

/// `read_tree` of `dir/sub_path`; an error if the sub-path does not exist, as the container
/// runtime would fail to start the pod.
pub fn read_tree_at(dir: &Path, sub_path: Option<&str>) -> Result<Tree, LintError> {
    read_tree(&resolve_sub_path(dir, sub_path)?)
}

/// `dir/sub_path`, checked: an error if the sub-path does not exist.
pub(crate) fn resolve_sub_path(dir: &Path, sub_path: Option<&str>) -> Result<PathBuf, LintError> {
    let Some(sub) = sub_path else {
        return Ok(dir.to_path_buf());
    };
    let norm = normalize_sub_path(sub)?;
    std::fs::metadata(dir).map_err(|e| not_found_or_io(dir, e))?;
    let target = norm.split('/').fold(dir.to_path_buf(), |p, c| p.join(c));
    match std::fs::metadata(&target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LintError::SubPathNotFound {
            sub_path: sub.to_string(),
            root: dir.display().to_string(),
        }),
        Err(e) => Err(LintError::Io {
            path: target,
            source: e,
        }),
        Ok(_) => Ok(target),
    }
}

pub(crate) fn not_found_or_io(path: &Path, e: std::io::Error) -> LintError {
    if e.kind() == std::io::ErrorKind::NotFound {
        LintError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        LintError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

pub(crate) fn walk(
    dir: &Path,
    prefix: &str,
    each: &mut dyn FnMut(String, Vec<u8>),
    warnings: &mut Vec<Note>,
) -> Result<(), LintError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LintError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let file_type = entry.file_type().map_err(io(&path))?;
        if file_type.is_symlink() {
            warnings.push(Note {
                path: rel,
                message: "symbolic link not followed, so not linted (Perses reads a linked \
                          file, but does not enter a linked folder)"
                    .into(),
            });
        } else if file_type.is_dir() {
            walk(&path, &rel, each, warnings)?;
        } else if file_type.is_file() {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            each(rel, bytes);
        } else {
            warnings.push(Note {
                path: rel,
                message: "not a regular file: skipped".into(),
            });
        }
    }
    Ok(())
}
