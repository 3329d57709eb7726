//! Test support for the bed's nodes: kubectl and helm as a person runs them, the real Perses
//! chart, reaching a pod only through `kubectl port-forward` (never by its address), and asking
//! the Perses server in a pod what it serves.

use super::{Bed, repo_root};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The real Perses chart of the shared corpus.
pub fn chart_dir() -> PathBuf {
    repo_root().join("../shared/corpus/helm-charts/perses")
}

fn check(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl Bed {
    /// The bed's kubectl on one context, with the bed's kubeconfig.
    pub fn kubectl(&self, context: &str) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .arg("--context")
            .arg(context);
        c
    }

    /// Runs kubectl and returns its stdout; fails the test when it fails.
    pub fn kubectl_ok(&self, context: &str, args: &[&str]) -> String {
        let out = self.kubectl(context).args(args).output().unwrap();
        check(&format!("kubectl {}", args.join(" ")), out)
    }

    /// `kubectl apply -f -` of a YAML or JSON text.
    pub fn kubectl_apply(&self, context: &str, namespace: &str, text: &str) -> String {
        let mut child = self
            .kubectl(context)
            .args(["apply", "-n", namespace, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        check("kubectl apply", child.wait_with_output().unwrap())
    }

    /// helm 3 or 4 on one context, with its caches and settings in `home` (not the user's).
    pub fn helm(&self, major: u8, context: &str, home: &Path) -> Command {
        let bin = if major == 3 { &self.helm3 } else { &self.helm4 };
        let mut c = Command::new(bin);
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .arg("--kube-context")
            .arg(context);
        c
    }

    /// The chart values that make the real chart run on the bed: the bed's Perses image and a
    /// readiness probe that answers within a second or two (the chart's default waits 5 s).
    pub fn chart_values(&self) -> Vec<String> {
        let (registry, rest) = self.perses_image.split_once('/').unwrap();
        let (name, version) = rest.split_once(':').unwrap();
        vec![
            format!("image.registry={registry}"),
            format!("image.name={name}"),
            format!("image.version={version}"),
            "readinessProbe.initialDelaySeconds=1".into(),
            "readinessProbe.periodSeconds=1".into(),
        ]
    }

    /// `helm install RELEASE` of the real chart, waiting for its pods; `extra` are more
    /// `--set` values.
    pub fn helm_install_chart(
        &self,
        major: u8,
        context: &str,
        namespace: &str,
        release: &str,
        home: &Path,
        extra: &[String],
    ) -> String {
        let mut cmd = self.helm(major, context, home);
        cmd.args(["install", release]).arg(chart_dir()).args([
            "--namespace",
            namespace,
            "--wait",
            "--timeout",
            "120s",
        ]);
        for v in self.chart_values().iter().chain(extra) {
            cmd.arg("--set").arg(v);
        }
        check(&format!("helm {major} install"), cmd.output().unwrap())
    }

    /// Waits until `pod` exists and is Ready (the kubelet's own condition).
    pub fn wait_pod_ready(&self, context: &str, namespace: &str, pod: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self
                .kubectl(context)
                .args(["-n", namespace, "get", "pod", pod, "-o", "json"])
                .output()
                .unwrap();
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                let ready = v["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if ready && v["metadata"]["deletionTimestamp"].is_null() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pod {namespace}/{pod} not ready within {timeout:?}:\n{}",
                self.kubectl(context)
                    .args(["-n", namespace, "describe", "pod", pod])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// `kubectl port-forward` to a pod: the only way tests reach a pod (through the API server and
/// the kubelet, into the pod's own network namespace). Stopped on drop.
pub struct PortForward {
    child: Child,
    pub port: u16,
}

impl PortForward {
    pub fn start(bed: &Bed, context: &str, namespace: &str, target: &str, remote: u16) -> Self {
        let mut child = bed
            .kubectl(context)
            .args([
                "-n",
                namespace,
                "port-forward",
                "--address",
                "127.0.0.1",
                target,
                &format!(":{remote}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // kubectl writes a line per connection: keep reading, or it dies of a broken pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        // "Forwarding from 127.0.0.1:41235 -> 8080"
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!("kubectl port-forward {target}: {line}{err}")
            });
        PortForward { child, port }
    }

    /// GET `path` on the forwarded port: (status, body). A connection the tunnel drops while
    /// it is being set up (kubectl's first streams) is tried again, for up to 20 s.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http_get(self.port, path) {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET on 127.0.0.1.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http(port, "GET", path, "application/json")
}

/// A minimal HTTP/1.1 request without a body on 127.0.0.1: (status, body).
pub fn http(port: u16, method: &str, path: &str, accept: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Deletes a manifest (and so every tag on it) from one of the bed's plain HTTP registries.
pub fn delete_manifest(registry: &str, repository: &str, digest: &str) {
    let port: u16 = registry.rsplit(':').next().unwrap().parse().unwrap();
    let (code, body) = http(
        port,
        "DELETE",
        &format!("/v2/{repository}/manifests/{digest}"),
        "application/vnd.oci.image.index.v1+json",
    )
    .unwrap();
    assert_eq!(code, 202, "DELETE {repository}@{digest}: {body}");
}

/// What a Perses server in a pod serves, asked through a port-forward.
pub struct PersesApi {
    pub forward: PortForward,
}

/// Kinds of the Perses API served without authentication: (kind, path segment).
pub const SERVED_KINDS: [(&str, &str); 10] = [
    ("Project", "projects"),
    ("Dashboard", "dashboards"),
    ("Datasource", "datasources"),
    ("Folder", "folders"),
    ("GlobalDatasource", "globaldatasources"),
    ("GlobalSecret", "globalsecrets"),
    ("GlobalVariable", "globalvariables"),
    ("Secret", "secrets"),
    ("User", "users"),
    ("Variable", "variables"),
];

impl PersesApi {
    pub fn connect(bed: &Bed, context: &str, namespace: &str, pod: &str) -> PersesApi {
        PersesApi {
            forward: PortForward::start(bed, context, namespace, &format!("pod/{pod}"), 8080),
        }
    }

    /// Every resource served, as `Kind project/name` (or `Kind name` for global kinds),
    /// sorted. Names as Perses stores them (it lowercases names and projects).
    pub fn resources(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, path) in SERVED_KINDS {
            let (code, body) = self.forward.get(&format!("/api/v1/{path}")).unwrap();
            assert_eq!(code, 200, "GET /api/v1/{path}: {body}");
            let items: Vec<Value> = serde_json::from_str(&body).unwrap();
            for i in items {
                let m = &i["metadata"];
                let name = m["name"].as_str().unwrap_or("?");
                out.push(match m["project"].as_str() {
                    Some(p) => format!("{kind} {p}/{name}"),
                    None => format!("{kind} {name}"),
                });
            }
        }
        out.sort();
        out
    }

    /// One dashboard as served (`None`: not found).
    pub fn dashboard(&self, project: &str, name: &str) -> Option<Value> {
        let (code, body) = self
            .forward
            .get(&format!("/api/v1/projects/{project}/dashboards/{name}"))
            .unwrap();
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    /// Polls until `f` holds for what is served (Perses provisions in the background after it
    /// starts), or panics with the last answer after `timeout`.
    pub fn wait_until<T: std::fmt::Debug>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&PersesApi) -> (bool, T),
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let (ok, last) = f(self);
            if ok {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "Perses did not get there in {timeout:?}; last: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The resources a provisioning folder holds, as `PersesApi::resources` names them: each
/// `.json`, `.yaml` or `.yml` file holds one object or a list of them.
pub fn resources_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = match ext {
                "json" => serde_json::from_str(&text).unwrap(),
                "yaml" | "yml" => serde_saphyr::from_str(&text).unwrap(),
                _ => continue,
            };
            let objs = match v {
                Value::Array(a) => a,
                o => vec![o],
            };
            for o in objs {
                let kind = o["kind"].as_str().unwrap().to_string();
                let m = &o["metadata"];
                let name = m["name"].as_str().unwrap().to_lowercase();
                out.push(match m["project"].as_str() {
                    Some(p) => format!("{kind} {}/{name}", p.to_lowercase()),
                    None => format!("{kind} {name}"),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
