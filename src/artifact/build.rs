//! Builds a reproducible OCI image from a directory: one tar+gzip layer, one image config and
//! one manifest per platform, and an image index over them (docs/artifacts.md).
//!
//! Same content gives the same bytes whatever the mtimes, the on-disk order, the umask or the
//! owner: entries are sorted by path bytes, headers are written from nothing but the path, the
//! kind and the size, and the gzip backend, level and block size are pinned. The layer goes to a
//! file while both of its digests are computed, so memory stays flat whatever the size of the
//! tree.
//!
//! The gzip stream is compressed in parallel, as pigz does: the tar stream is cut into blocks of
//! `GZIP_BLOCK` bytes, each deflated on its own with the 32 KiB before it as preset dictionary and
//! ended with a sync flush (the last one with the final block), and the pieces are written in
//! order as one gzip member. Each piece depends only on its block and the one before, so the bytes
//! are the same whatever the number of threads; the stream is plain gzip for any reader.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";

/// The gzip level. Part of the digest: changing it (or the flate2 backend, pinned to zlib-rs in
/// Cargo.toml) changes every digest, and with it every "up to date" answer.
pub const GZIP_LEVEL: u32 = 6;

/// The tar stream is compressed in blocks of this size, in parallel (see the module doc). Part of
/// the digest, like the level; not the number of threads.
pub const GZIP_BLOCK: usize = 1 << 20;

/// The preset dictionary of each block: the end of the block before (deflate's window).
const GZIP_DICT: usize = 32 * 1024;

/// The gzip header: no name, mtime 0, no extra flags, OS 255 (unknown), as flate2's `GzBuilder`
/// writes it at this level.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Every entry's mtime. Fixed rather than taken from SOURCE_DATE_EPOCH, so that the layer (and
/// so the files' identity) does not depend on when it was built; the date is in `created`.
pub const ENTRY_MTIME: u64 = 0;

/// `created` when SOURCE_DATE_EPOCH is not set.
pub const DEFAULT_CREATED: &str = "1970-01-01T00:00:00Z";

/// Platforms the index lists. The content is architecture-independent, so every platform shares
/// the one layer; the index exists so each node's platform matcher finds its own entry.
pub const PLATFORMS: &[Platform] = &[
    Platform {
        os: "linux",
        architecture: "amd64",
    },
    Platform {
        os: "linux",
        architecture: "arm64",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub architecture: &'static str,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is a symbolic link (to {target:?}): only regular files and directories are packaged; replace it with what it points to, or leave it out with --exclude",
        path.display()
    )]
    Symlink { path: PathBuf, target: String },
    #[error(
        "{} is a {kind}: only regular files and directories are packaged; leave it out with --exclude",
        path.display()
    )]
    Special { path: PathBuf, kind: &'static str },
    #[error("{}: the name is not valid UTF-8; rename it", path.display())]
    NonUtf8 { path: PathBuf },
    #[error(
        "nothing to push: {} has no files once hidden files and --exclude patterns are left out",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error("{} changed while it was being packaged; run again", path.display())]
    Changed { path: PathBuf },
    #[error("cannot write the layer: {source}")]
    Write {
        #[source]
        source: io::Error,
    },
    #[error("invalid --exclude pattern {pattern:?}: {message}")]
    BadPattern { pattern: String, message: String },
    #[error("SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970")]
    BadEpoch { value: String },
}

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

