//! One layer's tar stream read safely: the blob against its digest and size, the decompressed
//! cap, entry names and types, and whiteouts applied over the layers below.

use super::ReadError;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::ops::Bound;
use std::rc::Rc;

/// One layer to read.
#[derive(Debug, Clone)]
pub(super) struct LayerInfo {
    pub(super) digest: String,
    pub(super) size: u64,
    pub(super) media_type: String,
    pub(super) gzip: bool,
    pub(super) diff_id: Option<String>,
}

/// The tree so far, across layers: `V` is what is kept of a file (its bytes, or `FileMeta`).
#[derive(Debug)]
pub(super) struct Acc<V = Vec<u8>> {
    pub(super) reference: String,
    pub(super) limit: u64,
    /// Decompressed bytes read so far, all layers together.
    pub(super) total: u64,
    pub(super) files: BTreeMap<String, V>,
    pub(super) dirs: BTreeSet<String>,
}

impl<V> Default for Acc<V> {
    fn default() -> Self {
        Acc {
            reference: String::new(),
            limit: 0,
            total: 0,
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
        }
    }
}

impl<V> Acc<V> {
    pub(super) fn new(reference: &str, limit: u64) -> Acc<V> {
        Acc {
            reference: reference.to_string(),
            limit,
            ..Default::default()
        }
    }
}

/// Why a reader stopped on purpose (told apart from a decoding error after the fact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    TooLarge,
    BlobTooLong,
}

pub(super) type StopFlag = Rc<Cell<Option<Stop>>>;

/// Hashes and counts the compressed bytes; stops past the descriptor's size.
pub(super) struct Compressed<R> {
    pub(super) inner: R,
    pub(super) hash: Sha256,
    pub(super) count: u64,
    pub(super) max: u64,
    pub(super) stop: StopFlag,
}

