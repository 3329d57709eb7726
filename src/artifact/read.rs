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

use crate::artifact::layout::{Layout, LayoutError, digest_hex};
use crate::registry::{ImageName, Registry, RegistryError};
use futures::StreamExt;
use oci_client::manifest::OciDescriptor;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::ops::Bound;
use std::path::Path;
use std::rc::Rc;

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

/// A descriptor, parsed from untrusted JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desc {
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<String>,
}

impl Desc {
    fn parse(v: &Value) -> Option<Desc> {
        let p = &v["platform"];
        let platform = p["os"].as_str().map(|os| {
            let mut s = format!("{os}/{}", p["architecture"].as_str().unwrap_or("?"));
            if let Some(var) = p["variant"].as_str() {
                s.push('/');
                s.push_str(var);
            }
            s
        });
        Some(Desc {
            media_type: v["mediaType"].as_str()?.to_string(),
            digest: v["digest"].as_str()?.to_string(),
            size: v["size"].as_u64()?,
            platform,
        })
    }

    fn oci(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size as i64,
            ..Default::default()
        }
    }
}

enum Source {
    Registry {
        client: oci_client::Client,
        auth: oci_client::secrets::RegistryAuth,
        reference: oci_client::Reference,
        name: String,
    },
    Layout {
        layout: Layout,
        name: String,
    },
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Source::Registry { name, .. } | Source::Layout { name, .. } => name,
        }
    }

    fn wanted_digest(&self) -> Option<String> {
        match self {
            Source::Registry { reference, .. } => reference.digest().map(str::to_string),
            Source::Layout { .. } => None,
        }
    }

    fn retry_what(&self, what: &str, digest: &str) -> String {
        format!("{}: read {what} {digest}", self.name())
    }

    fn fetch_err(&self, what: &'static str, digest: &str, e: impl std::fmt::Display) -> ReadError {
        ReadError::Fetch {
            reference: self.name().to_string(),
            what,
            digest: digest.to_string(),
            message: e.to_string(),
        }
    }

    /// A manifest or config, size-capped and checked against its descriptor.
    async fn small_blob(&self, what: &'static str, d: &Desc) -> Result<Vec<u8>, ReadError> {
        if d.size > MAX_JSON_BYTES {
            return Err(ReadError::JsonTooLarge {
                reference: self.name().to_string(),
                what,
                digest: d.digest.clone(),
                size: d.size,
            });
        }
        digest_hex(&d.digest)?;
        let bytes = match self {
            Source::Registry {
                client,
                auth,
                reference,
                ..
            } => {
                let is_manifest = what != "config";
                if is_manifest {
                    let r = oci_client::Reference::with_digest(
                        reference.registry().to_string(),
                        reference.repository().to_string(),
                        d.digest.clone(),
                    );
                    let accept: Vec<&str> = ACCEPT.to_vec();
                    crate::retry::retry(
                        self.retry_what(what, &d.digest),
                        crate::retry::oci_transient,
                        || client.pull_manifest_raw(&r, auth, &accept),
                    )
                    .await
                    .map_err(|e| self.fetch_err(what, &d.digest, crate::registry::error_chain(&e)))?
                    .0
                    .to_vec()
                } else {
                    let desc = d.oci();
                    crate::retry::retry(
                        self.retry_what(what, &d.digest),
                        crate::retry::oci_transient,
                        || async {
                            // A fresh buffer per attempt: a failed one may have written part.
                            let mut out = Vec::new();
                            client
                                .pull_blob(reference, &desc, &mut out)
                                .await
                                .map(|_| out)
                        },
                    )
                    .await
                    .map_err(|e| {
                        self.fetch_err(what, &d.digest, crate::registry::error_chain(&e))
                    })?
                }
            }
            Source::Layout { layout, .. } => {
                let f = layout.open_blob(&d.digest)?;
                let mut out = Vec::new();
                f.take(MAX_JSON_BYTES + 1)
                    .read_to_end(&mut out)
                    .map_err(|source| ReadError::Io {
                        reference: self.name().to_string(),
                        what,
                        digest: d.digest.clone(),
                        source,
                    })?;
                out
            }
        };
        if bytes.len() as u64 != d.size {
            return Err(ReadError::SizeMismatch {
                reference: self.name().to_string(),
                what,
                digest: d.digest.clone(),
                expected: d.size,
                actual: bytes.len().to_string(),
            });
        }
        let actual = crate::artifact::build::sha256_digest(&bytes);
        if actual != d.digest {
            return Err(ReadError::DigestMismatch {
                reference: self.name().to_string(),
                what,
                expected: d.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Opens a registry layer's byte stream. Only opening is retried: once bytes flow into a
    /// reader, a broken download is reported (as a corrupt or short layer) rather than spliced.
    async fn layer_stream(
        &self,
        client: &oci_client::Client,
        reference: &oci_client::Reference,
        info: &LayerInfo,
    ) -> Result<oci_client::client::SizedStream, ReadError> {
        let desc = OciDescriptor {
            media_type: info.media_type.clone(),
            digest: info.digest.clone(),
            size: info.size as i64,
            ..Default::default()
        };
        crate::retry::retry(
            self.retry_what("layer", &info.digest),
            crate::retry::oci_transient,
            || client.pull_blob_stream(reference, &desc),
        )
        .await
        .map_err(|e| self.fetch_err("layer", &info.digest, crate::registry::error_chain(&e)))
    }

    /// The layer blob as a file, unchecked (its reader checks it): a layout's blob in place, or
    /// a registry's downloaded to an anonymous temporary file, which goes when it is closed.
    /// The download stops at the first byte past the descriptor's size.
    async fn layer_file(&self, info: &LayerInfo) -> Result<std::fs::File, ReadError> {
        use tokio::io::AsyncWriteExt;
        digest_hex(&info.digest)?;
        let (client, reference) = match self {
            Source::Layout { layout, .. } => return Ok(layout.open_blob(&info.digest)?),
            Source::Registry {
                client, reference, ..
            } => (client, reference),
        };
        let mut stream = self.layer_stream(client, reference, info).await?;
        let io_err = |source| ReadError::Io {
            reference: self.name().to_string(),
            what: "layer",
            digest: info.digest.clone(),
            source,
        };
        let file = tempfile::tempfile().map_err(io_err)?;
        let mut out = tokio::io::BufWriter::with_capacity(
            BUF,
            tokio::fs::File::from_std(file.try_clone().map_err(io_err)?),
        );
        let mut count = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ReadError::Corrupt {
                reference: self.name().to_string(),
                layer: info.digest.clone(),
                source,
            })?;
            count += chunk.len() as u64;
            if count > info.size {
                return Err(ReadError::SizeMismatch {
                    reference: self.name().to_string(),
                    what: "layer",
                    digest: info.digest.clone(),
                    expected: info.size,
                    actual: "more".into(),
                });
            }
            out.write_all(&chunk).await.map_err(io_err)?;
        }
        out.flush().await.map_err(io_err)?;
        Ok(file)
    }

    /// Streams one layer into `acc` on a blocking thread; the tar reader is synchronous.
    async fn layer(&self, info: LayerInfo, mut acc: Acc) -> Result<Acc, ReadError> {
        digest_hex(&info.digest)?;
        match self {
            Source::Layout { layout, .. } => {
                let f = layout.open_blob(&info.digest)?;
                tokio::task::spawn_blocking(move || {
                    read_layer(io::BufReader::new(f), &info, &mut acc).map(|_| acc)
                })
                .await
                .expect("the layer reader does not panic")
            }
            Source::Registry {
                client, reference, ..
            } => {
                let mut stream = self.layer_stream(client, reference, &info).await?;
                let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(16);
                let job = tokio::task::spawn_blocking(move || {
                    let reader = ChannelReader {
                        rx,
                        buf: Vec::new(),
                        pos: 0,
                    };
                    read_layer(reader, &info, &mut acc).map(|_| acc)
                });
                while let Some(chunk) = stream.next().await {
                    // A closed channel means the reader stopped (error or cap): stop fetching.
                    if tx.send(chunk.map(|b| b.to_vec())).await.is_err() {
                        break;
                    }
                }
                drop(tx);
                job.await.expect("the layer reader does not panic")
            }
        }
    }
}

/// The blocking side of a streamed download.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn parse_json(
    name: &str,
    what: &'static str,
    digest: &str,
    bytes: &[u8],
) -> Result<Value, ReadError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ReadError::BadJson {
        reference: name.to_string(),
        what,
        digest: digest.to_string(),
        message: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(ReadError::BadJson {
            reference: name.to_string(),
            what,
            digest: digest.to_string(),
            message: "not a JSON object".into(),
        });
    }
    Ok(v)
}

