//! The layer's tar stream: entries in the order `collect` gave, headers from nothing but the
//! path, the kind and the size, and each file read exactly as it was listed.

use super::{BuildError, ENTRY_MTIME, Entry};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::path::Path;

/// A writer that hashes and counts what passes through.
pub(super) struct Hashing<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> Hashing<W> {
    pub(super) fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }
    pub(super) fn finish(self) -> (String, u64, W) {
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

/// Writes the tar of `entries` into `out`; returns (files, bytes of files) and `out`.
pub(super) fn write_tar<W: Write>(
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
