//! Test support: one real test bed (etcd + kube-apiserver clusters, a real node for `prod` and
//! `staging`, OCI registries) per test binary, started through `scripts/testbed up` so tests and
//! people use the same bed, and helpers to create Perses workloads as the Helm chart renders
//! them and to push small images.
#![allow(dead_code)]

pub mod node;

use flate2::{Compression, write::GzEncoder};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client as OciClient, Reference};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The running bed, as `scripts/testbed up` described it.
#[derive(Debug)]
pub struct Bed {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Plain HTTP registry, `127.0.0.1:PORT`.
    pub registry: String,
    /// htpasswd basic-auth registry; credentials in `docker_config`.
    pub registry_auth: String,
    /// TLS registry with a self-signed CA (`registry_ca`).
    pub registry_tls: String,
    pub registry_ca: PathBuf,
    pub docker_config: PathBuf,
    /// The bed's kubectl (same version as the API servers).
    pub kubectl: PathBuf,
    /// helm 3 and helm 4, built by `scripts/testbed install`.
    pub helm3: PathBuf,
    pub helm4: PathBuf,
    pub oras: PathBuf,
    /// Clusters with a node (kubelet + containerd, controllers, scheduler).
    pub nodes: Vec<String>,
    /// Images every node can pull: busybox, and the Perses server as the chart runs it.
    pub busybox_image: String,
    pub perses_image: String,
    /// All exported variables, to pass to child processes.
    pub vars: Vec<(String, String)>,
    // Keeps the temporary bed directory alive for the whole test binary.
    _tmp: Option<tempfile::TempDir>,
}

static BED: OnceLock<Bed> = OnceLock::new();

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bed of this test binary: started on first use, torn down by the bed's watchdog when this
/// process exits. `PERSES_OCI_TESTBED_ENV=path/to/env.sh` reuses a bed that is already up
/// (`scripts/testbed up`), which makes a local edit-test loop fast.
pub fn bed() -> &'static Bed {
    BED.get_or_init(|| {
        if let Ok(env_file) = std::env::var("PERSES_OCI_TESTBED_ENV") {
            let text = std::fs::read_to_string(&env_file)
                .unwrap_or_else(|e| panic!("PERSES_OCI_TESTBED_ENV={env_file}: {e}"));
            return Bed::from_exports(&text, None);
        }
        let tmp = tempfile::Builder::new()
            .prefix("perses-oci-bed-")
            .tempdir()
            .expect("temp dir for the bed");
        let out = Command::new(repo_root().join("scripts/testbed"))
            .arg("up")
            .arg("--dir")
            .arg(tmp.path())
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/testbed up");
        assert!(
            out.status.success(),
            "scripts/testbed up failed (did you run scripts/testbed install?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Bed::from_exports(&String::from_utf8_lossy(&out.stdout), Some(tmp))
    })
}

impl Bed {
    fn from_exports(text: &str, tmp: Option<tempfile::TempDir>) -> Bed {
        let mut vars = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("export ") else {
                continue;
            };
            let (k, v) = rest.split_once('=').expect("export K=V");
            // Values are written with printf %q: only paths, without spaces, are expected.
            vars.push((k.to_string(), v.trim_matches('\'').to_string()));
        }
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("the bed did not export {k}"))
        };
        Bed {
            dir: get("PERSES_OCI_TESTBED_DIR").into(),
            kubeconfig: get("KUBECONFIG").into(),
            registry: get("PERSES_OCI_TEST_REGISTRY"),
            registry_auth: get("PERSES_OCI_TEST_REGISTRY_AUTH"),
            registry_tls: get("PERSES_OCI_TEST_REGISTRY_TLS"),
            registry_ca: get("PERSES_OCI_TEST_REGISTRY_CA").into(),
            docker_config: get("DOCKER_CONFIG").into(),
            kubectl: get("PERSES_OCI_TEST_KUBECTL").into(),
            helm3: get("PERSES_OCI_TEST_HELM3").into(),
            helm4: get("PERSES_OCI_TEST_HELM4").into(),
            oras: get("PERSES_OCI_TEST_ORAS").into(),
            nodes: get("PERSES_OCI_TEST_NODES")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            busybox_image: get("PERSES_OCI_TEST_BUSYBOX_IMAGE"),
            perses_image: get("PERSES_OCI_TEST_PERSES_IMAGE"),
            vars,
            _tmp: tmp,
        }
    }

    /// A kube client for one context of the bed's kubeconfig.
    pub async fn client(&self, context: &str) -> kube::Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("read bed kubeconfig");
        let opts = KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .expect("bed kubeconfig context");
        kube::Client::try_from(config).expect("kube client")
    }

    /// The registry credentials the bed wrote into its Docker config.
    pub fn registry_credentials(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.docker_config.join("config.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let b64 = v["auths"][&self.registry_auth]["auth"].as_str().unwrap();
        let decoded = base64_decode(b64);
        let (u, p) = decoded.split_once(':').unwrap();
        (u.to_string(), p.to_string())
    }

    /// The perses-oci binary with the bed's environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("perses-oci").unwrap();
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd.env("NO_COLOR", "1");
        // Push records tree stamps; tests keep them out of the home directory.
        cmd.env(
            "PERSES_OCI_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("perses-oci-cache"),
        );
        cmd
    }
}

