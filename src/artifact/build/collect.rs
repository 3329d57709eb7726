//! What goes into the layer: the walk of the directory, with the hidden-file and `--exclude`
//! filter it applies, refusing what is neither a regular file nor a directory.

use super::BuildError;
use std::path::Path;

/// A `--exclude` pattern over `/`-separated relative paths: `*` and `?` within one component,
/// `**` for any number of components. Without a `/` it matches a name at any depth (as in
/// .gitignore); with one it is anchored at the root. A trailing `/` matches directories only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    segments: Vec<String>,
    dir_only: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, BuildError> {
        let bad = |message: &str| BuildError::BadPattern {
            pattern: pattern.to_string(),
            message: message.to_string(),
        };
        let dir_only = pattern.ends_with('/');
        let trimmed = pattern.trim_end_matches('/');
        let anchored = trimmed.contains('/');
        let trimmed = trimmed.trim_start_matches('/');
        if trimmed.is_empty() {
            return Err(bad("the pattern is empty"));
        }
        let mut segments: Vec<String> = Vec::new();
        if !anchored {
            segments.push("**".into());
        }
        for s in trimmed.split('/') {
            match s {
                "" => return Err(bad("empty path component (`//`)")),
                "." | ".." => return Err(bad("`.` and `..` are not allowed")),
                s if s.contains("**") && s != "**" => {
                    return Err(bad("`**` must be a whole path component, as in `a/**/b`"));
                }
                s => segments.push(s.to_string()),
            }
        }
        Ok(Glob {
            pattern: pattern.to_string(),
            segments,
            dir_only,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` (relative, `/`-separated) matches.
    pub fn matches(&self, path: &str, is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let pat: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        match_segments(&pat, &parts)
    }
}

fn match_segments(pat: &[&str], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| match_segments(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            Some((name, tail)) => {
                match_name(p.as_bytes(), name.as_bytes()) && match_segments(rest, tail)
            }
            None => false,
        },
    }
}

/// `*` and `?` over one component, on bytes: names are UTF-8, and `?` matching one byte of a
/// multi-byte character is a corner nobody relies on in an exclude list.
fn match_name(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// What goes into the layer.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Keep paths with a component starting with `.` (left out by default: `.git`, editor files).
    pub include_hidden: bool,
    pub exclude: Vec<Glob>,
}

impl Filter {
    fn keeps(&self, name: &str, rel: &str, is_dir: bool) -> bool {
        if !self.include_hidden && name.starts_with('.') {
            return false;
        }
        !self.exclude.iter().any(|g| g.matches(rel, is_dir))
    }
}

/// One entry of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated, without a trailing `/`.
    pub path: String,
    /// `None` for a directory.
    pub size: Option<u64>,
    /// What tells a changed file from an unchanged one without reading it, as git's index does:
    /// modification and status-change times (ns), inode and mode. The status-change time
    /// cannot be set back by a tool, so an edit that restores the mtime still shows. Zero for
    /// directories (their content is their entries).
    pub changed: [i64; 4],
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.size.is_none()
    }
}

/// Walks `dir` and lists what the layer will hold, sorted by path bytes. Refuses anything but
/// regular files and directories among the kept paths, naming it.
pub fn collect(dir: &Path, filter: &Filter) -> Result<Vec<Entry>, BuildError> {
    let meta = std::fs::metadata(dir).map_err(|source| BuildError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(BuildError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let read = std::fs::read_dir(&abs).map_err(|source| BuildError::Read {
            path: abs.clone(),
            source,
        })?;
        for item in read {
            let item = item.map_err(|source| BuildError::Read {
                path: abs.clone(),
                source,
            })?;
            let path = item.path();
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                return Err(BuildError::NonUtf8 { path });
            };
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // Not followed: a symlink is reported as one.
            let ft = item.file_type().map_err(|source| BuildError::Read {
                path: path.clone(),
                source,
            })?;
            if !filter.keeps(&name, &child_rel, ft.is_dir()) {
                continue;
            }
            if ft.is_dir() {
                out.push(Entry {
                    path: child_rel.clone(),
                    size: None,
                    changed: [0; 4],
                });
                stack.push((path, child_rel));
            } else if ft.is_file() {
                let m = std::fs::symlink_metadata(&path).map_err(|source| BuildError::Read {
                    path: path.clone(),
                    source,
                })?;
                use std::os::unix::fs::MetadataExt;
                out.push(Entry {
                    path: child_rel,
                    size: Some(m.len()),
                    changed: [
                        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                        m.ino() as i64,
                        i64::from(m.mode()),
                    ],
                });
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(BuildError::Symlink { path, target });
            } else {
                return Err(BuildError::Special {
                    kind: special_kind(&ft),
                    path,
                });
            }
        }
    }
    if !out.iter().any(|e| !e.is_dir()) {
        return Err(BuildError::Empty {
            path: dir.to_path_buf(),
        });
    }
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(out)
}

fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "named pipe (fifo)"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}