impl<R: Read> Read for Compressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.max {
            self.stop.set(Some(Stop::BlobTooLong));
            return Err(io::Error::other(
                "the blob is longer than its descriptor says",
            ));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes and counts the decompressed bytes; stops past the cap.
struct Decompressed<R> {
    inner: R,
    hash: Sha256,
    total: u64,
    limit: u64,
    stop: StopFlag,
}

impl<R: Read> Read for Decompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > self.limit {
            self.stop.set(Some(Stop::TooLarge));
            return Err(io::Error::other("decompressed size cap reached"));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Entries of one layer, applied to the lower layers only once it is complete: a whiteout
/// hides what is below it, not what its own layer adds.
struct LayerEntries<V> {
    entries: Vec<(String, Option<V>)>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
}

impl<V> Default for LayerEntries<V> {
    fn default() -> Self {
        LayerEntries {
            entries: Vec::new(),
            whiteouts: Vec::new(),
            opaque: Vec::new(),
        }
    }
}

/// What `read_layer_with` keeps of a regular file: called with the entry's position in the
/// stream, its content and its size.
/// What a layer reader keeps of a regular file: called with the entry's position in the tar
/// stream, its normalised path, a reader of its bytes and its size.
type KeepFile<'a, V> = dyn FnMut(usize, &str, &mut dyn Read, u64) -> io::Result<V> + 'a;

pub(super) fn read_layer<R: Read>(
    input: R,
    info: &LayerInfo,
    acc: &mut Acc,
) -> Result<(), ReadError> {
    read_layer_with(input, info, acc, &mut |_, _, r, size| {
        let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
        r.read_to_end(&mut data)?;
        Ok(data)
    })
}

pub(super) fn read_layer_with<R: Read, V>(
    input: R,
    info: &LayerInfo,
    acc: &mut Acc<V>,
    keep: &mut KeepFile<'_, V>,
) -> Result<(), ReadError> {
    let stop: StopFlag = Rc::new(Cell::new(None));
    let mut compressed = Compressed {
        inner: input,
        hash: Sha256::new(),
        count: 0,
        max: info.size,
        stop: stop.clone(),
    };
    let result = if info.gzip {
        let mut gz = flate2::read::MultiGzDecoder::new(&mut compressed);
        read_tar(&mut gz, info, acc, &stop, keep)
    } else {
        read_tar(&mut compressed, info, acc, &stop, keep)
    };
    let too_large = || ReadError::TooLarge {
        reference: acc.reference.clone(),
        limit: acc.limit,
    };
    if stop.get() == Some(Stop::TooLarge) {
        return Err(too_large());
    }
    // Read what is left, so that a decoding error caused by a wrong blob is reported as the
    // wrong blob it is (bounded by the descriptor's size).
    let drained = io::copy(&mut compressed, &mut io::sink());
    let actual = format!("sha256:{}", hex::encode(compressed.hash.clone().finalize()));
    if stop.get() == Some(Stop::BlobTooLong) {
        return Err(ReadError::SizeMismatch {
            reference: acc.reference.clone(),
            what: "layer",
            digest: info.digest.clone(),
            expected: info.size,
            actual: "more".into(),
        });
    }
    if let Err(source) = drained {
        // The download itself failed (connection, or the client's own digest check).
        return Err(result.err().unwrap_or(ReadError::Corrupt {
            reference: acc.reference.clone(),
            layer: info.digest.clone(),
            source,
        }));
    }
    if compressed.count != info.size {
        return Err(ReadError::SizeMismatch {
            reference: acc.reference.clone(),
            what: "layer",
            digest: info.digest.clone(),
            expected: info.size,
            actual: compressed.count.to_string(),
        });
    }
    if actual != info.digest {
        return Err(ReadError::DigestMismatch {
            reference: acc.reference.clone(),
            what: "layer",
            expected: info.digest.clone(),
            actual,
        });
    }
    let (layer, diff) = result?;
    if let Some(expected) = &info.diff_id
        && *expected != diff
    {
        return Err(ReadError::DiffIdMismatch {
            reference: acc.reference.clone(),
            layer: info.digest.clone(),
            expected: expected.clone(),
            actual: diff,
        });
    }
    acc.apply(layer);
    Ok(())
}

/// Reads the tar stream of one layer; returns its entries and the digest of the whole stream.
fn read_tar<R: Read, V>(
    input: R,
    info: &LayerInfo,
    acc: &mut Acc<V>,
    stop: &StopFlag,
    keep: &mut KeepFile<'_, V>,
) -> Result<(LayerEntries<V>, String), ReadError> {
    let reference = acc.reference.clone();
    let layer = info.digest.clone();
    let limit = acc.limit;
    let corrupt = |source: io::Error| -> ReadError {
        if stop.get() == Some(Stop::TooLarge) {
            ReadError::TooLarge {
                reference: reference.clone(),
                limit,
            }
        } else {
            ReadError::Corrupt {
                reference: reference.clone(),
                layer: layer.clone(),
                source,
            }
        }
    };
    let mut dec = Decompressed {
        inner: input,
        hash: Sha256::new(),
        total: acc.total,
        limit: acc.limit,
        stop: stop.clone(),
    };
    let mut out = LayerEntries::default();
    // A layer over nothing goes straight into the tree: its whiteouts hide nothing, and the
    // entries of a large layer are not held twice (the caller drops the tree on an error).
    let direct = acc.files.is_empty() && acc.dirs.is_empty();
    {
        let mut ar = tar::Archive::new(&mut dec);
        for (n, entry) in ar.entries().map_err(&corrupt)?.enumerate() {
            let mut entry = entry.map_err(&corrupt)?;
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue;
            }
            let raw = entry.path_bytes().into_owned();
            let Ok(name) = String::from_utf8(raw.clone()) else {
                return Err(ReadError::NonUtf8 {
                    reference,
                    layer,
                    path: String::from_utf8_lossy(&raw).into_owned(),
                });
            };
            let path = match normalize(&name) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(reason) => {
                    return Err(ReadError::UnsafePath {
                        reference,
                        layer,
                        path: name,
                        reason,
                    });
                }
            };
            let (parent, base) = match path.rsplit_once('/') {
                Some((p, b)) => (p.to_string(), b),
                None => (String::new(), path.as_str()),
            };
            if let Some(hidden) = base.strip_prefix(".wh.") {
                if direct && hidden != "." && hidden != ".." && !hidden.is_empty() {
                    continue;
                }
                if hidden == ".wh..opq" {
                    out.opaque.push(parent);
                } else if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(ReadError::UnsafePath {
                        reference,
                        layer,
                        path: name,
                        reason: "is a whiteout of nothing",
                    });
                } else if parent.is_empty() {
                    out.whiteouts.push(hidden.to_string());
                } else {
                    out.whiteouts.push(format!("{parent}/{hidden}"));
                }
                continue;
            }
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.size();
                    let kept = keep(n, &path, &mut entry, size).map_err(&corrupt)?;
                    if direct {
                        acc.apply_entry(path, Some(kept));
                    } else {
                        out.entries.push((path, Some(kept)));
                    }
                }
                tar::EntryType::Directory if direct => acc.apply_entry(path, None),
                tar::EntryType::Directory => out.entries.push((path, None)),
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    return Err(ReadError::Link {
                        reference,
                        layer,
                        path,
                        kind: if kind == tar::EntryType::Symlink {
                            "symbolic link"
                        } else {
                            "hard link"
                        },
                        target,
                    });
                }
                other => {
                    let kind = match other {
                        tar::EntryType::Char => "character device".to_string(),
                        tar::EntryType::Block => "block device".to_string(),
                        tar::EntryType::Fifo => "fifo".to_string(),
                        tar::EntryType::GNUSparse => "sparse file".to_string(),
                        o => format!("type {:?}", o.as_byte() as char),
                    };
                    return Err(ReadError::Unsupported {
                        reference,
                        layer,
                        path,
                        kind,
                    });
                }
            }
        }
    }
    // The tar reader stops at the end-of-archive marker; the diff_id covers the whole stream.
    io::copy(&mut dec, &mut io::sink()).map_err(&corrupt)?;
    acc.total = dec.total;
    let diff = format!("sha256:{}", hex::encode(dec.hash.finalize()));
    Ok((out, diff))
}