/// The layer as written: its two digests and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// sha256 of the gzip bytes: the manifest's layer digest.
    pub digest: String,
    /// sha256 of the uncompressed tar: the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Bytes of the gzip stream.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    pub files: usize,
    /// Sum of the files' sizes.
    pub file_bytes: u64,
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }
    fn finish(self) -> (String, u64, W) {
        (
            format!("sha256:{}", hex::encode(self.hash.finalize())),
            self.count,
            self.inner,
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Yields exactly `left` bytes of a file, or fails: a file that grew or shrank since it was
/// listed would otherwise give a tar whose header and data disagree.
struct Exact<R> {
    inner: R,
    left: u64,
    changed: bool,
    error: Option<io::Error>,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let fail = |this: &mut Self, e: Option<io::Error>| {
            this.changed = e.is_none();
            this.error = e;
            Err(io::Error::other("source file unreadable or changed"))
        };
        if self.left == 0 {
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one) {
                Ok(0) => Ok(0),
                Ok(_) => fail(self, None),
                Err(e) => fail(self, Some(e)),
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        match self.inner.read(&mut buf[..max]) {
            Ok(0) => fail(self, None),
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) => fail(self, Some(e)),
        }
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(ENTRY_MTIME);
    h.set_size(size);
    // new_gnu leaves the names zeroed; set them anyway so that a change of default in the
    // crate cannot leak the builder's user into the digest.
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

/// Writes the layer for `entries` (from `collect`) of `dir` into `out`, hashing the tar and the
/// gzip streams in the same pass. Returns the layer and `out`.
///
/// Threads: this one reads the files and writes and hashes the tar; compressors deflate its
/// blocks (one per core); a writer puts the pieces in order, hashes and writes them. At most
/// `2 * compressors + 2` blocks are in flight, so memory stays a few MiB.
pub fn write_layer<W: Write + Send>(
    dir: &Path,
    entries: &[Entry],
    out: W,
) -> Result<(Layer, W), BuildError> {
    let compressors = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    write_layer_with(dir, entries, out, compressors)
}

/// `write_layer` with a given number of compressing threads (the bytes do not depend on it).
fn write_layer_with<W: Write + Send>(
    dir: &Path,
    entries: &[Entry],
    out: W,
    compressors: usize,
) -> Result<(Layer, W), BuildError> {
    let werr = |source| BuildError::Write { source };
    let in_flight = 2 * compressors + 2;
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Block>(in_flight);
    let job_rx = std::sync::Mutex::new(job_rx);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Deflated>();
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        for _ in 0..compressors {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || compress_blocks(job_rx, done_tx));
        }
        drop(done_tx);
        let writer = scope.spawn(move || write_blocks(out, done_rx, free_tx));
        let blocks = Blocks {
            jobs: job_tx,
            free: free_rx,
            buf: Vec::new(),
            dict: Vec::new(),
            seq: 0,
            allocated: 0,
            in_flight,
        };
        let produced = write_tar(dir, entries, Hashing::new(blocks));
        // On error the channels close as `produced` is dropped: the threads stop and the
        // reader's error is the one reported.
        let (tar_layer, hashing) = produced?;
        let (diff_id, tar_size, blocks) = hashing.finish();
        blocks.finish().map_err(werr)?;
        let (digest, size, out) = writer
            .join()
            .expect("the layer writer does not panic")
            .map_err(werr)?;
        Ok((
            Layer {
                digest,
                diff_id,
                size,
                tar_size,
                files: tar_layer.0,
                file_bytes: tar_layer.1,
            },
            out,
        ))
    })
}