fn base64_decode(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = T.iter().position(|&t| t == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8(out).unwrap()
}

/// A fresh namespace name, unique within this test binary and across runs on a shared bed.
pub fn unique_ns(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id())
}

pub async fn create_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    // Where a controller manager runs, the ServiceAccount admission plugin refuses pods until
    // the namespace's `default` service account exists: wait for it (a second at most).
    // (A cluster runs the service account controller when namespace `default` has one.)
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let defaults: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    if matches!(defaults.get_opt("default").await, Ok(Some(_))) {
        for _ in 0..50 {
            match sas.get_opt("default").await {
                Ok(Some(_)) => return,
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }
}

/// An image volume as the Helm chart's `ociArtifacts` renders it.
#[derive(Debug, Clone)]
pub struct ChartArtifact {
    pub name: String,
    pub reference: String,
    pub pull_policy: Option<String>,
    pub mount_path: String,
    pub sub_path: Option<String>,
}

impl ChartArtifact {
    pub fn new(reference: &str) -> ChartArtifact {
        ChartArtifact {
            name: "perses-resources".into(),
            reference: reference.into(),
            pull_policy: Some("IfNotPresent".into()),
            mount_path: "/etc/perses/provisioning".into(),
            sub_path: None,
        }
    }
}

/// The Perses server config the chart renders (file database, one provisioning folder).
pub const CHART_CONFIG_YAML: &str = "database:\n  file:\n    folder: /perses\n    extension: json\nprovisioning:\n  folders:\n    - /etc/perses/provisioning\n  interval: 10m\n";

/// The Perses image the workloads run: the bed's own (its registry, which every node can pull
/// from), or the upstream name where no bed was started.
pub fn perses_image() -> String {
    BED.get()
        .map(|b| b.perses_image.clone())
        .unwrap_or_else(|| "persesdev/perses:v0.54.0".into())
}

/// The StatefulSet the Perses chart renders for release `perses` (values: the bed's Perses
/// image, `readinessProbe.initialDelaySeconds=1`, `periodSeconds=2`), as JSON. On a bed
/// cluster with a node it really runs: tests that need the chart's exact output use helm.
pub fn chart_statefulset(namespace: &str, artifact: Option<&ChartArtifact>) -> Value {
    let mut mounts = vec![
        json!({"name": "config", "mountPath": "/etc/perses/config"}),
        json!({"name": "data", "mountPath": "/perses"}),
        json!({"name": "plugins", "mountPath": "/etc/perses/plugins"}),
    ];
    let mut volumes = vec![
        json!({"name": "config", "configMap": {"name": "perses", "defaultMode": 420}}),
        json!({"name": "data", "emptyDir": {}}),
        json!({"name": "plugins", "emptyDir": {}}),
    ];
    if let Some(a) = artifact {
        let mut m = json!({"name": a.name, "mountPath": a.mount_path});
        if let Some(s) = &a.sub_path {
            m["subPath"] = json!(s);
        }
        mounts.push(m);
        let mut image = json!({"reference": a.reference});
        if let Some(p) = &a.pull_policy {
            image["pullPolicy"] = json!(p);
        }
        volumes.push(json!({"name": a.name, "image": image}));
    }
    let labels = json!({
        "app.kubernetes.io/name": "perses",
        "app.kubernetes.io/instance": "perses",
    });
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "perses",
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "perses",
                "app.kubernetes.io/instance": "perses",
                "app.kubernetes.io/component": "workload",
                "app.kubernetes.io/part-of": "perses",
                "app.kubernetes.io/managed-by": "Helm",
            },
        },
        "spec": {
            "serviceName": "perses-headless",
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"checksum/config": hex::encode(Sha256::digest(CHART_CONFIG_YAML))},
                },
                "spec": {
                    "securityContext": {"fsGroup": 2000},
                    "containers": [{
                        "name": "perses",
                        "image": perses_image(),
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--config=/etc/perses/config/config.yaml",
                                 "--web.listen-address=:8080", "--web.hide-port=false",
                                 "--web.telemetry-path=/metrics", "--log.level=info",
                                 "--log.method-trace=true"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {
                            "httpGet": {"path": "/api/v1/health", "port": "http", "scheme": "HTTP"},
                            "initialDelaySeconds": 1, "periodSeconds": 2, "timeoutSeconds": 5,
                            "successThreshold": 1, "failureThreshold": 5,
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
}

/// Creates the chart's ConfigMap and StatefulSet with field manager `helm`: a create (POST) is
/// recorded with operation `Update`, as Helm 3's client-side apply leaves it.
pub async fn create_chart_workload(
    client: &kube::Client,
    namespace: &str,
    artifact: Option<&ChartArtifact>,
) -> StatefulSet {
    let pp = PostParams {
        field_manager: Some("helm".into()),
        ..Default::default()
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "perses", "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        "data": {"config.yaml": CHART_CONFIG_YAML},
    }))
    .unwrap();
    cms.create(&pp, &cm).await.expect("create config map");
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let obj: StatefulSet = serde_json::from_value(chart_statefulset(namespace, artifact)).unwrap();
    sts.create(&pp, &obj).await.expect("create statefulset")
}

/// Which registry of the bed, and how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Plain,
    Auth,
    Tls,
}

