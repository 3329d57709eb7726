//! Reads an artifact back into memory, from a registry (`pull_tree`) or an OCI layout
//! (`read_layout`): the files of its linux image with the digests, annotations and sizes around
//! them. Used by inspect, and by lint, diff and plan.
//!
//! Artifacts are untrusted input. `pull_tree` and `read_layout` write nothing to disk: layers
//! are streamed through the decompressor and the tar reader straight into the in-memory tree.
//! `index_registry` and `index_layout` (for diffs of large trees) keep only each file's sha256
//! and size, and keep the layers as files to read again: a layout's blobs in place, a
//! registry's downloaded to anonymous temporary files (gone when closed), with the same checks.
//! Every blob is checked against its descriptor (digest and size), every layer's uncompressed
//! digest against the config's `diff_ids`, and the tree is handed out only when all checks
//! passed. Entry names must
//! be UTF-8 and relative without `..`; links (symbolic and hard) are refused outright, as are
//! devices and fifos: an image volume of Perses resources has no use for them, and refusing is
//! simpler to trust than resolving them. OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) are applied,
//! so images built in several layers read as they would mount. The decompressed size is capped
//! (4 GiB by default) and reading stops at the first byte past the cap.

mod blobs;
mod index;
mod layer;
mod manifest;
#[cfg(test)]
mod tests;

pub use index::{FileMeta, Indexed, Visit, VisitFilter};

use crate::artifact::layout::{Layout, LayoutError};
use crate::registry::{ImageName, Registry, RegistryError};
use blobs::Source;
use index::{index_from, index_from_visiting};
use layer::{Acc, LayerInfo, read_layer};
use manifest::{Desc, resolve};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

/// Default cap on the decompressed size of all layers together.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;
/// Overrides the cap (bytes, or with a K, M or G suffix for KiB, MiB, GiB).
pub const MAX_BYTES_ENV: &str = "PERSES_OCI_MAX_ARTIFACT_BYTES";
/// Manifests and configs larger than this are refused (the distribution spec's usual limit).
pub const MAX_JSON_BYTES: u64 = 4 << 20;
/// Images with more layers than this are refused before any layer is fetched: an artifact of
/// Perses resources has one, and every layer is a request and a pass over the tree.
pub const MAX_LAYERS: usize = 1000;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const GZIP_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];
const TAR_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
];

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{reference}: cannot fetch {what} {digest}: {message}")]
    Fetch {
        reference: String,
        what: &'static str,
        digest: String,
        message: String,
    },
    #[error("{reference}: cannot read {what} {digest}: {source}")]
    Io {
        reference: String,
        what: &'static str,
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("{reference}: {what} {digest} is not valid: {message}")]
    BadJson {
        reference: String,
        what: &'static str,
        digest: String,
        message: String,
    },
    #[error("{reference}: {what} {digest} has media type {media_type:?}: {message}")]
    MediaType {
        reference: String,
        what: &'static str,
        digest: String,
        media_type: String,
        message: &'static str,
    },
    #[error("{reference}: the index {digest} has no linux image (platforms: {platforms})")]
    NoPlatform {
        reference: String,
        digest: String,
        platforms: String,
    },
    #[error(
        "{reference}: {what} {expected} does not match its content (sha256 of the bytes is {actual}): corrupt or tampered blob"
    )]
    DigestMismatch {
        reference: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error(
        "{reference}: {what} {digest} is {actual} bytes where its descriptor says {expected}: corrupt or truncated blob"
    )]
    SizeMismatch {
        reference: String,
        what: &'static str,
        digest: String,
        expected: u64,
        actual: String,
    },
    #[error(
        "{reference}: layer {layer} decompresses to {actual}, but the image config's diff_id is {expected}"
    )]
    DiffIdMismatch {
        reference: String,
        layer: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{reference}: the layers decompress to more than {limit} bytes; stopped reading (a gzip bomb? to read larger artifacts set {MAX_BYTES_ENV})"
    )]
    TooLarge { reference: String, limit: u64 },
    #[error(
        "{reference}: {what} {digest} is {size} bytes; manifests and configs are read up to {MAX_JSON_BYTES}"
    )]
    JsonTooLarge {
        reference: String,
        what: &'static str,
        digest: String,
        size: u64,
    },
    #[error("{reference}: layer {layer}: entry {path:?} {reason}; refusing the artifact")]
    UnsafePath {
        reference: String,
        layer: String,
        path: String,
        reason: &'static str,
    },
    #[error(
        "{reference}: layer {layer}: {path:?} is a {kind} to {target:?}; links are refused in artifacts (only regular files and directories)"
    )]
    Link {
        reference: String,
        layer: String,
        path: String,
        kind: &'static str,
        target: String,
    },
    #[error(
        "{reference}: layer {layer}: {path:?} is a {kind} entry; only regular files and directories are allowed"
    )]
    Unsupported {
        reference: String,
        layer: String,
        path: String,
        kind: String,
    },
    #[error("{reference}: layer {layer}: entry name {path:?} is not UTF-8")]
    NonUtf8 {
        reference: String,
        layer: String,
        path: String,
    },
    #[error("{reference}: layer {layer} is corrupt or truncated: {source}")]
    Corrupt {
        reference: String,
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{reference}: the manifest {digest} lists {layers} layers; at most {MAX_LAYERS} are read (an artifact of Perses resources needs one)"
    )]
    TooManyLayers {
        reference: String,
        digest: String,
        layers: usize,
    },
    #[error("{reference}: the image config lists {diff_ids} diff_ids for {layers} layers")]
    LayerCount {
        reference: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error(
        "{reference}: {path} changed between two reads of the artifact (its blob was rewritten?); nothing was compared"
    )]
    Changed { reference: String, path: String },
    #[error(
        "invalid {MAX_BYTES_ENV}={value:?}: expected a number of bytes, optionally with a K, M or G suffix"
    )]
    BadLimit { value: String },
}

