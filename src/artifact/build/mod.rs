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

mod archive;
mod collect;
mod image;
mod layer;
mod metadata;
#[cfg(test)]
mod tests;

pub use collect::{Entry, Filter, Glob, collect};
pub use image::{Blob, Image, PlatformImage, image, sha256_digest};
pub use layer::{Layer, write_layer};
pub use metadata::{Metadata, created_from_epoch, metadata, strip_userinfo};

use std::io;
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