/// Writes the tar of `entries` into `out`; returns (files, bytes of files) and `out`.
fn write_tar<W: Write>(
    dir: &Path,
    entries: &[Entry],
    out: W,
) -> Result<((usize, u64), W), BuildError> {
    let werr = |source| BuildError::Write { source };
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let (mut files, mut file_bytes) = (0usize, 0u64);
    for e in entries {
        match e.size {
            None => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, format!("{}/", e.path), io::empty())
                    .map_err(werr)?;
            }
            Some(size) => {
                let path = dir.join(&e.path);
                let file = std::fs::File::open(&path).map_err(|source| BuildError::Read {
                    path: path.clone(),
                    source,
                })?;
                // Re-checked on the open handle: the tree may have changed since `collect`.
                let m = file.metadata().map_err(|source| BuildError::Read {
                    path: path.clone(),
                    source,
                })?;
                if !m.is_file() || m.len() != size {
                    return Err(BuildError::Changed { path });
                }
                let mut h = header(tar::EntryType::Regular, 0o644, size);
                // Most resource files fit in one read (and the end-of-file check in a second).
                let cap = (size as usize).clamp(8 * 1024, 256 * 1024) + 1;
                let mut src = Exact {
                    inner: io::BufReader::with_capacity(cap, file),
                    left: size,
                    changed: false,
                    error: None,
                };
                if let Err(e) = tar.append_data(&mut h, &e.path, &mut src) {
                    return Err(if src.changed {
                        BuildError::Changed { path }
                    } else if let Some(source) = src.error {
                        BuildError::Read { path, source }
                    } else {
                        werr(e)
                    });
                }
                files += 1;
                file_bytes += size;
                crate::progress::PACKED.add(1, size);
            }
        }
    }
    let out = tar.into_inner().map_err(werr)?;
    Ok(((files, file_bytes), out))
}

/// One block of the tar stream, to deflate.
struct Block {
    seq: u64,
    /// The 32 KiB of the stream before `data` (empty for the first block).
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

/// A deflated block: raw deflate ending on a byte boundary (sync flush), or the final block.
struct Deflated {
    seq: u64,
    last: bool,
    data: Vec<u8>,
    deflated: io::Result<Vec<u8>>,
    crc: flate2::Crc,
}

/// The tar side: cuts what it is given into `GZIP_BLOCK`s and hands them to the compressors,
/// reusing the buffers the writer sends back.
struct Blocks {
    jobs: std::sync::mpsc::SyncSender<Block>,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    dict: Vec<u8>,
    seq: u64,
    allocated: usize,
    in_flight: usize,
}

fn gone() -> io::Error {
    io::Error::other("the layer writer stopped")
}

impl Blocks {
    fn send(&mut self, last: bool) -> io::Result<()> {
        let next = if last {
            Vec::new()
        } else if self.allocated < self.in_flight {
            self.allocated += 1;
            Vec::with_capacity(GZIP_BLOCK)
        } else {
            // Blocks only when `in_flight` blocks are queued, deflating or waiting to be written.
            let mut b = self.free.recv().map_err(|_| gone())?;
            b.clear();
            b
        };
        let data = std::mem::replace(&mut self.buf, next);
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(GZIP_DICT)..].to_vec();
        let block = Block {
            seq: self.seq,
            dict,
            data,
            last,
        };
        self.seq += 1;
        self.jobs.send(block).map_err(|_| gone())
    }

    /// Sends what is left as the final block (possibly empty: it still ends the stream).
    fn finish(mut self) -> io::Result<()> {
        self.send(true)
    }
}

impl Write for Blocks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.allocated += 1;
            self.buf.reserve_exact(GZIP_BLOCK);
        }
        let n = data.len().min(GZIP_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZIP_BLOCK {
            self.send(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compress_blocks(
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<Block>>,
    done: std::sync::mpsc::Sender<Deflated>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut crc = flate2::Crc::new();
        crc.update(&job.data);
        let deflated = deflate_block(&job.dict, &job.data, job.last);
        let out = Deflated {
            seq: job.seq,
            last: job.last,
            data: job.data,
            deflated,
            crc,
        };
        if done.send(out).is_err() {
            return;
        }
    }
}

/// Raw deflate of `data` with `dict` as preset dictionary, ending with a sync flush (byte
/// aligned, not final) or, for the last block, with the final block.
fn deflate_block(dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    use flate2::{FlushCompress, Status};
    // A new compressor for every block: a reset one does not always give the same bytes (zlib-rs
    // 0.6 at level 6, seen here), and the bytes must not depend on which thread had which block
    // before. Its allocation is noise next to deflating 1 MiB.
    let mut c = flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete once all input is in and there was room left.
            Status::Ok | Status::BufError => {
                !last && input.is_empty() && out.len() < out.capacity()
            }
        };
        if done {
            return Ok(out);
        }
    }
}

