//! Uploads to a registry, blob by blob: what the tag points at now, which blobs the repository
//! already has, streamed layer uploads and manifests pushed as exact bytes (so a manifest's
//! digest is sha256 of what we wrote, not of oci-client's re-serialization).
//!
//! oci-client's `push` keeps whole layers in memory and re-uploads blobs that exist; these calls
//! do neither. Errors name the registry, repository and tag, as the rest of `registry` does.

use super::{ImageName, Registry, RegistryError, classify, parse_reference};
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
        if let Err(e) = up
            .client
            .auth(&up.reference, &up.auth, RegistryOperation::Push)
            .await
        {
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
        match self
            .client
            .fetch_manifest_digest(&self.reference, &self.auth)
            .await
        {
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
        match self
            .client
            .pull_manifest_raw(&self.by_digest(digest), &self.auth, accept)
            .await
        {
            Ok((b, _)) => Ok(b.to_vec()),
            Err(e) => Err(self.error(e).await.into()),
        }
    }

    pub async fn has_blob(&self, digest: &str) -> Result<bool, UploadError> {
        match self.client.blob_exists(&self.reference, digest).await {
            Ok(b) => Ok(b),
            Err(e) => Err(self.error(e).await.into()),
        }
    }

    /// Whether the repository has a manifest with this digest.
    pub async fn has_manifest(&self, digest: &str) -> Result<bool, UploadError> {
        match self
            .client
            .fetch_manifest_digest(&self.by_digest(digest), &self.auth)
            .await
        {
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
        match self.client.push_blob(&self.reference, bytes, digest).await {
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
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| UploadError::Read {
                path: path.to_path_buf(),
                source,
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
        match self
            .client
            .push_blob_stream(&self.reference, stream, digest, Some(size))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e).await.into()),
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
        match self
            .client
            .push_manifest_raw(&reference, bytes, content_type)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e).await.into()),
        }
    }
}
