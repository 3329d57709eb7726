//! The registry side: resolve tags to digests, with credentials from the Docker config, the
//! protocol chosen per registry (TLS unless named insecure or found plain on loopback), and
//! errors that name the registry, repository and tag. Credentials are never printed.

use crate::model::RegistrySettings;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub mod push;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error("invalid image reference {reference:?}: {message}")]
    BadReference { reference: String, message: String },
    #[error(
        "{} not found in repository {repository:?} of registry {registry}",
        if tag.starts_with("sha256:") { format!("manifest {tag}") } else { format!("tag {tag:?}") }
    )]
    TagNotFound {
        registry: String,
        repository: String,
        tag: String,
    },
    #[error("repository {repository:?} not found in registry {registry} (looking for tag {tag:?})")]
    RepositoryNotFound {
        registry: String,
        repository: String,
        tag: String,
    },
    #[error(
        "registry {registry} refused access to repository {repository:?} (tag {tag:?}): 401 unauthorized; {hint}"
    )]
    Unauthorized {
        registry: String,
        repository: String,
        tag: String,
        hint: String,
    },
    #[error(
        "registry {registry} denied access to repository {repository:?} (tag {tag:?}): {message}"
    )]
    Denied {
        registry: String,
        repository: String,
        tag: String,
        message: String,
    },
    #[error(
        "registry {registry} is unreachable (repository {repository:?}, tag {tag:?}): {message}"
    )]
    Unreachable {
        registry: String,
        repository: String,
        tag: String,
        message: String,
    },
    #[error("cannot read the registry CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read registry credentials for {registry}: {message}")]
    Credentials { registry: String, message: String },
    #[error("registry {registry} (repository {repository:?}, tag {tag:?}): {source}")]
    Other {
        registry: String,
        repository: String,
        tag: String,
        #[source]
        source: Box<OciDistributionError>,
    },
}

/// Where an image lives, split as users write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub registry: String,
    pub repository: String,
}

impl ImageName {
    /// Splits `host[:port]/path` (Docker's rule: the first component is a registry when it has a
    /// dot or a colon or is `localhost`; otherwise the registry is docker.io).
    pub fn parse(image: &str) -> ImageName {
        match image.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                ImageName {
                    registry: first.to_string(),
                    repository: rest.to_string(),
                }
            }
            _ => ImageName {
                registry: "docker.io".to_string(),
                repository: if image.contains('/') {
                    image.to_string()
                } else {
                    format!("library/{image}")
                },
            },
        }
    }
}

/// Whether a registry host is on loopback (plain HTTP allowed there, as Docker allows).
pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(registry);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Resolves tags and moves blobs; one per process, shared by concurrent environments.
pub struct Registry {
    settings: RegistrySettings,
    /// Protocol found per loopback registry (true: plain HTTP), probed once.
    plain: Mutex<HashMap<String, bool>>,
    clients: Mutex<HashMap<(String, bool), Client>>,
}