/// How much to read at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on the decompressed size of all layers together (tar headers included).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl Limits {
    /// The default, or `PERSES_OCI_MAX_ARTIFACT_BYTES` when set.
    pub fn from_env() -> Result<Limits, ReadError> {
        match std::env::var(MAX_BYTES_ENV) {
            Ok(v) if !v.trim().is_empty() => Ok(Limits {
                max_bytes: parse_size(&v).ok_or(ReadError::BadLimit { value: v })?,
            }),
            _ => Ok(Limits::default()),
        }
    }
}

/// `123`, `64K`, `10M`, `4G` (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// An artifact read back: its files and what describes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// What was asked for, as written (`host/repo:tag`, `oci:PATH:TAG`).
    pub reference: String,
    /// Digest of what the reference names (the index for a multi-platform image): the one to pin.
    pub digest: String,
    pub media_type: String,
    /// The platform manifest that was read (equal to `digest` without an index).
    pub manifest_digest: String,
    /// `os/architecture[/variant]` of each image, in index order.
    pub platforms: Vec<String>,
    /// The image manifest's annotations, plus the index's where the manifest has none.
    pub annotations: BTreeMap<String, String>,
    /// `org.opencontainers.image.created`, else the config's `created`.
    pub created: Option<String>,
    /// Sum of the compressed layer sizes.
    pub layers_size: u64,
    /// Sum of the file sizes.
    pub size: u64,
    /// Relative `/`-separated path -> content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Directories (explicit or implied by a file), relative, without a trailing `/`.
    pub dirs: BTreeSet<String>,
}

/// Reads `image_ref` (`host/repo:tag` or `host/repo@sha256:...`) from its registry.
pub async fn pull_tree(
    registry: &Registry,
    image_ref: &str,
    limits: Limits,
) -> Result<Tree, ReadError> {
    let (src, bytes, digest) = open_registry(registry, image_ref).await?;
    read_from(&src, bytes, digest, None, limits).await
}

/// Like `pull_tree`, but keeps only each file's sha256 and size: the layers are downloaded to
/// anonymous temporary files (checked as `pull_tree` checks them) that `Indexed::read_files`
/// reads again for the files a caller asks for.
pub async fn index_registry(
    registry: &Registry,
    image_ref: &str,
    limits: Limits,
) -> Result<Indexed, ReadError> {
    let (src, bytes, digest) = open_registry(registry, image_ref).await?;
    index_from(&src, bytes, digest, None, limits).await
}

/// `index_registry`, handing the files `visit` wants to it on the way.
pub async fn index_registry_visiting(
    registry: &Registry,
    image_ref: &str,
    limits: Limits,
    visit: (Box<Visit>, std::sync::Arc<VisitFilter>),
) -> Result<Indexed, ReadError> {
    let (src, bytes, digest) = open_registry(registry, image_ref).await?;
    index_from_visiting(&src, bytes, digest, None, limits, Some(visit)).await
}