/// A tar entry name made relative and clean: `./a//b/` -> `a/b`; `None` for the root itself.
pub(super) fn normalize(name: &str) -> Result<Option<String>, &'static str> {
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("goes up with `..`"),
            c => parts.push(c),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

fn remove_under<V>(map: &mut BTreeMap<String, V>, dir: &str) {
    // Keys under `dir/` sort between `dir/` and `dir0` ('0' follows '/').
    let keys: Vec<String> = map
        .range::<str, _>((
            Bound::Included(format!("{dir}/").as_str()),
            Bound::Excluded(format!("{dir}0").as_str()),
        ))
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        map.remove(&k);
    }
}

fn remove_under_set(set: &mut BTreeSet<String>, dir: &str) {
    let keys: Vec<String> = set
        .range::<str, _>((
            Bound::Included(format!("{dir}/").as_str()),
            Bound::Excluded(format!("{dir}0").as_str()),
        ))
        .cloned()
        .collect();
    for k in keys {
        set.remove(&k);
    }
}

impl<V> Acc<V> {
    fn clear_under(&mut self, dir: &str) {
        if dir.is_empty() {
            self.files.clear();
            self.dirs.clear();
        } else {
            remove_under(&mut self.files, dir);
            remove_under_set(&mut self.dirs, dir);
        }
    }

    /// Parents of `path` become directories, replacing files of the same name, as an
    /// extraction would.
    fn ensure_parents(&mut self, path: &str) {
        let mut cur = path;
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if !self.dirs.contains(parent) {
                self.files.remove(parent);
                self.dirs.insert(parent.to_string());
            }
            cur = parent;
        }
    }

    fn apply(&mut self, layer: LayerEntries<V>) {
        for dir in &layer.opaque {
            self.clear_under(dir);
        }
        for p in &layer.whiteouts {
            self.files.remove(p);
            self.dirs.remove(p);
            self.clear_under(p);
        }
        for (path, data) in layer.entries {
            self.apply_entry(path, data);
        }
    }

    fn apply_entry(&mut self, path: String, data: Option<V>) {
        self.ensure_parents(&path);
        match data {
            Some(d) => {
                if self.dirs.remove(&path) {
                    self.clear_under(&path);
                }
                self.files.insert(path, d);
            }
            None => {
                self.files.remove(&path);
                self.dirs.insert(path);
            }
        }
    }
}
