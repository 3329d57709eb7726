//! Uploads to a registry, blob by blob: what the tag points at now, which blobs the repository
//! already has, streamed layer uploads and manifests pushed as exact bytes (so a manifest's
//! digest is sha256 of what we wrote, not of oci-client's re-serialization).
//!
//! oci-client's `push` keeps whole layers in memory and re-uploads blobs that exist; these calls
//! do neither. Errors name the registry, repository and tag, as the rest of `registry` does.

use super::{ImageName, Registry, RegistryError, classify, parse_reference};
use crate::retry::{oci_transient, retry};
use futures::TryStreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::path::{Path, PathBuf};

/// Read size for streamed uploads.
const CHUNK: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One repository and tag, authenticated for push.
pub struct Uploader {
    client: Client,
    auth: RegistryAuth,
    name: ImageName,
    tag: String,
    reference: Reference,
}

impl Registry {
    /// Opens `image:tag` for pushing, with credentials from the Docker config.
    pub async fn uploader(&self, image: &str, tag: &str) -> Result<Uploader, UploadError> {
        let name = ImageName::parse(image);
        let reference = parse_reference(&format!("{image}:{tag}"))?;
        let (client, auth) = self.session(image).await?;
        let up = Uploader {
            client,
            auth,
            name,
            tag: tag.to_string(),
            reference,
        };
        // Log in for push now, so that refused credentials are reported as such rather than as
        // a bare 401 on the first blob (oci-client's blob calls reuse this token).
        let login = retry(up.what("log in for push"), oci_transient, || {
            up.client
                .auth(&up.reference, &up.auth, RegistryOperation::Push)
        });
        if let Err(e) = login.await {
            return Err(up.error(e).await.into());
        }
        Ok(up)
    }
}

impl Uploader {
    pub fn registry(&self) -> &str {
        &self.name.registry
    }

    pub fn repository(&self) -> &str {
        &self.name.repository
    }

    /// Names a call in retry messages: registry, repository and tag, never credentials.
    fn what(&self, op: &str) -> String {
        format!(
            "registry {}: {op} ({}:{})",
            self.name.registry, self.name.repository, self.tag
        )
    }