fn kind_of(v: &Value, hint: Option<&str>) -> Option<&'static str> {
    let mt = v["mediaType"].as_str().or(hint);
    match mt {
        Some(OCI_INDEX) | Some(DOCKER_LIST) => Some("index"),
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => Some("manifest"),
        Some(_) => None,
        None if v["manifests"].is_array() => Some("index"),
        None if v["layers"].is_array() => Some("manifest"),
        None => None,
    }
}

fn annotations(v: &Value) -> BTreeMap<String, String> {
    v["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// Picks linux/amd64, else the first linux image, else the first without a platform.
fn pick(manifests: &[Desc]) -> Option<&Desc> {
    manifests
        .iter()
        .find(|d| d.platform.as_deref() == Some("linux/amd64"))
        .or_else(|| {
            manifests.iter().find(|d| {
                d.platform
                    .as_deref()
                    .is_some_and(|p| p.starts_with("linux/"))
            })
        })
        .or_else(|| manifests.iter().find(|d| d.platform.is_none()))
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

/// The manifest, config and layer descriptors a reference leads to, checked; no layer is read.
async fn resolve(
    src: &Source,
    top: Vec<u8>,
    top_digest: String,
    top_hint: Option<String>,
) -> Result<(Tree, Vec<LayerInfo>), ReadError> {
    let name = src.name().to_string();
    let bad_type =
        |what: &'static str, digest: &str, mt: &str, message: &'static str| ReadError::MediaType {
            reference: name.clone(),
            what,
            digest: digest.to_string(),
            media_type: mt.to_string(),
            message,
        };
    let mut tree = Tree {
        reference: name.clone(),
        digest: top_digest.clone(),
        ..Default::default()
    };
    let mut v = parse_json(&name, "manifest", &top_digest, &top)?;
    let mut digest = top_digest.clone();
    let mut hint = top_hint;
    let mut index_annotations = BTreeMap::new();
    tree.media_type = v["mediaType"]
        .as_str()
        .or(hint.as_deref())
        .unwrap_or("")
        .to_string();
    // An index may name another index (as some layouts do); two levels are enough.
    for depth in 0.. {
        match kind_of(&v, hint.as_deref()) {
            Some("manifest") => break,
            Some("index") if depth < 2 => {
                let manifests: Vec<Desc> = v["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        Desc::parse(m).ok_or_else(|| ReadError::BadJson {
                            reference: name.clone(),
                            what: "index",
                            digest: digest.clone(),
                            message: "an entry needs mediaType, digest and size".into(),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                if depth == 0 {
                    tree.platforms = manifests
                        .iter()
                        .filter_map(|d| d.platform.clone())
                        .collect();
                }
                index_annotations.extend(annotations(&v));
                let chosen = pick(&manifests).ok_or_else(|| ReadError::NoPlatform {
                    reference: name.clone(),
                    digest: digest.clone(),
                    platforms: manifests
                        .iter()
                        .map(|d| d.platform.clone().unwrap_or_else(|| "?".into()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
                let bytes = src.small_blob("manifest", chosen).await?;
                v = parse_json(&name, "manifest", &chosen.digest, &bytes)?;
                digest = chosen.digest.clone();
                hint = Some(chosen.media_type.clone());
            }
            _ => {
                let mt = v["mediaType"]
                    .as_str()
                    .or(hint.as_deref())
                    .unwrap_or("(none)");
                return Err(bad_type(
                    "manifest",
                    &digest,
                    mt,
                    "not an image manifest or index",
                ));
            }
        }
    }
    tree.manifest_digest = digest.clone();
    tree.annotations = annotations(&v);
    for (k, val) in index_annotations {
        tree.annotations.entry(k).or_insert(val);
    }

    let config = Desc::parse(&v["config"]).ok_or_else(|| ReadError::BadJson {
        reference: name.clone(),
        what: "manifest",
        digest: digest.clone(),
        message: "no config descriptor".into(),
    })?;
    if !CONFIG_TYPES.contains(&config.media_type.as_str()) {
        return Err(bad_type(
            "config",
            &config.digest,
            &config.media_type,
            "not an image config, so not an image a kubelet can mount as a volume (containerd \
             fails the pod with CreateContainerError: \"failed to unpack image volume: \
             mismatched image rootfs and manifest layers\"); push it as an image instead \
             (perses-oci push, or a `FROM scratch` image built with buildah or docker)",
        ));
    }
    let layer_count = v["layers"].as_array().map_or(0, Vec::len);
    if layer_count > MAX_LAYERS {
        return Err(ReadError::TooManyLayers {
            reference: name.clone(),
            digest: digest.clone(),
            layers: layer_count,
        });
    }
    let cbytes = src.small_blob("config", &config).await?;
    let cfg = parse_json(&name, "config", &config.digest, &cbytes)?;
    if tree.platforms.is_empty()
        && let Some(os) = cfg["os"].as_str()
    {
        tree.platforms.push(format!(
            "{os}/{}",
            cfg["architecture"].as_str().unwrap_or("?")
        ));
    }
    tree.created = tree
        .annotations
        .get(crate::artifact::build::ANNOTATION_CREATED)
        .cloned()
        .or_else(|| cfg["created"].as_str().map(str::to_string));
    let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    let layers: Vec<Desc> = v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            Desc::parse(l).ok_or_else(|| ReadError::BadJson {
                reference: name.clone(),
                what: "manifest",
                digest: digest.clone(),
                message: "a layer needs mediaType, digest and size".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    if diff_ids.len() != layers.len() {
        return Err(ReadError::LayerCount {
            reference: name.clone(),
            diff_ids: diff_ids.len(),
            layers: layers.len(),
        });
    }
    let mut infos = Vec::with_capacity(layers.len());
    for (l, diff_id) in layers.iter().zip(diff_ids) {
        let gzip = if GZIP_LAYERS.contains(&l.media_type.as_str()) {
            true
        } else if TAR_LAYERS.contains(&l.media_type.as_str()) {
            false
        } else {
            return Err(bad_type(
                "layer",
                &l.digest,
                &l.media_type,
                if l.media_type.contains("zstd") {
                    "zstd layers are not supported; use gzip"
                } else {
                    "not a tar or tar+gzip layer"
                },
            ));
        };
        tree.layers_size += l.size;
        infos.push(LayerInfo {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
            gzip,
            diff_id: Some(diff_id),
        });
    }
    Ok((tree, infos))
}

/// Sees the bytes of a file while an image is indexed: `(position, path, bytes)`, the position
/// as `FileMeta::position` gives it. A later layer (or a later entry of one) may replace or
/// remove the file: keep only what the index's final `FileMeta` names. Until the index
/// returns, the layer holding the bytes is not yet checked against its digest.
pub type Visit = dyn FnMut((usize, usize), &str, Vec<u8>) + Send;

/// Which files a visit gets: those the predicate takes (by path).
pub type VisitFilter = dyn Fn(&str) -> bool + Send + Sync;

/// `read_from`, keeping each file's sha256 and size instead of its bytes.
async fn index_from(
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
async fn index_from_visiting(
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
const BUF: usize = 256 << 10;

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

/// One layer to read.
#[derive(Debug, Clone)]
struct LayerInfo {
    digest: String,
    size: u64,
    media_type: String,
    gzip: bool,
    diff_id: Option<String>,
}

/// The tree so far, across layers: `V` is what is kept of a file (its bytes, or `FileMeta`).
#[derive(Debug)]
struct Acc<V = Vec<u8>> {
    reference: String,
    limit: u64,
    /// Decompressed bytes read so far, all layers together.
    total: u64,
    files: BTreeMap<String, V>,
    dirs: BTreeSet<String>,
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
    fn new(reference: &str, limit: u64) -> Acc<V> {
        Acc {
            reference: reference.to_string(),
            limit,
            ..Default::default()
        }
    }
}

/// Why a reader stopped on purpose (told apart from a decoding error after the fact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TooLarge,
    BlobTooLong,
}

type StopFlag = Rc<Cell<Option<Stop>>>;

/// Hashes and counts the compressed bytes; stops past the descriptor's size.
struct Compressed<R> {
    inner: R,
    hash: Sha256,
    count: u64,
    max: u64,
    stop: StopFlag,
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

fn read_layer<R: Read>(input: R, info: &LayerInfo, acc: &mut Acc) -> Result<(), ReadError> {
    read_layer_with(input, info, acc, &mut |_, _, r, size| {
        let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
        r.read_to_end(&mut data)?;
        Ok(data)
    })
}

fn read_layer_with<R: Read, V>(
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
fn normalize(name: &str) -> Result<Option<String>, &'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A raw tar entry, with no checks on the name: how a hostile layer is made.
    fn entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn file(name: &str, data: &[u8]) -> Vec<u8> {
        entry(name, tar::EntryType::Regular, "", data)
    }

    fn tar(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out: Vec<u8> = entries.concat();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn info_for(blob: &[u8], raw_tar: &[u8]) -> LayerInfo {
        LayerInfo {
            digest: crate::artifact::build::sha256_digest(blob),
            size: blob.len() as u64,
            media_type: GZIP_LAYERS[0].into(),
            gzip: true,
            diff_id: Some(crate::artifact::build::sha256_digest(raw_tar)),
        }
    }

    fn acc(limit: u64) -> Acc {
        Acc {
            reference: "test".into(),
            limit,
            ..Default::default()
        }
    }

    fn read(raw: &[u8]) -> Result<Acc, ReadError> {
        let blob = gz(raw);
        let info = info_for(&blob, raw);
        let mut a = acc(DEFAULT_MAX_BYTES);
        read_layer(&blob[..], &info, &mut a).map(|_| a)
    }

    #[test]
    fn a_plain_layer_reads_back() {
        let raw = tar(&[
            entry("./prod/", tar::EntryType::Directory, "", b""),
            file("./prod/a.json", b"{}"),
            file("top.json", b"[]"),
        ]);
        let a = read(&raw).unwrap();
        assert_eq!(
            a.files.keys().collect::<Vec<_>>(),
            vec!["prod/a.json", "top.json"]
        );
        assert!(a.dirs.contains("prod"));
        assert_eq!(a.total, raw.len() as u64);
    }

    #[test]
    fn traversal_absolute_links_and_devices_are_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (file("../x", b"x"), "goes up"),
            (file("a/../../x", b"x"), "goes up"),
            (file("/etc/x", b"x"), "absolute"),
            (
                entry("l", tar::EntryType::Symlink, "../../etc/passwd", b""),
                "symbolic link",
            ),
            (
                entry("h", tar::EntryType::Link, "prod/a.json", b""),
                "hard link",
            ),
            (
                entry("dev", tar::EntryType::Char, "", b""),
                "character device",
            ),
            (entry("p", tar::EntryType::Fifo, "", b""), "fifo"),
        ];
        for (e, want) in cases {
            let err = read(&tar(&[file("ok.json", b"{}"), e]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err} should say {want}");
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap() {
        // 256 MiB of zeros as 256 identical gzip members: cheap to build, ~1 KiB each.
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..4].copy_from_slice(b"bomb");
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(256 << 20);
        h.set_cksum();
        let mut blob = gz(h.as_bytes());
        let member = gz(&vec![0u8; 1 << 20]);
        for _ in 0..256 {
            blob.extend_from_slice(&member);
        }
        let info = LayerInfo {
            digest: crate::artifact::build::sha256_digest(&blob),
            size: blob.len() as u64,
            media_type: GZIP_LAYERS[0].into(),
            gzip: true,
            diff_id: None,
        };
        let mut rest = &blob[..];
        let err = read_layer(&mut rest, &info, &mut acc(1 << 20)).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { .. }), "{err}");
        // Stopped within the first buffers, not at the end of the blob.
        let read = blob.len() - rest.len();
        assert!(
            read < 64 << 10,
            "read {read} of {} compressed bytes",
            blob.len()
        );
    }

    #[test]
    fn wrong_digest_size_and_diff_id_are_refused() {
        let raw = tar(&[file("a.json", b"{}")]);
        let blob = gz(&raw);
        let mut info = info_for(&blob, &raw);
        info.digest = crate::artifact::build::sha256_digest(b"other");
        let err = read_layer(&blob[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
        assert!(matches!(err, ReadError::DigestMismatch { .. }), "{err}");

        let mut info = info_for(&blob, &raw);
        info.size -= 1;
        let err = read_layer(&blob[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
        assert!(matches!(err, ReadError::SizeMismatch { .. }), "{err}");

        let mut info = info_for(&blob, &raw);
        info.diff_id = Some(crate::artifact::build::sha256_digest(b"other"));
        let err = read_layer(&blob[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
        assert!(matches!(err, ReadError::DiffIdMismatch { .. }), "{err}");

        // Another blob under this one's name: reported as the wrong blob, not as bad gzip.
        let info = info_for(&blob, &raw);
        let junk = vec![7u8; blob.len()];
        let err = read_layer(&junk[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
        assert!(matches!(err, ReadError::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn a_truncated_layer_is_corrupt() {
        let raw = tar(&[file("a.json", &vec![b'x'; 100_000])]);
        let blob = gz(&raw);
        let cut = &blob[..blob.len() / 2];
        // The descriptor matches the truncated bytes, as a registry would serve them.
        let info = info_for(cut, &raw);
        let err = read_layer(cut, &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
        assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn whiteouts_apply_to_lower_layers_only() {
        let mut a = acc(DEFAULT_MAX_BYTES);
        for raw in [
            tar(&[
                file("a/1.json", b"1"),
                file("a/2.json", b"2"),
                file("b/x.json", b"x"),
                file("c/y.json", b"y"),
                file("keep.json", b"k"),
            ]),
            tar(&[
                file("a/.wh.1.json", b""),
                file(".wh.b", b""),
                file("c/.wh..wh..opq", b""),
                file("c/z.json", b"z"),
                file("b/new.json", b"n"),
            ]),
        ] {
            let blob = gz(&raw);
            read_layer(&blob[..], &info_for(&blob, &raw), &mut a).unwrap();
        }
        assert_eq!(
            a.files.keys().collect::<Vec<_>>(),
            vec!["a/2.json", "b/new.json", "c/z.json", "keep.json"]
        );
    }

    #[test]
    fn later_entries_replace_earlier_ones_of_another_kind() {
        let a = read(&tar(&[
            file("x", b"file"),
            file("x/inner.json", b"{}"),
            entry("d/", tar::EntryType::Directory, "", b""),
            file("d/in.json", b"1"),
            file("d", b"now a file"),
        ]))
        .unwrap();
        assert_eq!(
            a.files.keys().collect::<Vec<_>>(),
            vec!["d", "x/inner.json"]
        );
        assert!(a.dirs.contains("x"));
        assert!(!a.dirs.contains("d"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn normalized_names() {
        assert_eq!(normalize("./a//b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(normalize("./").unwrap(), None);
        assert!(normalize("a/../b").is_err());
        assert!(normalize("/a").is_err());
    }
}
