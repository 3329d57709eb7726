//! The cluster side: connect through a kubeconfig context (or in-cluster), read the target
//! workload and the Perses config behind it, and write the managed volumes with server-side
//! apply (field manager `perses-oci`), for real or as a dry run.

pub mod lease;
pub mod observe;
pub mod rollout;

use crate::model::{FIELD_MANAGER, Target, WorkloadKind};
use crate::retry::{kube_transient, retry};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load kubeconfig{}: {source}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Kubeconfig {
        path: Option<PathBuf>,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("context {context:?} not found in the kubeconfig (known: {})", known.join(", "))]
    UnknownContext { context: String, known: Vec<String> },
    #[error("no kubeconfig found and not running in a pod: {source}")]
    InCluster {
        #[source]
        source: kube::config::InClusterError,
    },
    #[error("cannot create a client for context {context:?}: {source}")]
    Client {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {namespace}/{name} not found (context {context})")]
    NotFound {
        context: String,
        namespace: String,
        kind: String,
        name: String,
    },
    #[error(
        "container {container:?} not found in {workload} in namespace {namespace} (context {context}; containers: {})",
        containers.join(", ")
    )]
    ContainerNotFound {
        context: String,
        namespace: String,
        workload: String,
        container: String,
        containers: Vec<String>,
    },
    #[error(
        "forbidden (context {context}): {message}; RBAC: the credentials of context {context} (kubeconfig user {user:?}) need verb {verb:?} on {resource} in namespace {namespace}"
    )]
    Forbidden {
        context: String,
        user: String,
        verb: String,
        resource: String,
        namespace: String,
        message: String,
    },
    #[error(
        "conflict (context {context}): the fields perses-oci writes are owned by field manager{} {}; re-run with --force-conflicts to take them over ({message})",
        if managers.len() > 1 { "s" } else { "" },
        managers.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
    )]
    Conflict {
        context: String,
        managers: Vec<String>,
        message: String,
    },
    #[error(
        "{namespace}/{lease} (context {context}) is locked by {holder}: another apply is running; wait for it, retry with --lock-timeout, or if it died, `perses-oci force-unlock` (the lease also expires by itself)"
    )]
    Locked {
        context: String,
        namespace: String,
        lease: String,
        holder: String,
    },
    #[error("the API server of context {context} is unreachable: {message}")]
    Unreachable { context: String, message: String },
    #[error("API server of context {context} refused {what}: {code} {reason}: {message}")]
    Api {
        context: String,
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("unexpected answer from the API server of context {context}: {message}")]
    Unexpected { context: String, message: String },
}

/// A connection to one cluster (one kubeconfig context).
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    /// The context name used, for messages (`in-cluster` in a pod).
    pub context: String,
    /// The kubeconfig user of the context (or `serviceaccount` in a pod), for messages and
    /// the lock holder's identity.
    pub user: String,
    /// The API server's version, read once per connection: it is the same for every workload,
    /// and fifty environments on one cluster would otherwise ask fifty times.
    version: Arc<OnceCell<(u32, u32)>>,
}