    fn by_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            digest.to_string(),
        )
    }

    /// Maps an oci-client error to one naming registry, repository and tag. Blob calls report
    /// a 401 or 403 as a bare HTTP status, which `classify` does not look at.
    async fn error(&self, e: OciDistributionError) -> RegistryError {
        let status = match &e {
            OciDistributionError::RequestError(re) => re.status().map(|s| s.as_u16()),
            OciDistributionError::ServerError { code, .. } => Some(*code),
            _ => None,
        };
        let registry = self.name.registry.clone();
        match status {
            Some(401) => RegistryError::Unauthorized {
                hint: match self.auth {
                    RegistryAuth::Anonymous => format!(
                        "no credentials found for {registry} in the Docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json) or $REGISTRY_AUTH_FILE"
                    ),
                    _ => format!("the credentials found for {registry} were refused"),
                },
                registry,
                repository: self.name.repository.clone(),
                tag: self.tag.clone(),
            },
            Some(403) => RegistryError::Denied {
                registry,
                repository: self.name.repository.clone(),
                tag: self.tag.clone(),
                message: "403 forbidden: these credentials may not push here".into(),
            },
            _ => {
                classify(
                    e,
                    &self.name,
                    &self.tag,
                    &self.auth,
                    &self.client,
                    &self.reference,
                )
                .await
            }
        }
    }

    /// The digest the tag points at, or `None` when the tag or the repository does not exist.
    pub async fn current(&self) -> Result<Option<String>, UploadError> {
        let head = retry(self.what("read the tag"), oci_transient, || {
            self.client
                .fetch_manifest_digest(&self.reference, &self.auth)
        });
        match head.await {
            Ok(d) => Ok(Some(d)),
            Err(e) => match self.error(e).await {
                RegistryError::TagNotFound { .. } | RegistryError::RepositoryNotFound { .. } => {
                    Ok(None)
                }
                other => Err(other.into()),
            },
        }
    }

    /// The exact bytes of a manifest or index, by digest (checked by oci-client).
    pub async fn manifest(&self, digest: &str, accept: &[&str]) -> Result<Vec<u8>, UploadError> {
        let r = self.by_digest(digest);
        let get = retry(self.what("read a manifest"), oci_transient, || {
            self.client.pull_manifest_raw(&r, &self.auth, accept)
        });
        match get.await {
            Ok((b, _)) => Ok(b.to_vec()),
            Err(e) => Err(self.error(e).await.into()),
        }
    }

    pub async fn has_blob(&self, digest: &str) -> Result<bool, UploadError> {
        let head = retry(self.what("look for a blob"), oci_transient, || {
            self.client.blob_exists(&self.reference, digest)
        });
        match head.await {
            Ok(b) => Ok(b),
            Err(e) => Err(self.error(e).await.into()),
        }
    }

    /// Whether the repository has a manifest with this digest.
    pub async fn has_manifest(&self, digest: &str) -> Result<bool, UploadError> {
        let r = self.by_digest(digest);
        let head = retry(self.what("look for a manifest"), oci_transient, || {
            self.client.fetch_manifest_digest(&r, &self.auth)
        });
        match head.await {
            Ok(_) => Ok(true),
            Err(e) => match self.error(e).await {
                RegistryError::TagNotFound { .. } | RegistryError::RepositoryNotFound { .. } => {
                    Ok(false)
                }
                other => Err(other.into()),
            },
        }
    }

    /// Uploads a small blob held in memory.
    pub async fn put_blob(&self, digest: &str, bytes: Vec<u8>) -> Result<(), UploadError> {
        // A blob is stored under its digest: sending it again cannot store anything else.
        let put = retry(self.what("upload a blob"), oci_transient, || {
            self.client
                .push_blob(&self.reference, bytes.clone(), digest)
        });
        match put.await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e).await.into()),
        }
    }

    /// Uploads a file as one blob, streamed (a single PUT with its length: the client is set up
    /// for monolithic pushes, which every registry takes).
    pub async fn put_blob_file(
        &self,
        digest: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), UploadError> {
        // Each attempt streams the file from its start (a blob is named by its digest, so a
        // repeated upload stores the same bytes).
        let attempt = || async {
            let file = tokio::fs::File::open(path).await.map_err(|source| {
                Err(UploadError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            })?;
            let stream = futures::stream::try_unfold(file, |mut f| async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; CHUNK];
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((buf, f)))
            })
            .map_ok(Into::into)
            .map_err(OciDistributionError::IoError);
            self.client
                .push_blob_stream(&self.reference, stream, digest, Some(size))
                .await
                .map_err(Ok)
        };
        // Ok(e): a registry error, maybe transient; Err(e): the local file, never retried.
        let transient = |e: &Result<OciDistributionError, UploadError>| match e {
            Ok(e) => oci_transient(e),
            Err(_) => None,
        };
        match retry(self.what("upload a layer"), transient, attempt).await {
            Ok(_) => Ok(()),
            Err(Ok(e)) => Err(self.error(e).await.into()),
            Err(Err(e)) => Err(e),
        }
    }

    /// Pushes manifest bytes as they are, under the tag (`None`) or under their digest.
    pub async fn put_manifest(
        &self,
        digest: Option<&str>,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<(), UploadError> {
        let reference = match digest {
            Some(d) => self.by_digest(d),
            None => self.reference.clone(),
        };
        let content_type = media_type
            .parse()
            .map_err(|_| RegistryError::BadReference {
                reference: media_type.to_string(),
                message: "not a valid media type header".into(),
            })?;
        // A PUT of the same bytes under the same name has the same effect however often sent.
        let put = retry(self.what("upload a manifest"), oci_transient, || {
            self.client
                .push_manifest_raw(&reference, bytes.clone(), Clone::clone(&content_type))
        });
        match put.await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e).await.into()),
        }
    }
}
