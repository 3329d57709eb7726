//! Where an image's blobs come from, a registry or an OCI layout: manifests and configs fetched
//! size-capped and checked against their descriptors, layers streamed to the tar reader or kept
//! as files to read again.

use super::index::BUF;
use super::layer::{Acc, LayerInfo, read_layer};
use super::manifest::Desc;
use super::{ACCEPT, MAX_JSON_BYTES, ReadError};
use crate::artifact::layout::{Layout, digest_hex};
use futures::StreamExt;
use oci_client::manifest::OciDescriptor;
use std::io::{self, Read};

pub(super) enum Source {
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
    pub(super) fn name(&self) -> &str {
        match self {
            Source::Registry { name, .. } | Source::Layout { name, .. } => name,
        }
    }

    pub(super) fn wanted_digest(&self) -> Option<String> {
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
    pub(super) async fn small_blob(
        &self,
        what: &'static str,
        d: &Desc,
    ) -> Result<Vec<u8>, ReadError> {
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
    pub(super) async fn layer_file(&self, info: &LayerInfo) -> Result<std::fs::File, ReadError> {
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
    pub(super) async fn layer(&self, info: LayerInfo, mut acc: Acc) -> Result<Acc, ReadError> {
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