/// Writes the deflated blocks in order between the gzip header and trailer, hashing them;
/// returns the gzip stream's digest and size, and `out`. Sends each block's buffer back.
fn write_blocks<W: Write>(
    out: W,
    done: std::sync::mpsc::Receiver<Deflated>,
    free: std::sync::mpsc::Sender<Vec<u8>>,
) -> io::Result<(String, u64, W)> {
    let mut out = Hashing::new(out);
    out.write_all(&GZIP_HEADER)?;
    let mut crc = flate2::Crc::new();
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    let mut ended = false;
    for d in done.iter() {
        waiting.insert(d.seq, d);
        while let Some(d) = waiting.remove(&next) {
            out.write_all(&d.deflated?)?;
            crc.combine(&d.crc);
            // The tar side may be gone already (it stopped on an error, or sent its last block).
            let _ = free.send(d.data);
            next += 1;
            ended = d.last;
        }
    }
    if !ended {
        // The tar side stopped before its last block; its error is the one reported.
        return Err(gone());
    }
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    let (digest, size, mut out) = out.finish();
    out.flush()?;
    Ok((digest, size, out))
}

/// What goes into the configs and manifests besides the layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// RFC 3339, UTC.
    pub created: String,
    /// Manifest and index annotations (`created` included).
    pub annotations: BTreeMap<String, String>,
}

/// `created` from SOURCE_DATE_EPOCH (reproducible-builds.org), or 1970-01-01T00:00:00Z.
pub fn created_from_epoch(source_date_epoch: Option<&str>) -> Result<String, BuildError> {
    let Some(v) = source_date_epoch.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_CREATED.to_string());
    };
    let bad = || BuildError::BadEpoch {
        value: v.to_string(),
    };
    let secs: i64 = v.parse().map_err(|_| bad())?;
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or_else(bad)?;
    Ok(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The metadata for `dir`: title from its name, created from SOURCE_DATE_EPOCH, source and
/// revision from git when `dir` is in a repository (left out when git or the repository is
/// missing, or has no `origin`).
pub fn metadata(dir: &Path, source_date_epoch: Option<&str>) -> Result<Metadata, BuildError> {
    let created = created_from_epoch(source_date_epoch)?;
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_CREATED.to_string(), created.clone());
    let title = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(t) = title {
        annotations.insert(ANNOTATION_TITLE.to_string(), t);
    }
    if let Some(rev) = git(dir, &["rev-parse", "HEAD"]) {
        annotations.insert(ANNOTATION_REVISION.to_string(), rev);
        if let Some(url) = git(dir, &["config", "--get", "remote.origin.url"]) {
            annotations.insert(ANNOTATION_SOURCE.to_string(), strip_userinfo(&url));
        }
    }
    Ok(Metadata {
        created,
        annotations,
    })
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// A remote URL may carry a token (`https://user:token@host/...`): it would end up in every
/// pull's annotations.
pub fn strip_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    url.to_string()
}

/// A blob held in memory (configs, manifests, the index), with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: &'static str,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn json(media_type: &'static str, v: &Value) -> Blob {
        // serde_json's map keeps keys sorted: the same value always gives the same bytes.
        let bytes = serde_json::to_vec(v).expect("JSON values serialize");
        Blob {
            media_type,
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// An OCI descriptor of this blob.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One platform's config and manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformImage {
    pub platform: Platform,
    pub config: Blob,
    pub manifest: Blob,
}

/// Everything but the layer's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub layer: Layer,
    pub platforms: Vec<PlatformImage>,
    /// What a tag points at; its digest is the one to pin.
    pub index: Blob,
}

impl Image {
    /// The small blobs, in upload order: configs before the manifests that name them.
    pub fn configs(&self) -> impl Iterator<Item = &Blob> {
        self.platforms.iter().map(|p| &p.config)
    }
}

