//! What an environment is now: its workload read from the cluster or the manifest file, and its
//! tags resolved to the digests the plan pins.

use super::{Backend, EnvContext, ManifestFile, Session, layout_dir};
use crate::artifact::layout::Layout;
use crate::cluster::observe;
use crate::manifest;
use crate::model::{Desired, Observed, Resolved};
use crate::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;

/// Resolves every artifact's tag: in its registry, or in its OCI layout.
async fn resolve_all(desired: &Desired, session: &Session) -> Result<Vec<Resolved>, String> {
    let all = futures::future::join_all(desired.artifacts.iter().map(|a| async {
        let digest = match layout_dir(desired, a) {
            Some(dir) => Layout::open(&dir)
                .and_then(|l| l.resolve(&a.tag))
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    d["digest"].as_str().map(str::to_string).ok_or_else(|| {
                        format!(
                            "{}: the index entry of tag {:?} has no digest",
                            dir.display(),
                            a.tag
                        )
                    })
                })?,
            None => session.resolve(&desired.registry, &a.image, &a.tag).await?,
        };
        Ok::<_, String>(Resolved {
            name: a.name.clone(),
            digest,
        })
    }))
    .await;
    all.into_iter().collect()
}

/// Reads a manifest-file target: the workload document, and the Perses config when the same
/// file holds its ConfigMap.
fn observe_manifest(
    desired: &Desired,
    path: &std::path::Path,
    resolved: Vec<Resolved>,
    registry: Arc<Registry>,
) -> Result<EnvContext, String> {
    let target = &desired.target;
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read manifest {shown}: {e}"))?;
    let docs = manifest::documents(&shown, &text).map_err(|e| e.to_string())?;
    // The default workload (statefulset/perses) is a hint: a file with one workload uses it.
    let named = desired.target.workload.name != "perses"
        || desired.target.workload.kind != crate::model::WorkloadKind::StatefulSet;
    let doc = match manifest::find_workload(&shown, &docs, Some(&target.workload)) {
        Ok(d) => d,
        Err(_) if !named => {
            manifest::find_workload(&shown, &docs, None).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let ex = observe::extract(&doc.value, target).map_err(
        |observe::ShapeError::ContainerNotFound { containers }| {
            format!(
                "container {:?} not found in {shown} (containers: {})",
                target.container,
                containers.join(", ")
            )
        },
    )?;
    let folders = ex.config_source.as_ref().and_then(|(cm, key)| {
        manifest::find_config_map(&docs, cm)
            .and_then(|d| d.value["data"][key].as_str().map(str::to_string))
            .and_then(|t| observe::provisioning_folders(&t).ok())
    });
    let mut desired = desired.clone();
    if desired.target.namespace.is_empty() {
        desired.target.namespace = doc.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
    }
    desired.target.workload = crate::model::WorkloadRef {
        kind: if doc.value["kind"] == "Deployment" {
            crate::model::WorkloadKind::Deployment
        } else {
            crate::model::WorkloadKind::StatefulSet
        },
        name: doc.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    // managedFields copied into a file describe the cluster it came from, not the file, which
    // perses-oci rewrites whoever "owns" it: nothing to adopt, no conflict to force.
    let mut artifacts = ex.artifacts;
    for a in &mut artifacts {
        a.owners.clear();
    }
    let observed = Observed {
        resource_version: String::new(),
        generation: doc.value["metadata"]["generation"].as_i64().unwrap_or(0),
        // No API server: the version checks do not apply (0.0 means unknown).
        server_version: (0, 0),
        artifacts,
        mounts: ex.mounts,
        provisioning_folders: folders,
        history: ex.history,
        pull: ex.pull,
        helm: ex.helm,
    };
    Ok(EnvContext {
        backend: Backend::Manifest(ManifestFile {
            path: path.to_path_buf(),
            text: text.clone(),
            doc: doc.clone(),
        }),
        desired,
        observed,
        resolved,
        registry,
    })
}

/// Reads the cluster and the registry for one environment.
pub async fn observe_env(
    desired: &Desired,
    kubeconfig: Option<PathBuf>,
) -> Result<EnvContext, String> {
    observe_env_in(&Session::new(kubeconfig), desired).await
}

/// The live side of an environment only: its tags are not resolved (`resolved` is empty).
/// What `history` and `rollback` need: a rollback restores recorded digests, and must work when
/// the file's tag is gone from the registry, the very case it is often run for.
pub async fn observe_env_live(
    desired: &Desired,
    kubeconfig: Option<PathBuf>,
) -> Result<EnvContext, String> {
    observe_env_with(&Session::new(kubeconfig), desired, false).await
}

/// [`observe_env`] with the clients of a session.
pub async fn observe_env_in(session: &Session, desired: &Desired) -> Result<EnvContext, String> {
    observe_env_with(session, desired, true).await
}

async fn observe_env_with(
    session: &Session,
    desired: &Desired,
    resolve: bool,
) -> Result<EnvContext, String> {
    let target = &desired.target;
    let registry = session.registry(&desired.registry);
    let resolve_all = |desired, session| async move {
        if resolve {
            resolve_all(desired, session).await
        } else {
            Ok(Vec::new())
        }
    };
    if let Some(path) = &target.manifest {
        let resolved = resolve_all(desired, session).await?;
        return observe_manifest(desired, path, resolved, registry);
    }
    let cluster = session.cluster(target.context.as_deref()).await?;
    let (obj, version, resolved) = tokio::join!(
        cluster.get_workload(target),
        cluster.server_version(),
        resolve_all(desired, session)
    );
    let obj = obj.map_err(|e| e.to_string())?;
    let version = version.map_err(|e| e.to_string())?;
    let resolved = resolved?;
    let ex = observe::extract(&obj, target)
        .map_err(|e| cluster.container_not_found(target, e).to_string())?;
    let folders = match &ex.config_source {
        Some((cm, key)) => match cluster.config_map_key(&target.namespace, cm, key).await {
            Ok(Some(text)) => observe::provisioning_folders(&text).ok(),
            _ => None,
        },
        None => None,
    };
    let observed = Observed {
        resource_version: ex.resource_version,
        generation: ex.generation,
        server_version: version,
        artifacts: ex.artifacts,
        mounts: ex.mounts,
        provisioning_folders: folders,
        history: ex.history,
        pull: ex.pull,
        helm: ex.helm,
    };
    Ok(EnvContext {
        desired: desired.clone(),
        backend: Backend::Cluster(cluster),
        observed,
        resolved,
        registry,
    })
}