/// The top manifest of `image_ref`, checked against the reference's digest.
async fn open_registry(
    registry: &Registry,
    image_ref: &str,
) -> Result<(Source, Vec<u8>, String), ReadError> {
    let reference = crate::registry::parse_reference(image_ref)?;
    let image = format!("{}/{}", reference.registry(), reference.repository());
    let (client, auth) = registry.session(&image).await?;
    let name = ImageName {
        registry: reference.registry().to_string(),
        repository: reference.repository().to_string(),
    };
    let label = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string();
    let what = format!("registry {}: read {image_ref}", name.registry);
    let top = crate::retry::retry(what, crate::retry::oci_transient, || {
        client.pull_manifest_raw(&reference, &auth, ACCEPT)
    });
    let (bytes, _) = match top.await {
        Ok(x) => x,
        Err(e) => {
            return Err(
                crate::registry::classify(e, &name, &label, &auth, &client, &reference)
                    .await
                    .into(),
            );
        }
    };
    let src = Source::Registry {
        client,
        auth,
        reference,
        name: image_ref.to_string(),
    };
    let bytes = bytes.to_vec();
    let digest = crate::artifact::build::sha256_digest(&bytes);
    // The layout and index paths cap manifests before reading; the registry's answer is only
    // known once read, and is refused here before it is parsed.
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(ReadError::JsonTooLarge {
            reference: image_ref.to_string(),
            what: "manifest",
            digest,
            size: bytes.len() as u64,
        });
    }
    if let Some(want) = src.wanted_digest()
        && want != digest
    {
        return Err(ReadError::DigestMismatch {
            reference: image_ref.to_string(),
            what: "manifest",
            expected: want,
            actual: digest,
        });
    }
    Ok((src, bytes, digest))
}

/// Reads `tag` from the OCI image layout at `path`.
pub async fn read_layout(path: &Path, tag: &str, limits: Limits) -> Result<Tree, ReadError> {
    let (src, bytes, desc) = open_layout(path, tag).await?;
    read_from(&src, bytes, desc.digest, Some(desc.media_type), limits).await
}

/// `index_registry` for the OCI image layout at `path`: the layer blobs are read in place.
pub async fn index_layout(path: &Path, tag: &str, limits: Limits) -> Result<Indexed, ReadError> {
    let (src, bytes, desc) = open_layout(path, tag).await?;
    index_from(&src, bytes, desc.digest, Some(desc.media_type), limits).await
}

/// `index_layout`, handing the files `visit` wants to it on the way.
pub async fn index_layout_visiting(
    path: &Path,
    tag: &str,
    limits: Limits,
    visit: (Box<Visit>, std::sync::Arc<VisitFilter>),
) -> Result<Indexed, ReadError> {
    let (src, bytes, desc) = open_layout(path, tag).await?;
    index_from_visiting(
        &src,
        bytes,
        desc.digest,
        Some(desc.media_type),
        limits,
        Some(visit),
    )
    .await
}

async fn open_layout(path: &Path, tag: &str) -> Result<(Source, Vec<u8>, Desc), ReadError> {
    let layout = Layout::open(path)?;
    let desc = Desc::parse(&layout.resolve(tag)?).ok_or_else(|| ReadError::BadJson {
        reference: format!("oci:{}:{tag}", path.display()),
        what: "index.json entry",
        digest: tag.to_string(),
        message: "the descriptor needs mediaType, digest and size".into(),
    })?;
    let src = Source::Layout {
        layout,
        name: format!("oci:{}:{tag}", path.display()),
    };
    let bytes = src.small_blob("manifest", &desc).await?;
    Ok((src, bytes, desc))
}

/// Files (path -> content) and directories of one layer.
pub type LayerTree = (BTreeMap<String, Vec<u8>>, BTreeSet<String>);

/// The files and directories of one layer blob held in memory, through the same checks as a
/// pull (the blob against its own digest and size, the decompressed cap, entry names and types,
/// whiteouts): the entry point of the property tests, which have no registry.
pub fn read_layer_bytes(blob: &[u8], gzip: bool, max_bytes: u64) -> Result<LayerTree, ReadError> {
    let info = LayerInfo {
        digest: crate::artifact::build::sha256_digest(blob),
        size: blob.len() as u64,
        media_type: if gzip { GZIP_LAYERS[0] } else { TAR_LAYERS[0] }.into(),
        gzip,
        diff_id: None,
    };
    let mut acc = Acc {
        reference: "(layer bytes)".into(),
        limit: max_bytes,
        ..Default::default()
    };
    read_layer(blob, &info, &mut acc)?;
    Ok((acc.files, acc.dirs))
}

async fn read_from(
    src: &Source,
    top: Vec<u8>,
    top_digest: String,
    top_hint: Option<String>,
    limits: Limits,
) -> Result<Tree, ReadError> {
    let (mut tree, layers) = resolve(src, top, top_digest, top_hint).await?;
    let mut acc = Acc::new(src.name(), limits.max_bytes);
    for info in layers {
        acc = src.layer(info, acc).await?;
    }
    tree.size = acc.files.values().map(|f| f.len() as u64).sum();
    tree.files = acc.files;
    tree.dirs = acc.dirs;
    Ok(tree)
}