/// Builds the configs, manifests and index for a layer (pure).
pub fn image(layer: &Layer, meta: &Metadata) -> Image {
    let layer_desc =
        json!({"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size});
    let platforms: Vec<PlatformImage> = PLATFORMS
        .iter()
        .map(|p| {
            let config = Blob::json(
                CONFIG_MEDIA_TYPE,
                &json!({
                    "architecture": p.architecture,
                    "os": p.os,
                    "created": meta.created,
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
                }),
            );
            let manifest = Blob::json(
                MANIFEST_MEDIA_TYPE,
                &json!({
                    "schemaVersion": 2,
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "config": config.descriptor(),
                    "layers": [layer_desc],
                    "annotations": meta.annotations,
                }),
            );
            PlatformImage {
                platform: *p,
                config,
                manifest,
            }
        })
        .collect();
    let manifests: Vec<Value> = platforms
        .iter()
        .map(|p| {
            let mut d = p.manifest.descriptor();
            d["platform"] = json!({"architecture": p.platform.architecture, "os": p.platform.os});
            d
        })
        .collect();
    let index = Blob::json(
        INDEX_MEDIA_TYPE,
        &json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
            "annotations": meta.annotations,
        }),
    );
    Image {
        layer: layer.clone(),
        platforms,
        index,
    }
}

/// A built image whose layer waits in a temporary file (removed when dropped).
#[derive(Debug)]
pub struct Built {
    pub image: Image,
    pub layer_file: tempfile::NamedTempFile,
}