impl Bed {
    pub fn registry_host(&self, r: Reg) -> &str {
        match r {
            Reg::Plain => &self.registry,
            Reg::Auth => &self.registry_auth,
            Reg::Tls => &self.registry_tls,
        }
    }

    /// An oci-client set up for one of the bed's registries (CA, plain HTTP, credentials).
    pub fn oci(&self, r: Reg) -> (OciClient, RegistryAuth) {
        let mut cfg = ClientConfig {
            use_monolithic_push: true,
            ..Default::default()
        };
        match r {
            Reg::Plain | Reg::Auth => {
                cfg.protocol = ClientProtocol::HttpsExcept(vec![self.registry_host(r).to_string()])
            }
            Reg::Tls => cfg
                .extra_root_certificates
                .push(oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: std::fs::read(&self.registry_ca).unwrap(),
                }),
        }
        let auth = if r == Reg::Auth {
            let (u, p) = self.registry_credentials();
            RegistryAuth::Basic(u, p)
        } else {
            RegistryAuth::Anonymous
        };
        (OciClient::new(cfg), auth)
    }
}

/// A gzip tar layer of `files` (path -> content), deterministic, with its two digests.
pub fn tar_gz_layer(files: &BTreeMap<String, Vec<u8>>) -> (Vec<u8>, String, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for path in files.keys() {
        let mut p = Path::new(path).parent();
        while let Some(d) = p {
            if d.as_os_str().is_empty() {
                break;
            }
            dirs.insert(d.to_path_buf());
            p = d.parent();
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, format!("{}/", d.display()), &[][..])
            .unwrap();
    }
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, path, &data[..]).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let blob = gz.finish().unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    (blob, digest, diff_id)
}

/// Pushes a one-layer image holding `files` to `repo:tag` on a bed registry; returns the
/// manifest digest.
pub async fn push_files(
    bed: &Bed,
    r: Reg,
    repo: &str,
    tag: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> String {
    let (client, auth) = bed.oci(r);
    let reference: Reference = format!("{}/{repo}:{tag}", bed.registry_host(r))
        .parse()
        .unwrap();
    let (blob, digest, diff_id) = tar_gz_layer(files);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let layer = ImageLayer::new(
        blob.clone(),
        "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        None,
    );
    let cfg = Config::new(
        config_bytes.clone(),
        "application/vnd.oci.image.config.v1+json".into(),
        None,
    );
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        config: OciDescriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&config_bytes))),
            size: config_bytes.len() as i64,
            ..Default::default()
        },
        layers: vec![OciDescriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest,
            size: blob.len() as i64,
            ..Default::default()
        }],
        ..Default::default()
    };
    client
        .push(&reference, &[layer], cfg, &auth, Some(manifest))
        .await
        .expect("push image");
    client
        .fetch_manifest_digest(&reference, &auth)
        .await
        .expect("digest of pushed image")
}

/// Files from the shared corpus (`../shared/corpus/perses/<sub>`), keyed by `prefix/<name>`.
pub fn corpus_files(sub: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = repo_root().join("../shared/corpus/perses").join(sub);
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            let name = e.file_name().to_string_lossy().to_string();
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            out.insert(key, std::fs::read(e.path()).unwrap());
        }
    }
    out
}