/// Which kubeconfig to read: an explicit file, else `$KUBECONFIG` / `~/.kube/config`; with
/// neither present and `KUBERNETES_SERVICE_HOST` set, the pod's service account.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Cluster, ClusterError> {
    let kc = match kubeconfig {
        Some(p) => Some(
            Kubeconfig::read_from(p).map_err(|source| ClusterError::Kubeconfig {
                path: Some(p.to_path_buf()),
                source,
            })?,
        ),
        None => {
            let default_exists = std::env::var_os("KUBECONFIG").is_some()
                || home_kubeconfig().is_some_and(|p| p.exists());
            if default_exists || std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
                Some(
                    Kubeconfig::read()
                        .map_err(|source| ClusterError::Kubeconfig { path: None, source })?,
                )
            } else {
                None
            }
        }
    };
    let Some(kc) = kc else {
        // The pod's service account, as kube's `Config::incluster` reads it, but from a
        // directory tests can point elsewhere. An in-memory kubeconfig reuses kube's CA parsing
        // and its token-file reload (projected tokens rotate).
        let dir = std::env::var_os("PERSES_OCI_SERVICEACCOUNT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount"));
        let in_cluster = |source| ClusterError::InCluster { source };
        let unset = |e| in_cluster(kube::config::InClusterError::ReadEnvironmentVariable(e));
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(unset)?;
        let port: u16 = std::env::var("KUBERNETES_SERVICE_PORT")
            .map_err(unset)?
            .parse()
            .map_err(|e| in_cluster(kube::config::InClusterError::ParseClusterPort(e)))?;
        let server = if host.contains(':') {
            format!("https://[{host}]:{port}")
        } else {
            format!("https://{host}:{port}")
        };
        let namespace = std::fs::read_to_string(dir.join("namespace"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "default".into());
        let ca = dir.join("ca.crt");
        let sa: Kubeconfig = serde_json::from_value(serde_json::json!({
            "clusters": [{"name": "in-cluster", "cluster": {
                "server": server, "certificate-authority": ca.to_string_lossy()}}],
            "users": [{"name": "serviceaccount", "user": {
                "tokenFile": dir.join("token").to_string_lossy()}}],
            "contexts": [{"name": "in-cluster", "context": {
                "cluster": "in-cluster", "user": "serviceaccount", "namespace": namespace}}],
            "current-context": "in-cluster",
        }))
        .expect("a kubeconfig of strings deserializes");
        let opts = KubeConfigOptions {
            context: Some("in-cluster".into()),
            ..Default::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(sa, &opts)
            .await
            .map_err(|source| ClusterError::Kubeconfig {
                path: Some(dir.clone()),
                source,
            })?;
        // Re-read the CA periodically, as in-cluster clients do (CA rotation).
        config.root_cert_file = Some(ca);
        config.default_retry = false;
        let client = kube::Client::try_from(config).map_err(|source| ClusterError::Client {
            context: "in-cluster".into(),
            source,
        })?;
        return Ok(Cluster {
            client,
            context: "in-cluster".into(),
            user: "serviceaccount".into(),
            version: Arc::default(),
        });
    };
    let name = context
        .map(str::to_string)
        .or_else(|| kc.current_context.clone())
        .unwrap_or_default();
    let Some(named) = kc.contexts.iter().find(|c| c.name == name) else {
        return Err(ClusterError::UnknownContext {
            context: name,
            known: kc.contexts.iter().map(|c| c.name.clone()).collect(),
        });
    };
    let user = named
        .context
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_else(|| "unknown".into());
    let opts = KubeConfigOptions {
        context: Some(name.clone()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|source| ClusterError::Kubeconfig {
            path: kubeconfig.map(Path::to_path_buf),
            source,
        })?;
    // kube retries 429/503/504 up to 15 times with delays growing to 1000 s, silently, on top of
    // `crate::retry`: minutes of waiting on a broken API server. One bounded, logged policy.
    config.default_retry = false;
    let client = kube::Client::try_from(config).map_err(|source| ClusterError::Client {
        context: name.clone(),
        source,
    })?;
    Ok(Cluster {
        client,
        context: name,
        user,
        version: Arc::default(),
    })
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config"))
}

pub fn api_resource(kind: WorkloadKind) -> ApiResource {
    let gvk = GroupVersionKind::gvk("apps", "v1", kind.api_kind());
    let plural = match kind {
        WorkloadKind::StatefulSet => "statefulsets",
        WorkloadKind::Deployment => "deployments",
    };
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

impl Cluster {
    fn workloads(&self, target: &Target) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &target.namespace,
            &api_resource(target.workload.kind),
        )
    }

    /// Turns a kube error into one that names the context, the object and, for 403, the verb.
    pub fn error(
        &self,
        e: kube::Error,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> ClusterError {
        match e {
            kube::Error::Api(s) if s.code == 403 => ClusterError::Forbidden {
                context: self.context.clone(),
                user: self.user.clone(),
                verb: verb.into(),
                resource: resource.into(),
                namespace: namespace.into(),
                message: s.message.clone(),
            },
            kube::Error::Api(s) if s.code == 404 => ClusterError::NotFound {
                context: self.context.clone(),
                namespace: namespace.into(),
                kind: resource.trim_end_matches('s').into(),
                name: name.into(),
            },
            kube::Error::Api(s) if s.code == 409 && verb == "patch" => ClusterError::Conflict {
                context: self.context.clone(),
                managers: conflict_managers(&s),
                message: s.message.clone(),
            },
            kube::Error::Api(s) => ClusterError::Api {
                context: self.context.clone(),
                what: format!("{verb} {resource} {namespace}/{name}"),
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            other => ClusterError::Unreachable {
                context: self.context.clone(),
                message: crate::registry::error_chain(&other),
            },
        }
    }

    /// The error for a target container the workload does not have, naming the context,
    /// namespace, workload and the containers there are.
    pub fn container_not_found(&self, target: &Target, shape: observe::ShapeError) -> ClusterError {
        let observe::ShapeError::ContainerNotFound { containers } = shape;
        ClusterError::ContainerNotFound {
            context: self.context.clone(),
            namespace: target.namespace.clone(),
            workload: target.workload.to_string(),
            container: target.container.clone(),
            containers,
        }
    }

    /// `(major, minor)` of the API server, asked once per connection (a failure is not kept:
    /// the next caller asks again).
    pub async fn server_version(&self) -> Result<(u32, u32), ClusterError> {
        self.version
            .get_or_try_init(|| self.read_server_version())
            .await
            .copied()
    }

    async fn read_server_version(&self) -> Result<(u32, u32), ClusterError> {
        let info = retry(
            format!("API server of context {}: read the version", self.context),
            kube_transient,
            || self.client.apiserver_version(),
        )
        .await
        .map_err(|e| ClusterError::Unreachable {
            context: self.context.clone(),
            message: crate::registry::error_chain(&e),
        })?;
        let num = |s: &str| s.trim_end_matches('+').parse::<u32>().unwrap_or(0);
        Ok((num(&info.major), num(&info.minor)))
    }

    /// The whole workload object as JSON.
    pub async fn get_workload(&self, target: &Target) -> Result<Value, ClusterError> {
        let api = self.workloads(target);
        let resource = api_resource(target.workload.kind).plural;
        let what = format!(
            "API server of context {}: get {resource} {}/{}",
            self.context, target.namespace, target.workload.name
        );
        let get = retry(what, kube_transient, || api.get(&target.workload.name));
        let obj = get.await.map_err(|e| {
            self.error(
                e,
                "get",
                &resource,
                &target.namespace,
                &target.workload.name,
            )
        })?;
        serde_json::to_value(obj).map_err(|e| ClusterError::Unexpected {
            context: self.context.clone(),
            message: e.to_string(),
        })
    }

    /// Reads a ConfigMap key (the Perses config behind `--config`).
    pub async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<String>, ClusterError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let what = format!(
            "API server of context {}: get configmaps {namespace}/{name}",
            self.context
        );
        let cm = retry(what, kube_transient, || api.get_opt(name))
            .await
            .map_err(|e| self.error(e, "get", "configmaps", namespace, name))?;
        Ok(cm.and_then(|c| c.data).and_then(|mut d| d.remove(key)))
    }

    /// The imagePullSecrets of a service account; `None` when it cannot be read (no RBAC `get`
    /// on serviceaccounts, or it does not exist).
    pub async fn account_pull_secrets(&self, namespace: &str, name: &str) -> Option<Vec<String>> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let what = format!(
            "API server of context {}: get serviceaccounts {namespace}/{name}",
            self.context
        );
        let sa = retry(what, kube_transient, || api.get_opt(name))
            .await
            .ok()??;
        Some(
            sa.image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect(),
        )
    }

    /// The newest revision of a Helm release: Helm 3 and 4 keep one Secret per revision,
    /// labelled `owner=helm`, `name=RELEASE`, `version=N`. Only their metadata is asked for
    /// (never the release itself); `None` without RBAC `list` on secrets.
    pub async fn helm_revision(&self, namespace: &str, release: &str) -> Option<u32> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let lp = kube::api::ListParams::default().labels(&format!("owner=helm,name={release}"));
        let what = format!(
            "API server of context {}: list secrets {namespace} (owner=helm,name={release})",
            self.context
        );
        let list = retry(what, kube_transient, || api.list_metadata(&lp))
            .await
            .ok()?;
        list.items
            .iter()
            .filter_map(|m| m.metadata.labels.as_ref()?.get("version")?.parse().ok())
            .max()
    }

    /// The registries a pull secret holds credentials for (the keys of its Docker config; the
    /// credentials themselves are neither kept nor shown). `None` when it cannot be read.
    pub async fn secret_registries(&self, namespace: &str, name: &str) -> Option<Vec<String>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let what = format!(
            "API server of context {}: get secrets {namespace}/{name}",
            self.context
        );
        let secret = retry(what, kube_transient, || api.get_opt(name))
            .await
            .ok()??;
        let data = secret.data.unwrap_or_default();
        let mut out = Vec::new();
        if let Some(b) = data.get(".dockerconfigjson")
            && let Ok(v) = serde_json::from_slice::<Value>(&b.0)
            && let Some(auths) = v["auths"].as_object()
        {
            out.extend(
                auths
                    .keys()
                    .map(|k| crate::plan::pull::registry_of_auth_key(k)),
            );
        }
        if let Some(b) = data.get(".dockercfg")
            && let Ok(Value::Object(auths)) = serde_json::from_slice::<Value>(&b.0)
        {
            out.extend(
                auths
                    .keys()
                    .map(|k| crate::plan::pull::registry_of_auth_key(k)),
            );
        }
        Some(out)
    }

    /// Server-side apply of `body` with field manager perses-oci. `dry_run` asks the server what
    /// it would store without storing it.
    pub async fn apply(
        &self,
        target: &Target,
        body: &Value,
        dry_run: bool,
        force: bool,
    ) -> Result<Value, ClusterError> {
        let api = self.workloads(target);
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        if force {
            pp = pp.force();
        }
        if dry_run {
            pp = pp.dry_run();
        }
        let resource = api_resource(target.workload.kind).plural;
        // Server-side apply of the same body gives the same object, so a write whose answer was
        // lost (timeout, reset, 5xx) is safe to send again; a 409 is a field conflict, not retried.
        let what = format!(
            "API server of context {}: {}apply {resource} {}/{}",
            self.context,
            if dry_run { "dry-run " } else { "" },
            target.namespace,
            target.workload.name
        );
        let patch = Patch::Apply(body);
        let patch = retry(what, kube_transient, || {
            api.patch(&target.workload.name, &pp, &patch)
        });
        let obj = patch.await.map_err(|e| {
            self.error(
                e,
                "patch",
                &resource,
                &target.namespace,
                &target.workload.name,
            )
        })?;
        serde_json::to_value(obj).map_err(|e| ClusterError::Unexpected {
            context: self.context.clone(),
            message: e.to_string(),
        })
    }
}

/// The managers named in a server-side apply conflict (`conflict with "helm" using apps/v1`).
pub fn conflict_managers(s: &kube::core::Status) -> Vec<String> {
    let mut texts = vec![s.message.clone()];
    if let Some(d) = &s.details {
        texts.extend(d.causes.iter().map(|c| c.message.clone()));
    }
    let mut out: Vec<String> = Vec::new();
    for t in texts {
        let mut rest = t.as_str();
        while let Some(i) = rest.find("conflict with \"") {
            rest = &rest[i + "conflict with \"".len()..];
            if let Some(j) = rest.find('"') {
                let m = rest[..j].to_string();
                if !out.contains(&m) {
                    out.push(m);
                }
                rest = &rest[j..];
            }
        }
    }
    out
}
