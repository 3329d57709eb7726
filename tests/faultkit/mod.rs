//! Fault injection for the reliability tests: an HTTP proxy that answers chosen requests with
//! errors (or runs a hook as a request body flows) in front of a registry, or, terminating TLS
//! with the bed's own serving certificate, in front of an API server; a throwaway registry that
//! a test may kill and restart; and kill/restart of a bed process from its command line.
#![allow(dead_code)]

use crate::support::Bed;
use bytes::Bytes;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// What the proxy does with one request.
pub enum Action {
    Forward,
    /// Answer this status with this body instead of forwarding.
    Respond(u16, String),
    /// Answer 200 with this content type and body: a hostile registry's manifest.
    Serve(&'static str, Arc<Vec<u8>>),
    /// Forward, calling the hook with the number of request-body bytes sent so far, as they
    /// flow (to stop a server in the middle of an upload).
    ForwardTapped(Box<dyn FnMut(u64) + Send>),
}

/// One request as the rule sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The Authorization header was present (its value is never kept).
    pub authorized: bool,
}

type Rule = dyn Fn(&Seen) -> Action + Send + Sync;

struct Shared {
    rule: Box<Rule>,
    upstream: SocketAddr,
    upstream_tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    seen: Mutex<Vec<(Seen, Option<u16>)>>,
    injected: AtomicUsize,
}