/// Writes the layer of `entries` into a temporary file in `temp_dir` and builds the image.
pub fn build(
    dir: &Path,
    entries: &[Entry],
    meta: &Metadata,
    temp_dir: &Path,
) -> Result<Built, BuildError> {
    let tmp = tempfile::Builder::new()
        .prefix(".perses-oci-layer-")
        .tempfile_in(temp_dir)
        .map_err(|source| BuildError::Write { source })?;
    let writer = io::BufWriter::new(
        tmp.reopen()
            .map_err(|source| BuildError::Write { source })?,
    );
    let (layer, writer) = write_layer(dir, entries, writer)?;
    writer.into_inner().map_err(|e| BuildError::Write {
        source: e.into_error(),
    })?;
    // Not synced: for a registry the file is read back and deleted, and an OCI layout syncs
    // it before renaming it into place (`Layout::put_blob_file`).
    Ok(Built {
        image: image(&layer, meta),
        layer_file: tmp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn glob(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob("*.md").matches("README.md", false));
        assert!(glob("*.md").matches("a/b/README.md", false));
        assert!(!glob("*.md").matches("README.mdx", false));
        assert!(glob("prod/*.json").matches("prod/a.json", false));
        assert!(!glob("prod/*.json").matches("x/prod/a.json", false));
        assert!(!glob("prod/*.json").matches("prod/sub/a.json", false));
        assert!(glob("prod/**/*.json").matches("prod/a.json", false));
        assert!(glob("prod/**/*.json").matches("prod/x/y/a.json", false));
        assert!(glob("**/tmp").matches("a/tmp", true));
        assert!(glob("/tmp").matches("tmp", true));
        assert!(!glob("/tmp").matches("a/tmp", true));
        assert!(glob("da?h*.json").matches("dash-1.json", false));
        assert!(!glob("da?h*.json").matches("dsh.json", false));
        assert!(glob("drafts/").matches("x/drafts", true));
        assert!(!glob("drafts/").matches("x/drafts", false));
        assert!(glob("*").matches("anything", false));
        assert!(glob("a*b*c").matches("aXbYbc", false));
        assert!(!glob("a*b*c").matches("aXbYbd", false));
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a/../b").is_err());
        assert!(Glob::new("a**").is_err());
    }

    #[test]
    fn epochs() {
        assert_eq!(created_from_epoch(None).unwrap(), DEFAULT_CREATED);
        assert_eq!(created_from_epoch(Some("")).unwrap(), DEFAULT_CREATED);
        assert_eq!(
            created_from_epoch(Some("1700000000")).unwrap(),
            "2023-11-14T22:13:20Z"
        );
        assert!(created_from_epoch(Some("yesterday")).is_err());
    }

    #[test]
    fn git_revision_and_source_when_in_a_repository() {
        let d = tempfile::tempdir().unwrap();
        let res = d.path().join("resources");
        std::fs::create_dir(&res).unwrap();
        let meta = metadata(&res, None).unwrap();
        assert_eq!(
            meta.annotations.get(ANNOTATION_TITLE).map(String::as_str),
            Some("resources")
        );
        assert!(!meta.annotations.contains_key(ANNOTATION_REVISION));
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(d.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["commit", "-q", "--allow-empty", "-m", "x"]);
        let meta = metadata(&res, Some("0")).unwrap();
        let rev = meta.annotations.get(ANNOTATION_REVISION).expect("revision");
        assert_eq!(rev.len(), 40);
        assert!(
            !meta.annotations.contains_key(ANNOTATION_SOURCE),
            "no origin yet"
        );
        git(&[
            "remote",
            "add",
            "origin",
            "https://bot:s3cret@git.example.com/team/res.git",
        ]);
        let meta = metadata(&res, None).unwrap();
        assert_eq!(
            meta.annotations.get(ANNOTATION_SOURCE).map(String::as_str),
            Some("https://git.example.com/team/res.git")
        );
    }

    #[test]
    fn userinfo_is_dropped() {
        assert_eq!(
            strip_userinfo("https://bot:ghp_secret@github.com/org/repo.git"),
            "https://github.com/org/repo.git"
        );
        assert_eq!(
            strip_userinfo("git@github.com:org/repo.git"),
            "git@github.com:org/repo.git"
        );
        assert_eq!(
            strip_userinfo("https://github.com/org/repo"),
            "https://github.com/org/repo"
        );
    }

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn layer_of(root: &Path, filter: &Filter) -> (Layer, Vec<u8>) {
        let entries = collect(root, filter).unwrap();
        write_layer(root, &entries, Vec::new()).unwrap()
    }

    #[test]
    fn same_content_same_digest_whatever_mtime_order_and_mode() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let files = [
            ("prod/dash.json", &b"{\"kind\":\"Dashboard\"}"[..]),
            ("prod/sub/ds.yaml", b"kind: Datasource\n"),
            ("staging/x.json", b"{}"),
            ("top.json", b"[]"),
        ];
        for (p, d) in files {
            write(a.path(), p, d);
        }
        for (p, d) in files.iter().rev() {
            write(b.path(), p, d);
        }
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let f = std::fs::File::options()
            .write(true)
            .open(b.path().join("top.json"))
            .unwrap();
        f.set_modified(old).unwrap();
        std::fs::set_permissions(
            b.path().join("prod/dash.json"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let (la, ba) = layer_of(a.path(), &Filter::default());
        let (lb, bb) = layer_of(b.path(), &Filter::default());
        assert_eq!(la, lb);
        assert_eq!(ba, bb);
        assert_eq!(la.files, 4);
        assert_eq!(la.digest, sha256_digest(&ba));
        let meta = Metadata {
            created: DEFAULT_CREATED.into(),
            annotations: BTreeMap::new(),
        };
        assert_eq!(image(&la, &meta), image(&lb, &meta));
    }

    #[test]
    fn layer_entries_are_normalized_and_sorted() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "b/x.json", b"1");
        write(d.path(), "a-b.json", b"22");
        write(d.path(), "a/y.json", b"333");
        write(d.path(), ".git/config", b"secret");
        write(d.path(), "a/.hidden.json", b"h");
        let (layer, bytes) = layer_of(d.path(), &Filter::default());
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(sha256_digest(&raw), layer.diff_id);
        assert_eq!(raw.len() as u64, layer.tar_size);
        let mut ar = tar::Archive::new(&raw[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.uid().unwrap(), 0);
            assert_eq!(h.gid().unwrap(), 0);
            assert_eq!(h.mtime().unwrap(), ENTRY_MTIME);
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            let mode = h.mode().unwrap();
            let kind = h.entry_type();
            seen.push((
                String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                kind.is_dir(),
                mode,
            ));
        }
        assert_eq!(
            seen,
            vec![
                // Path bytes: '-' sorts before '/'; a directory still precedes its content.
                ("a/".to_string(), true, 0o755),
                ("a-b.json".to_string(), false, 0o644),
                ("a/y.json".to_string(), false, 0o644),
                ("b/".to_string(), true, 0o755),
                ("b/x.json".to_string(), false, 0o644),
            ]
        );
    }

    /// A tree of `files` JSON-ish files of ~67 KiB: compressible, with a pseudo-random part so
    /// that not everything is a match, and matches that cross the block boundaries.
    fn blocky_tree(files: usize) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let mut x = 1u64;
        for i in 0..files {
            let mut s = String::new();
            for j in 0..1500 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(&format!(
                    "{{\"panel\":{j},\"query\":\"rate(x[{}m])\"}}\n",
                    x >> 58
                ));
            }
            write(d.path(), &format!("d/{i:03}.json"), s.as_bytes());
        }
        d
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        // GzDecoder reads the first member only: getting the whole tar from it shows that the
        // blocks make one member.
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .unwrap();
        raw
    }

    #[test]
    fn blocks_make_one_gzip_stream_whatever_the_number_of_threads() {
        let d = blocky_tree(40);
        let entries = collect(d.path(), &Filter::default()).unwrap();
        let (one, bytes) = write_layer_with(d.path(), &entries, Vec::new(), 1).unwrap();
        assert!(one.tar_size > 2 * GZIP_BLOCK as u64, "{}", one.tar_size);
        for n in [2, 3, 8] {
            let (l, b) = write_layer_with(d.path(), &entries, Vec::new(), n).unwrap();
            assert_eq!(l, one, "{n} threads");
            assert!(b == bytes, "{n} threads: other bytes");
        }
        assert_eq!(one.digest, sha256_digest(&bytes));
        assert_eq!(one.size, bytes.len() as u64);
        assert_eq!(bytes[..10], GZIP_HEADER);
        let raw = gunzip(&bytes);
        assert_eq!(raw.len() as u64, one.tar_size);
        assert_eq!(sha256_digest(&raw), one.diff_id);
        // Blocks with preset dictionaries compress about as well as one stream.
        let mut whole =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
        whole.write_all(&raw).unwrap();
        let whole = whole.finish().unwrap();
        assert!(
            bytes.len() <= whole.len() + whole.len() / 100 + 64,
            "{} vs {}",
            bytes.len(),
            whole.len()
        );
    }

    #[test]
    fn a_tar_of_exactly_one_block_ends_with_an_empty_final_block() {
        let d = tempfile::tempdir().unwrap();
        // 512 (header) + 1,047,040 (data, a multiple of 512) + 1024 (end of archive) = 1 MiB.
        write(d.path(), "f.json", &vec![b'x'; 1_047_040]);
        let entries = collect(d.path(), &Filter::default()).unwrap();
        let (layer, bytes) = write_layer_with(d.path(), &entries, Vec::new(), 2).unwrap();
        assert_eq!(layer.tar_size, GZIP_BLOCK as u64);
        let raw = gunzip(&bytes);
        assert_eq!(sha256_digest(&raw), layer.diff_id);
    }

    #[test]
    fn a_file_gone_midway_fails_the_build_without_hanging() {
        let d = blocky_tree(40);
        let entries = collect(d.path(), &Filter::default()).unwrap();
        std::fs::remove_file(d.path().join("d/035.json")).unwrap();
        for n in [1, 2] {
            match write_layer_with(d.path(), &entries, Vec::new(), n) {
                Err(BuildError::Read { path, .. }) => assert!(path.ends_with("d/035.json")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn hidden_and_excluded_paths_are_left_out() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "prod/a.json", b"1");
        write(d.path(), "prod/README.md", b"doc");
        write(d.path(), "drafts/b.json", b"2");
        write(d.path(), ".git/HEAD", b"ref");
        let filter = Filter {
            include_hidden: false,
            exclude: vec![glob("*.md"), glob("drafts/")],
        };
        let paths: Vec<String> = collect(d.path(), &filter)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, vec!["prod", "prod/a.json"]);
        let all = Filter {
            include_hidden: true,
            exclude: vec![],
        };
        let paths: Vec<String> = collect(d.path(), &all)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert!(paths.contains(&".git/HEAD".to_string()));
    }

    #[test]
    fn symlinks_and_fifos_are_refused_unless_excluded() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "prod/a.json", b"1");
        std::os::unix::fs::symlink("a.json", d.path().join("prod/link.json")).unwrap();
        let e = collect(d.path(), &Filter::default()).unwrap_err();
        assert!(matches!(e, BuildError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("prod/link.json"), "{e}");
        let filter = Filter {
            include_hidden: false,
            exclude: vec![glob("link.json")],
        };
        assert_eq!(collect(d.path(), &filter).unwrap().len(), 2);
        let st = std::process::Command::new("mkfifo")
            .arg(d.path().join("prod/pipe"))
            .status();
        if st.is_ok_and(|s| s.success()) {
            let e = collect(d.path(), &filter).unwrap_err();
            assert!(e.to_string().contains("fifo"), "{e}");
        }
    }

    #[test]
    fn an_empty_tree_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("empty")).unwrap();
        write(d.path(), ".hidden", b"x");
        let e = collect(d.path(), &Filter::default()).unwrap_err();
        assert!(matches!(e, BuildError::Empty { .. }), "{e}");
    }

    #[test]
    fn long_paths_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.json", "d".repeat(120), "f".repeat(150));
        write(d.path(), &long, b"{}");
        let (_, bytes) = layer_of(d.path(), &Filter::default());
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().to_vec()).unwrap())
            .collect();
        assert_eq!(names, vec![format!("{}/", "d".repeat(120)), long]);
    }

    #[test]
    fn the_index_lists_both_platforms_over_one_layer() {
        let layer = Layer {
            digest: "sha256:aa".into(),
            diff_id: "sha256:bb".into(),
            size: 10,
            tar_size: 20,
            files: 1,
            file_bytes: 2,
        };
        let mut meta = Metadata {
            created: DEFAULT_CREATED.into(),
            annotations: BTreeMap::new(),
        };
        meta.annotations
            .insert(ANNOTATION_CREATED.into(), DEFAULT_CREATED.into());
        let img = image(&layer, &meta);
        let index: Value = serde_json::from_slice(&img.index.bytes).unwrap();
        let plats: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap(),
                    m["platform"]["architecture"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(plats, vec!["linux/amd64", "linux/arm64"]);
        for p in &img.platforms {
            let m: Value = serde_json::from_slice(&p.manifest.bytes).unwrap();
            assert_eq!(m["layers"][0]["digest"], "sha256:aa");
            assert_eq!(m["config"]["digest"], p.config.digest);
            let c: Value = serde_json::from_slice(&p.config.bytes).unwrap();
            assert_eq!(c["rootfs"]["diff_ids"][0], "sha256:bb");
            assert_eq!(c["architecture"], p.platform.architecture);
            assert_eq!(c["created"], DEFAULT_CREATED);
        }
        assert_eq!(index["annotations"][ANNOTATION_CREATED], DEFAULT_CREATED);
        assert_eq!(img.index.digest, sha256_digest(&img.index.bytes));
    }
}
