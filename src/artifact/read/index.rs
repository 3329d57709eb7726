//! An image indexed rather than held: each file's sha256 and size, with the layers kept as files
//! so that the few files a diff needs are read again (their blob checked again).

use super::blobs::Source;
use super::layer::{Acc, Compressed, LayerInfo, StopFlag, normalize, read_layer_with};
use super::manifest::resolve;
use super::{Limits, ReadError, Tree};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::rc::Rc;

/// Sees the bytes of a file while an image is indexed: `(position, path, bytes)`, the position
/// as `FileMeta::position` gives it. A later layer (or a later entry of one) may replace or
/// remove the file: keep only what the index's final `FileMeta` names. Until the index
/// returns, the layer holding the bytes is not yet checked against its digest.
pub type Visit = dyn FnMut((usize, usize), &str, Vec<u8>) + Send;

/// Which files a visit gets: those the predicate takes (by path).
pub type VisitFilter = dyn Fn(&str) -> bool + Send + Sync;

/// `read_from`, keeping each file's sha256 and size instead of its bytes.
pub(super) async fn index_from(
    src: &Source,
    top: Vec<u8>,
    top_digest: String,
    top_hint: Option<String>,
    limits: Limits,
) -> Result<Indexed, ReadError> {
    index_from_visiting(src, top, top_digest, top_hint, limits, None).await
}

/// `index_from`, handing the bytes of the files `visit` wants to it on the way (one pass over
/// the layers serves the index and, say, a lint).
pub(super) async fn index_from_visiting(
    src: &Source,
    top: Vec<u8>,
    top_digest: String,
    top_hint: Option<String>,
    limits: Limits,
    mut visit: Option<(Box<Visit>, std::sync::Arc<VisitFilter>)>,
) -> Result<Indexed, ReadError> {
    let (mut tree, infos) = resolve(src, top, top_digest, top_hint).await?;
    let mut acc: Acc<FileMeta> = Acc::new(src.name(), limits.max_bytes);
    let mut layers = Vec::with_capacity(infos.len());
    for (i, info) in infos.into_iter().enumerate() {
        let file = src.layer_file(&info).await?;
        let input = rewound(src.name(), &file, &info)?;
        let job_info = info.clone();
        let mut job_visit = visit.take();
        let (next_acc, back) = tokio::task::spawn_blocking(move || {
            // One buffer for every file: a large tree's allocations churn the allocator's pages.
            let mut buf = vec![0u8; 64 << 10];
            let mut hash =
                |entry: usize, path: &str, r: &mut dyn Read, size: u64| match &mut job_visit {
                    Some((f, wanted)) if wanted(path) => {
                        let mut data = Vec::with_capacity(size.min(64 << 20) as usize);
                        r.read_to_end(&mut data)?;
                        let meta = FileMeta {
                            sha256: Sha256::digest(&data).into(),
                            size: data.len() as u64,
                            layer: i,
                            entry,
                        };
                        f((i, entry), path, data);
                        Ok(meta)
                    }
                    _ => hash_entry(i, entry, r, &mut buf),
                };
            let result = read_layer_with(
                io::BufReader::with_capacity(BUF, input),
                &job_info,
                &mut acc,
                &mut hash,
            );
            (result.map(|_| acc), job_visit)
        })
        .await
        .expect("the layer reader does not panic");
        acc = next_acc?;
        visit = back;
        layers.push((info, file));
    }
    tree.size = acc.files.values().map(|f| f.size).sum();
    tree.dirs = acc.dirs;
    Ok(Indexed {
        tree,
        files: acc.files,
        layers,
        limit: limits.max_bytes,
    })
}

/// Read buffer for layer files on disk.
pub(super) const BUF: usize = 256 << 10;

fn hash_entry(
    layer: usize,
    entry: usize,
    r: &mut dyn Read,
    buf: &mut [u8],
) -> io::Result<FileMeta> {
    let mut hash = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileMeta {
        sha256: hash.finalize().into(),
        size,
        layer,
        entry,
    })
}

/// A file of an indexed image: what it holds, and where to find it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub sha256: [u8; 32],
    pub size: u64,
    layer: usize,
    /// Position in its layer's tar stream, headers included: names can repeat in a stream.
    entry: usize,
}

impl FileMeta {
    /// Where the file is in the image: (layer, entry of the layer's tar stream), as a `Visit`
    /// is told.
    pub fn position(&self) -> (usize, usize) {
        (self.layer, self.entry)
    }

    /// The sha256 and size of bytes held elsewhere (a directory's file).
    pub fn of_bytes(bytes: &[u8]) -> FileMeta {
        FileMeta {
            sha256: Sha256::digest(bytes).into(),
            size: bytes.len() as u64,
            layer: 0,
            entry: 0,
        }
    }

    /// Same bytes, wherever they are.
    pub fn same_content(&self, other: &FileMeta) -> bool {
        self.sha256 == other.sha256 && self.size == other.size
    }
}