/// A running proxy; stops when dropped (its runtime thread ends with the listener).
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// `host:port` to give clients.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Requests seen, with the status injected (None: forwarded).
    pub fn seen(&self) -> Vec<(Seen, Option<u16>)> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// A plain HTTP proxy to `upstream` (`127.0.0.1:PORT`).
    pub fn http(upstream: &str, rule: impl Fn(&Seen) -> Action + Send + Sync + 'static) -> Proxy {
        Proxy::start(upstream, None, None, Box::new(rule))
    }

    /// A TLS proxy to an API server of `bed`: serves the bed's API server certificate (valid for
    /// 127.0.0.1 under the bed's CA, so kubeconfigs keep their CA) and talks TLS upstream.
    pub fn api_server(
        bed: &Bed,
        upstream: &str,
        rule: impl Fn(&Seen) -> Action + Send + Sync + 'static,
    ) -> Proxy {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let pki = bed.dir.join("pki");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&std::fs::read(pki.join("apiserver.pem")).unwrap())
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_slice(&std::fs::read(pki.join("apiserver.key")).unwrap())
            .unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        // HTTP/1.1 only: the proxy reads requests one by one.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&std::fs::read(pki.join("ca.pem")).unwrap()) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1".to_string()).unwrap();
        Proxy::start(
            upstream,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))),
            Some((tokio_rustls::TlsConnector::from(Arc::new(client)), name)),
            Box::new(rule),
        )
    }

    fn start(
        upstream: &str,
        accept_tls: Option<tokio_rustls::TlsAcceptor>,
        upstream_tls: Option<(
            tokio_rustls::TlsConnector,
            rustls::pki_types::ServerName<'static>,
        )>,
        rule: Box<Rule>,
    ) -> Proxy {
        let shared = Arc::new(Shared {
            rule,
            upstream: upstream.parse().expect("upstream 127.0.0.1:PORT"),
            upstream_tls,
            seen: Mutex::new(Vec::new()),
            injected: AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        // Its own runtime: tests call the proxy from sync and async code alike.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                        _ = &mut stopped => break,
                    };
                    let sh = sh.clone();
                    let tls = accept_tls.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(sh.clone(), req));
                        let http = hyper::server::conn::http1::Builder::new();
                        match tls {
                            Some(acceptor) => {
                                if let Ok(s) = acceptor.accept(tcp).await {
                                    let _ = http
                                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                        .await;
                                }
                            }
                            None => {
                                let _ = http
                                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                                    .await;
                            }
                        }
                    });
                }
            });
        });
        Proxy {
            addr,
            shared,
            stop: Some(stop),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn full(status: u16, body: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    r
}

async fn handle(sh: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
    let seen = Seen {
        method: req.method().to_string(),
        uri: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        authorized: req.headers().contains_key("authorization"),
    };
    let action = (sh.rule)(&seen);
    if let Action::Serve(content_type, body) = &action {
        sh.seen.lock().unwrap().push((seen, Some(200)));
        sh.injected.fetch_add(1, Ordering::SeqCst);
        let mut r = Response::new(
            Full::new(Bytes::from(body.to_vec()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        r.headers_mut()
            .insert("content-type", content_type.parse().unwrap());
        return Ok(r);
    }
    if let Action::Respond(code, body) = action {
        sh.seen.lock().unwrap().push((seen, Some(code)));
        sh.injected.fetch_add(1, Ordering::SeqCst);
        return Ok(full(code, body));
    }
    sh.seen.lock().unwrap().push((seen, None));
    let (parts, body) = req.into_parts();
    let mut tap = match action {
        Action::ForwardTapped(f) => Some(f),
        _ => None,
    };
    let mut sent = 0u64;
    let stream = futures::StreamExt::map(BodyStream::new(body), move |frame| {
        let frame = frame.map_err(std::io::Error::other)?;
        if let (Some(data), Some(f)) = (frame.data_ref(), tap.as_mut()) {
            sent += data.len() as u64;
            f(sent);
        }
        Ok::<Frame<Bytes>, std::io::Error>(frame)
    });
    let body: Body = BodyExt::boxed_unsync(StreamBody::new(stream));
    let req = Request::from_parts(parts, body);
    // One upstream connection per request: simple, and a stopped upstream shows at once.
    let tcp = tokio::net::TcpStream::connect(sh.upstream).await?;
    let res = match &sh.upstream_tls {
        Some((conn, name)) => {
            let s = conn.connect(name.clone(), tcp).await?;
            send(hyper_util::rt::TokioIo::new(s), req).await?
        }
        None => send(hyper_util::rt::TokioIo::new(tcp), req).await?,
    };
    Ok(res.map(|b| b.map_err(std::io::Error::other).boxed_unsync()))
}

async fn send<T>(io: T, req: Request<Body>) -> Result<Response<Incoming>, std::io::Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    tx.send_request(req).await.map_err(std::io::Error::other)
}

/// Answers `code` to the first `n` requests, forwards the rest.
pub fn first_n(n: usize, code: u16) -> impl Fn(&Seen) -> Action + Send + Sync {
    let count = AtomicUsize::new(0);
    move |_| {
        if count.fetch_add(1, Ordering::SeqCst) < n {
            Action::Respond(code, format!("injected {code}"))
        } else {
            Action::Forward
        }
    }
}

/// A process of a bed (or started by a test), killed and restarted from its command line.
pub struct Proc {
    pub name: String,
    pub args: Vec<String>,
    pub pid: u32,
    /// The bed's pid file to keep current, so that the bed's teardown stops a restarted process.
    pid_file: Option<PathBuf>,
    log: PathBuf,
    /// Started by the test itself (not the bed): killed on drop.
    owned: bool,
}

impl Proc {
    /// A running bed process, by its pid file name (`prod-apiserver`, `registry-plain`, ...).
    pub fn of_bed(bed: &Bed, name: &str) -> Proc {
        let pid_file = bed.dir.join("pids").join(name);
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let args = cmdline(pid);
        Proc {
            name: name.to_string(),
            args,
            pid,
            pid_file: Some(pid_file),
            log: bed.dir.join("logs").join(format!("{name}.restarted.log")),
            owned: false,
        }
    }

    pub fn kill(&self) {
        kill_and_wait(self.pid);
    }

    /// Starts the same command line again, in its own session as the bed does.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = std::process::Command::new("setsid")
            .args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.pid = child.id();
        if let Some(f) = &self.pid_file {
            std::fs::write(f, format!("{}\n", self.pid)).unwrap();
        }
        // Reaped by a thread: a killed child must not stay a zombie that looks alive.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.owned {
            signal(self.pid, "KILL");
        }
    }
}

/// SIGKILL, then wait until the process is gone (or a zombie: dead, not yet reaped).
pub fn kill_and_wait(pid: u32) {
    signal(pid, "KILL");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !is_zombie(pid)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

pub fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `addr` accepts connections (or `limit` passes); returns whether it did.
pub fn wait_port(addr: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A plain registry of the test's own (the bed's plain registry config on another port and
/// storage directory), which the test may kill and restart without disturbing other tests.
pub struct OwnRegistry {
    pub proc: Proc,
    pub host: String,
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl OwnRegistry {
    pub fn start(bed: &Bed) -> OwnRegistry {
        let dir = tempfile::Builder::new()
            .prefix("perses-oci-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let storage = dir.path().join("data");
        let base = std::fs::read_to_string(bed.dir.join("registries/plain/config.yml")).unwrap();
        let config: String = base
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("addr:") {
                    format!("  addr: 127.0.0.1:{port}")
                } else if t.starts_with("filesystem:") {
                    format!("  filesystem: {{rootdirectory: {}}}", storage.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config + "\n").unwrap();
        let mut proc = Proc {
            name: "own-registry".into(),
            args: vec![
                "docker-registry".into(),
                "serve".into(),
                cfg.to_string_lossy().into_owned(),
            ],
            pid: 0,
            pid_file: None,
            log: dir.path().join("registry.log"),
            owned: true,
        };
        proc.restart();
        let host = format!("127.0.0.1:{port}");
        assert!(
            wait_port(&host, Duration::from_secs(10)),
            "the registry did not start"
        );
        OwnRegistry {
            proc,
            host,
            storage,
            _dir: dir,
        }
    }

    pub fn restart(&mut self) {
        self.proc.restart();
        assert!(
            wait_port(&self.host, Duration::from_secs(10)),
            "the registry did not restart"
        );
    }

    /// The manifest digest a tag points at in the storage, if the tag exists.
    pub fn tag_target(&self, repo: &str, tag: &str) -> Option<String> {
        let link = self
            .storage
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag)
            .join("current/link");
        std::fs::read_to_string(link).ok()
    }
}

/// A kubeconfig where context `context` reaches its API server through `proxy` (same CA, same
/// credentials); written into `dir`.
pub fn kubeconfig_via(bed: &Bed, context: &str, proxy: &Proxy, dir: &Path) -> PathBuf {
    let mut kc = kube::config::Kubeconfig::read_from(&bed.kubeconfig).unwrap();
    let cluster = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap();
    for c in &mut kc.clusters {
        if c.name == cluster
            && let Some(cl) = c.cluster.as_mut()
        {
            cl.server = Some(format!("https://{}", proxy.host()));
        }
    }
    let path = dir.join("kubeconfig-via-proxy");
    std::fs::write(&path, serde_json::to_string(&kc).unwrap()).unwrap();
    path
}

/// `127.0.0.1:PORT` of a bed API server, from its pid file's command line.
pub fn api_server_addr(bed: &Bed, cluster: &str) -> String {
    let port = std::fs::read_to_string(bed.dir.join("clusters").join(cluster).join("port"))
        .unwrap()
        .trim()
        .to_string();
    format!("127.0.0.1:{port}")
}

/// Waits until an API server answers `/readyz` through the admin token.
pub fn wait_api_ready(bed: &Bed, cluster: &str, limit: Duration) -> bool {
    let addr = api_server_addr(bed, cluster);
    let token = std::fs::read_to_string(bed.dir.join("pki/admin.token")).unwrap();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "2", "--cacert"])
            .arg(bed.dir.join("pki/ca.pem"))
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", token.trim()))
            .arg(format!("https://{addr}/readyz"))
            .output();
        if out.is_ok_and(|o| o.stdout == b"ok") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