impl Registry {
    pub fn new(settings: RegistrySettings) -> Registry {
        Registry {
            settings,
            plain: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn extra_roots(&self) -> Result<Vec<Certificate>, RegistryError> {
        let mut out = Vec::new();
        if let Some(path) = &self.settings.ca_file {
            let data = std::fs::read(path).map_err(|source| RegistryError::CaFile {
                path: path.clone(),
                source,
            })?;
            out.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        Ok(out)
    }

    fn client_for(&self, registry: &str, plain: bool) -> Result<Client, RegistryError> {
        let key = (registry.to_string(), plain);
        if let Some(c) = self.clients.lock().unwrap().get(&key) {
            return Ok(c.clone());
        }
        let protocol = if plain {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            extra_root_certificates: self.extra_roots()?,
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        });
        self.clients.lock().unwrap().insert(key, client.clone());
        Ok(client)
    }

    /// Whether to speak plain HTTP to `registry`: named insecure, or loopback and not speaking
    /// TLS (probed once: a TLS handshake that fails at the protocol level on loopback means HTTP).
    async fn is_plain(&self, registry: &str) -> bool {
        if self.settings.insecure.iter().any(|h| h == registry) {
            return true;
        }
        if !is_loopback(registry) {
            return false;
        }
        if let Some(p) = self.plain.lock().unwrap().get(registry) {
            return *p;
        }
        let plain = probe_plain_http(registry).await;
        self.plain
            .lock()
            .unwrap()
            .insert(registry.to_string(), plain);
        plain
    }

    /// A client and credentials for one image.
    pub async fn session(&self, image: &str) -> Result<(Client, RegistryAuth), RegistryError> {
        let name = ImageName::parse(image);
        let plain = self.is_plain(&name.registry).await;
        let client = self.client_for(&name.registry, plain)?;
        let auth = credentials(&name.registry).await?;
        Ok((client, auth))
    }

    /// Resolves `image:tag` to the digest of its manifest (or index, for a multi-arch tag).
    pub async fn resolve(&self, image: &str, tag: &str) -> Result<String, RegistryError> {
        let name = ImageName::parse(image);
        let reference = parse_reference(&format!("{image}:{tag}"))?;
        let (client, auth) = self.session(image).await?;
        let what = format!("registry {}: resolve {image}:{tag}", name.registry);
        let digest = crate::retry::retry(what, crate::retry::oci_transient, || {
            client.fetch_manifest_digest(&reference, &auth)
        });
        match digest.await {
            Ok(d) => Ok(d),
            Err(e) => Err(classify(e, &name, tag, &auth, &client, &reference).await),
        }
    }
}

/// What a registry answers an anonymous pull of one manifest: `Anonymous::Allowed`, or
/// `Refused` with the status, which means a kubelet needs credentials (an imagePullSecret) to
/// pull it. A client of its own: oci-client keeps the credentials a client used per registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    Allowed,
    Refused(u16),
}

impl Registry {
    /// Whether `image@digest` (or `image:tag`) can be pulled without credentials.
    pub async fn anonymous_pull(
        &self,
        image: &str,
        reference: &str,
    ) -> Result<Anonymous, RegistryError> {
        let name = ImageName::parse(image);
        let sep = if reference.starts_with("sha256:") {
            "@"
        } else {
            ":"
        };
        let parsed = parse_reference(&format!("{image}{sep}{reference}"))?;
        let plain = self.is_plain(&name.registry).await;
        let protocol = if plain {
            ClientProtocol::HttpsExcept(vec![name.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            extra_root_certificates: self.extra_roots()?,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        let what = format!("registry {}: anonymous pull of {image}", name.registry);
        let head = crate::retry::retry(what, crate::retry::oci_transient, || {
            client.fetch_manifest_digest(&parsed, &RegistryAuth::Anonymous)
        });
        match head.await {
            Ok(_) => Ok(Anonymous::Allowed),
            Err(
                OciDistributionError::UnauthorizedError { .. }
                | OciDistributionError::AuthenticationFailure(_),
            ) => Ok(Anonymous::Refused(401)),
            Err(OciDistributionError::ServerError { code, .. }) if code == 401 || code == 403 => {
                Ok(Anonymous::Refused(code))
            }
            Err(OciDistributionError::RegistryError { envelope, .. })
                if envelope.errors.iter().any(|x| {
                    let c = format!("{:?}", x.code);
                    c.eq_ignore_ascii_case("Unauthorized") || c.eq_ignore_ascii_case("Denied")
                }) =>
            {
                Ok(Anonymous::Refused(401))
            }
            Err(e) => Err(classify(
                e,
                &name,
                reference,
                &RegistryAuth::Anonymous,
                &client,
                &parsed,
            )
            .await),
        }
    }
}

/// Parses an image reference as oci-spec does. oci-spec matches one large regex, compiled on first
/// use: about 45 ms of CPU in a release build, most of a one-environment plan's own work. The
/// references perses-oci writes and reads (`host[:port]/path:tag[@sha256:...]`) take the hand-written
/// path below; anything it is not sure of goes to oci-spec, so results and errors stay oci-spec's.
pub fn parse_reference(s: &str) -> Result<Reference, RegistryError> {
    if let Some(r) = fast_reference(s) {
        return Ok(r);
    }
    s.parse::<Reference>()
        .map_err(|e| RegistryError::BadReference {
            reference: s.to_string(),
            message: e.to_string(),
        })
}

/// The Docker reference grammar (distribution's `reference` package, as oci-spec's regex spells
/// it) for ASCII input: `Some` only when that regex would match with the same name, tag and digest
/// and oci-spec's checks after it pass; `None` means "ask oci-spec".
fn fast_reference(s: &str) -> Option<Reference> {
    if !s.is_ascii() {
        // oci-spec's `\w` in tags is Unicode-aware: leave non-ASCII to it.
        return None;
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    // A ':' after the last '/' starts the tag; one before it belongs to a registry's port.
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let mut parts = name.split('/');
    let first = parts.next()?;
    let rest_parts: Vec<&str> = parts.collect();
    let first_ok = if rest_parts.is_empty() {
        is_path_component(first)
    } else {
        is_domain(first) || is_path_component(first)
    };
    if !first_ok || !rest_parts.iter().all(|p| is_path_component(p)) {
        return None;
    }
    if let Some(t) = tag {
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let b = t.as_bytes();
        if b.is_empty()
            || b.len() > 128
            || !word(b[0])
            || !b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
        {
            return None;
        }
    }
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':')?;
        let len = match algo {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return None,
        };
        if hex.len() != len || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > 255 {
        return None;
    }
    Some(match (tag, digest) {
        (None, None) => Reference::with_tag(registry, repository, "latest".into()),
        (Some(t), None) => Reference::with_tag(registry, repository, t.into()),
        (None, Some(d)) => Reference::with_digest(registry, repository, d.into()),
        (Some(t), Some(d)) => {
            Reference::with_tag_and_digest(registry, repository, t.into(), d.into())
        }
    })
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any run of `-`.
fn is_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// Dot-separated labels of `[a-zA-Z0-9-]` (no leading or trailing `-`), then an optional `:port`.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    host.split('.').all(|l| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    })
}

/// oci-spec's (and Docker's) split of a name into registry and repository: the first component
/// is a registry when it has a `.` or a `:` or is `localhost`; Docker Hub names get `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((left, right)) if left.contains('.') || left.contains(':') || left == "localhost" => {
            (left.to_string(), right.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "docker.io" && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

/// Turns an oci-client error into one that names registry, repository and tag.
pub(crate) async fn classify(
    e: OciDistributionError,
    name: &ImageName,
    tag: &str,
    auth: &RegistryAuth,
    client: &Client,
    reference: &Reference,
) -> RegistryError {
    let registry = name.registry.clone();
    let repository = name.repository.clone();
    let tag = tag.to_string();
    match &e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            let hint = match auth {
                RegistryAuth::Anonymous => format!(
                    "no credentials found for {registry} in the Docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json) or $REGISTRY_AUTH_FILE"
                ),
                _ => format!("the credentials found for {registry} were refused"),
            };
            RegistryError::Unauthorized {
                registry,
                repository,
                tag,
                hint,
            }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::TagNotFound {
            registry,
            repository,
            tag,
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|x| format!("{:?}", x.code))
                .collect();
            let has = |c: &str| codes.iter().any(|x| x.eq_ignore_ascii_case(c));
            if has("NameUnknown") {
                RegistryError::RepositoryNotFound {
                    registry,
                    repository,
                    tag,
                }
            } else if has("ManifestUnknown") {
                // Tell a missing repository from a missing tag: registries differ in which
                // code they answer for a manifest of an unknown repository.
                match client.list_tags(reference, auth, Some(1), None).await {
                    Err(OciDistributionError::RegistryError { envelope, .. })
                        if envelope.errors.iter().any(|x| {
                            format!("{:?}", x.code).eq_ignore_ascii_case("NameUnknown")
                        }) =>
                    {
                        RegistryError::RepositoryNotFound {
                            registry,
                            repository,
                            tag,
                        }
                    }
                    _ => RegistryError::TagNotFound {
                        registry,
                        repository,
                        tag,
                    },
                }
            } else if has("Denied") || has("Unauthorized") {
                RegistryError::Denied {
                    registry,
                    repository,
                    tag,
                    message: envelope
                        .errors
                        .iter()
                        .map(|x| x.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            } else {
                RegistryError::Other {
                    registry,
                    repository,
                    tag,
                    source: Box::new(e),
                }
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => RegistryError::TagNotFound {
            registry,
            repository,
            tag,
        },
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => {
            RegistryError::Unreachable {
                registry,
                repository,
                tag,
                message: error_chain(re),
            }
        }
        _ => RegistryError::Other {
            registry,
            repository,
            tag,
            source: Box::new(e),
        },
    }
}

/// The messages of an error and its sources, joined: reqwest hides the useful part (connection
/// refused, certificate unknown) in its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Probes a loopback registry: plain HTTP when `/v2/` answers over HTTP. TLS first is not
/// needed: a TLS server answers a plain request with a 400 that names the TLS handshake, which
/// we read as "not plain".
async fn probe_plain_http(registry: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(registry.replace("localhost", "127.0.0.1")),
    )
    .await
    else {
        // Unreachable either way; let the real request report it, over TLS by default.
        return false;
    };
    let req = format!("GET /v2/ HTTP/1.0\r\nHost: {registry}\r\n\r\n");
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 512];
    let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) => n,
        _ => return false,
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    // A TLS server speaking HTTP errors says so (Go: "Client sent an HTTP request to an HTTPS
    // server"); a plain registry answers 200 or 401 with the distribution API header.
    head.starts_with("HTTP/")
        && !head.contains("HTTPS server")
        && (head.contains(" 200 ") || head.contains(" 401 "))
}

/// Credentials for a registry: `$REGISTRY_AUTH_FILE` (podman's auth.json), then the Docker
/// config (`$DOCKER_CONFIG`, `~/.docker/config.json`, credential helpers). Anonymous when none.
pub async fn credentials(registry: &str) -> Result<RegistryAuth, RegistryError> {
    let registry = registry.to_string();
    tokio::task::spawn_blocking(move || credentials_blocking(&registry))
        .await
        .unwrap_or(Ok(RegistryAuth::Anonymous))
}

fn credentials_blocking(registry: &str) -> Result<RegistryAuth, RegistryError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let to_auth = |c: DockerCredential| {
        match c {
        DockerCredential::UsernamePassword(u, p) => Ok(RegistryAuth::Basic(u, p)),
        DockerCredential::IdentityToken(_) => Err(RegistryError::Credentials {
            registry: registry.to_string(),
            message: "identity tokens are not supported; use a username and password or a credential helper".into(),
        }),
    }
    };
    if let Some(f) =
        std::env::var_os("REGISTRY_AUTH_FILE").and_then(|p| std::fs::File::open(p).ok())
    {
        match docker_credential::get_credential_from_reader(std::io::BufReader::new(f), registry) {
            Ok(c) => return to_auth(c),
            Err(E::NoCredentialConfigured) => {}
            Err(e) => {
                return Err(RegistryError::Credentials {
                    registry: registry.to_string(),
                    message: describe_credential_error(&e),
                });
            }
        }
    }
    match docker_credential::get_credential(registry) {
        Ok(c) => to_auth(c),
        Err(E::NoCredentialConfigured) | Err(E::ConfigNotFound) | Err(E::ConfigReadError) => {
            Ok(RegistryAuth::Anonymous)
        }
        Err(e) => Err(RegistryError::Credentials {
            registry: registry.to_string(),
            message: describe_credential_error(&e),
        }),
    }
}

/// Says what went wrong without echoing a helper's output, which may hold a secret.
fn describe_credential_error(e: &docker_credential::CredentialRetrievalError) -> String {
    use docker_credential::CredentialRetrievalError as E;
    match e {
        E::HelperFailure { helper, .. } => format!("credential helper {helper:?} failed"),
        E::HelperCommunicationError => "cannot run the credential helper".into(),
        E::MalformedHelperResponse => "the credential helper gave a malformed answer".into(),
        E::CredentialDecodingError => "the stored credential cannot be decoded".into(),
        _ => "the Docker config cannot be read".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_like_docker() {
        assert_eq!(
            ImageName::parse("127.0.0.1:5000/team/perses"),
            ImageName {
                registry: "127.0.0.1:5000".into(),
                repository: "team/perses".into()
            }
        );
        assert_eq!(
            ImageName::parse("registry.company.com/perses-resources").registry,
            "registry.company.com"
        );
        assert_eq!(ImageName::parse("team/perses").registry, "docker.io");
        assert_eq!(ImageName::parse("perses").repository, "library/perses");
        assert_eq!(ImageName::parse("localhost/x").registry, "localhost");
    }

    /// The fast path agrees with oci-spec wherever it answers, and answers for what plan uses.
    fn agrees(s: &str) -> bool {
        let slow = Reference::try_from(s);
        match fast_reference(s) {
            Some(fast) => {
                assert_eq!(Ok(fast), slow, "{s:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn references_parse_like_oci_spec() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        for s in [
            "127.0.0.1:5000/team/perses:v1".to_string(),
            format!("127.0.0.1:5000/team/perses:v1@{digest}"),
            format!("127.0.0.1:5000/team/perses@{digest}"),
            "registry.example.com/perses-resources:v1.2.0".into(),
            "localhost/x".into(),
            "perses".into(),
            "team/perses:latest".into(),
            "index.docker.io/perses".into(),
            "a__b/c---d/e.f_g:Tag_1.-x".into(),
            "My-Host.example:443/repo".into(),
        ] {
            assert!(agrees(&s), "the fast path should answer for {s:?}");
        }
        for s in [
            "",
            "UPPER/case",
            "a..b",
            "a_-b",
            "-a",
            "a:",
            "a:-tag",
            "host:5000",
            "host:x/repo",
            "a@sha256:abc",
            "a@md5:0123456789abcdef0123456789abcdef",
            "a:ünicode",
            "a/b:c/d",
            "x/-y",
        ] {
            agrees(s);
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_references_agree_with_oci_spec(
            domain in proptest::option::of("[a-zA-Z0-9.:-]{1,12}"),
            path in proptest::collection::vec("[a-z0-9._A-Z-]{1,6}", 1..4),
            tag in proptest::option::of("[a-zA-Z0-9_.:-]{0,8}"),
            digest in proptest::option::of(("(sha256|sha384|sha512|md5|SHA256)", "[0-9a-fA-Fg]{60,130}")),
        ) {
            let mut s = String::new();
            if let Some(d) = domain {
                s.push_str(&d);
                s.push('/');
            }
            s.push_str(&path.join("/"));
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some((a, h)) = digest {
                s.push('@');
                s.push_str(&a);
                s.push(':');
                s.push_str(&h);
            }
            agrees(&s);
        }

        #[test]
        fn fast_references_agree_on_valid_shapes(
            domain in proptest::option::of("[a-z0-9]([a-z0-9-]{0,3}[a-z0-9])?(\\.[a-z0-9]{1,3}){0,2}(:[0-9]{1,5})?"),
            path in proptest::collection::vec("[a-z0-9]{1,3}(([._]|__|-{1,3})[a-z0-9]{1,3}){0,2}", 1..4),
            tag in proptest::option::of("[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,12}"),
            hex in proptest::option::of("[0-9a-f]{64}"),
        ) {
            let mut s = String::new();
            if let Some(d) = domain {
                s.push_str(&d);
                s.push('/');
            }
            s.push_str(&path.join("/"));
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(h) = hex {
                s.push_str("@sha256:");
                s.push_str(&h);
            }
            proptest::prop_assert!(agrees(&s), "the fast path should answer for {:?}", s);
        }
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.2.1"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("registry.company.com"));
        assert!(!is_loopback("127.0.0.1.example.com"));
    }
}