/// An image whose layers passed every check of `pull_tree`, held as files (a layout's blobs, or
/// anonymous temporary files for a registry) rather than in memory.
#[derive(Debug)]
pub struct Indexed {
    /// What describes the image; `files` is left empty (see `Indexed::files`).
    pub tree: Tree,
    /// Relative `/`-separated path -> sha256 and size, after whiteouts.
    pub files: BTreeMap<String, FileMeta>,
    layers: Vec<(LayerInfo, std::fs::File)>,
    limit: u64,
}

impl Indexed {
    /// Calls `each` with the path and bytes of each file of `paths` (paths of `files`), in the
    /// order of the layers, not of `paths`. Each layer is decompressed again only as far as its
    /// last wanted entry. A blob can be rewritten between two reads: each is checked against
    /// its digest again, after `each` has seen its files, so a caller keeps nothing it made of
    /// them when this returns an error.
    pub fn read_files<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        each: &mut dyn FnMut(&str, Vec<u8>),
    ) -> Result<(), ReadError> {
        let mut wanted = Vec::new();
        for p in paths {
            wanted.push((p, self.files.get(p).ok_or_else(|| self.changed(p))?));
        }
        self.read_entries(wanted, each)
    }

    /// `read_files` for files whose `FileMeta` the caller kept (taken out of `files`, say).
    pub fn read_entries<'a>(
        &self,
        wanted: impl IntoIterator<Item = (&'a str, &'a FileMeta)>,
        each: &mut dyn FnMut(&str, Vec<u8>),
    ) -> Result<(), ReadError> {
        let mut by_layer: BTreeMap<usize, BTreeMap<usize, (&str, &FileMeta)>> = BTreeMap::new();
        for (p, meta) in wanted {
            by_layer
                .entry(meta.layer)
                .or_default()
                .insert(meta.entry, (p, meta));
        }
        for (layer, mut wanted) in by_layer {
            let (info, file) = &self.layers[layer];
            let corrupt = |source: io::Error| ReadError::Corrupt {
                reference: self.tree.reference.clone(),
                layer: info.digest.clone(),
                source,
            };
            let first = wanted.values().next().map(|(p, _)| *p).unwrap_or_default();
            let stop: StopFlag = Rc::new(Cell::new(None));
            let mut compressed = Compressed {
                inner: io::BufReader::with_capacity(BUF, self.rewound_file(file, info)?),
                hash: Sha256::new(),
                count: 0,
                max: info.size,
                stop,
            };
            let read = (|| -> Result<(), ReadError> {
                let input: Box<dyn Read + '_> = if info.gzip {
                    Box::new(flate2::read::MultiGzDecoder::new(&mut compressed))
                } else {
                    Box::new(&mut compressed)
                };
                // The first read checked the size; this one may read other bytes.
                let mut ar = tar::Archive::new(input.take(self.limit));
                for (n, entry) in ar.entries().map_err(corrupt)?.enumerate() {
                    let Some((path, meta)) = wanted.remove(&n) else {
                        continue;
                    };
                    let mut entry = entry.map_err(corrupt)?;
                    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                    let mut data = Vec::with_capacity(meta.size as usize);
                    (&mut entry)
                        .take(meta.size + 1)
                        .read_to_end(&mut data)
                        .map_err(corrupt)?;
                    if normalize(&name).ok().flatten().as_deref() != Some(path)
                        || data.len() as u64 != meta.size
                    {
                        return Err(self.changed(path));
                    }
                    each(path, data);
                    if wanted.is_empty() {
                        return Ok(());
                    }
                }
                match wanted.values().next() {
                    Some((path, _)) => Err(self.changed(path)),
                    None => Ok(()),
                }
            })();
            // What was handed out is trusted because the blob still has the digest checked on
            // the first read (cheaper than a sha256 of every file: the blob is compressed).
            let drained = io::copy(&mut compressed, &mut io::sink());
            let digest = format!("sha256:{}", hex::encode(compressed.hash.finalize()));
            if drained.is_err() || compressed.count != info.size || digest != info.digest {
                return Err(self.changed(first));
            }
            read?;
        }
        Ok(())
    }

    fn changed(&self, path: &str) -> ReadError {
        ReadError::Changed {
            reference: self.tree.reference.clone(),
            path: path.to_string(),
        }
    }

    fn rewound_file(
        &self,
        file: &std::fs::File,
        info: &LayerInfo,
    ) -> Result<std::fs::File, ReadError> {
        rewound(&self.tree.reference, file, info)
    }
}

/// A handle on `file` at its start (handles share the offset: one reader at a time).
fn rewound(
    reference: &str,
    file: &std::fs::File,
    info: &LayerInfo,
) -> Result<std::fs::File, ReadError> {
    use std::io::Seek;
    let io_err = |source| ReadError::Io {
        reference: reference.to_string(),
        what: "layer",
        digest: info.digest.clone(),
        source,
    };
    let mut f = file.try_clone().map_err(io_err)?;
    f.rewind().map_err(io_err)?;
    Ok(f)
}
