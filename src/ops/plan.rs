//! `plan`: for each environment, read the live workload and resolve the tags, diff, and ask the
//! API server (dry run) what it would store. Environments are planned concurrently; one that
//! fails is reported and does not hide the others.

use crate::artifact::diff::content_diff;
use crate::artifact::lint::{self, lint_files};
use crate::artifact::source::{self, Source};
use crate::cluster::{self, Cluster, ClusterError, observe};
use crate::config::{self, Project};
use crate::model::{
    Change, Check, Desired, EnvError, EnvPlan, Observed, Plan, PlanInputs, Resolved, Severity,
    Target, WorkloadKind, WorkloadRef,
};
use crate::plan::{desired_state, diff};
use crate::registry::Registry;
use std::path::PathBuf;

/// What `plan` was asked for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub dir: PathBuf,
    pub envs: Vec<String>,
    pub all: bool,
    pub kubeconfig: Option<PathBuf>,
}

/// Everything computed for one environment, kept for apply.
pub struct EnvContext {
    pub desired: Desired,
    pub cluster: Cluster,
    pub observed: Observed,
    pub resolved: Vec<Resolved>,
}

/// Plans every selected environment. Errors of the project itself (no environments, unknown
/// names) are returned; errors of one environment land in its `EnvPlan`.
pub async fn plan(
    opts: &PlanOptions,
) -> Result<(Project, Plan, Vec<Option<EnvContext>>), config::ConfigError> {
    let project = config::load_project(&opts.dir)?;
    let names = project.select(&opts.envs, opts.all)?;
    let futures = names
        .iter()
        .map(|name| plan_env(&project, name, opts.kubeconfig.clone()));
    let results = futures::future::join_all(futures).await;
    let mut envs = Vec::new();
    let mut contexts = Vec::new();
    for (p, c) in results {
        envs.push(p);
        contexts.push(c);
    }
    Ok((project, Plan { envs }, contexts))
}

fn failed(env: &str, target: Option<&Target>, message: String) -> EnvPlan {
    EnvPlan {
        env: env.to_string(),
        target: target.cloned().unwrap_or_else(|| Target {
            context: None,
            namespace: String::new(),
            workload: WorkloadRef {
                kind: WorkloadKind::StatefulSet,
                name: String::new(),
            },
            container: String::new(),
        }),
        changes: vec![],
        checks: vec![],
        error: Some(EnvError { message }),
        inputs: None,
    }
}

/// Plans one environment; never fails, the error is in the plan.
pub async fn plan_env(
    project: &Project,
    name: &str,
    kubeconfig: Option<PathBuf>,
) -> (EnvPlan, Option<EnvContext>) {
    let desired = match config::load_env(project, name) {
        Ok(d) => d,
        Err(e) => return (failed(name, None, e.to_string()), None),
    };
    match observe_env(&desired, kubeconfig).await {
        Ok(ctx) => (plan_from(&ctx).await, Some(ctx)),
        Err(e) => (failed(name, Some(&desired.target), e), None),
    }
}

/// Reads the cluster and the registry for one environment.
pub async fn observe_env(
    desired: &Desired,
    kubeconfig: Option<PathBuf>,
) -> Result<EnvContext, String> {
    let target = &desired.target;
    let cluster = cluster::connect(kubeconfig.as_deref(), target.context.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let registry = Registry::new(desired.registry.clone());
    let resolve_all = futures::future::join_all(desired.artifacts.iter().map(|a| async {
        registry
            .resolve(&a.image, &a.tag)
            .await
            .map(|digest| Resolved {
                name: a.name.clone(),
                digest,
            })
    }));
    let (obj, version, resolved) = tokio::join!(
        cluster.get_workload(target),
        cluster.server_version(),
        resolve_all
    );
    let obj = obj.map_err(|e| e.to_string())?;
    let version = version.map_err(|e| e.to_string())?;
    let resolved = resolved
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let ex = observe::extract(&obj, target).map_err(|e| match e {
        observe::ShapeError::ContainerNotFound { containers } => ClusterError::ContainerNotFound {
            context: cluster.context.clone(),
            namespace: target.namespace.clone(),
            workload: target.workload.to_string(),
            container: target.container.clone(),
            containers,
        }
        .to_string(),
    })?;
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
    };
    Ok(EnvContext {
        desired: desired.clone(),
        cluster,
        observed,
        resolved,
    })
}

/// The apply body of an environment: every desired artifact with its resolved digest.
pub fn body_for(ctx: &EnvContext, annotations: &[(String, String)]) -> serde_json::Value {
    let states: Vec<_> = ctx
        .desired
        .artifacts
        .iter()
        .map(|a| {
            let digest = ctx
                .resolved
                .iter()
                .find(|r| r.name == a.name)
                .map(|r| r.digest.as_str());
            (a.name.clone(), desired_state(a, digest))
        })
        .collect();
    observe::apply_body(&ctx.desired.target, &states, annotations)
}

/// Checks what the server would store (or stored) against what was asked: the API server drops
/// image volumes silently when the ImageVolume feature gate is off.
pub fn dropped_checks(ctx: &EnvContext, stored: &serde_json::Value, dry_run: bool) -> Vec<Check> {
    let Ok(ex) = observe::extract(stored, &ctx.desired.target) else {
        return vec![];
    };
    let mut out = Vec::new();
    for a in &ctx.desired.artifacts {
        if !ex.artifacts.iter().any(|l| l.name == a.name) {
            let volumes: Vec<String> = stored["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect();
            out.push(Check {
                severity: Severity::Error,
                code: "image_volume_dropped".into(),
                message: format!(
                    "the API server of context {} {} the image volume {:?} and its mount without an error: the ImageVolume feature gate is off on that API server (Kubernetes 1.31-1.34 default, or --feature-gates=ImageVolume=false). It {} volumes [{}]. Enable the gate on the API server and kubelets (and use containerd 2.1+ or CRI-O).",
                    ctx.cluster.context,
                    if dry_run { "would drop" } else { "dropped" },
                    a.name,
                    if dry_run { "would store" } else { "stored" },
                    volumes.join(", ")
                ),
            });
        }
    }
    out
}

/// Reads the new (and live) artifact of each change: which Perses resources change inside it,
/// whether `sub_path` exists in the new one (else the pod fails to start), and whether Perses
/// would load its files (else it skips them with only a log line).
async fn content_checks(ctx: &EnvContext, changes: &mut [Change], checks: &mut Vec<Check>) {
    let registry = Registry::new(ctx.desired.registry.clone());
    for change in changes.iter_mut() {
        let Some(after) = &change.after else { continue };
        let Some(spec) = ctx
            .desired
            .artifacts
            .iter()
            .find(|a| a.name == change.artifact)
        else {
            continue;
        };
        let digest = ctx
            .resolved
            .iter()
            .find(|r| r.name == spec.name)
            .map(|r| r.digest.clone());
        let new_ref = match &digest {
            Some(d) => format!("{}@{d}", spec.image),
            None => after.reference.clone(),
        };
        let new = match source::load(&Source::Registry(new_ref.clone()), &registry).await {
            Ok(l) => l,
            Err(e) => {
                checks.push(Check {
                    severity: Severity::Error,
                    code: "artifact_unreadable".into(),
                    message: format!("artifact {:?}: cannot read {new_ref}: {e}", spec.name),
                });
                continue;
            }
        };
        let new_files = match source::at_sub_path(&new.files, after.sub_path.as_deref()) {
            Ok(f) => f,
            Err(e) => {
                checks.push(Check {
                    severity: Severity::Error,
                    code: "sub_path_missing".into(),
                    message: format!(
                        "artifact {:?}: {e}: the pod would fail to start (the container runtime checks subPath when it creates the container)",
                        spec.name
                    ),
                });
                continue;
            }
        };
        let report = lint_files(&new_files, &[]);
        if report.has_errors() {
            let problems: Vec<String> = report
                .files
                .iter()
                .flat_map(|f| {
                    f.problems
                        .iter()
                        .filter(|p| p.severity == lint::Severity::Error)
                        .map(move |p| format!("{}: {}", f.path, p.message))
                })
                .collect();
            let shown = problems
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            let more = problems.len().saturating_sub(5);
            checks.push(Check {
                severity: Severity::Error,
                code: "artifact_lint".into(),
                message: format!(
                    "artifact {:?}: Perses would skip files of {new_ref}: {shown}{} (see `perses-oci lint {new_ref}{}`)",
                    spec.name,
                    if more > 0 { format!(" and {more} more") } else { String::new() },
                    after.sub_path.as_ref().map(|s| format!(" --sub-path {s}")).unwrap_or_default()
                ),
            });
        }
        let old_files = match &change.before {
            None => Vec::new(),
            Some(before) => {
                match source::load(&Source::Registry(before.reference.clone()), &registry).await {
                    Ok(l) => source::at_sub_path(&l.files, before.sub_path.as_deref())
                        .unwrap_or_default(),
                    Err(e) => {
                        checks.push(Check {
                        severity: Severity::Warning,
                        code: "live_artifact_unreadable".into(),
                        message: format!(
                            "artifact {:?}: cannot read the live artifact {} to show what changes inside: {e}",
                            spec.name, before.reference
                        ),
                    });
                        continue;
                    }
                }
            }
        };
        let content = content_diff(&old_files, &new_files);
        if !content.is_empty() {
            change.content = Some(content);
        }
    }
}

/// The plan of an observed environment, with the server's dry run where the credentials allow.
pub async fn plan_from(ctx: &EnvContext) -> EnvPlan {
    let (mut changes, mut checks) = diff(&ctx.desired, &ctx.observed, &ctx.resolved);
    content_checks(ctx, &mut changes, &mut checks).await;
    if !changes.is_empty() {
        let body = body_for(ctx, &[]);
        let target = &ctx.desired.target;
        let mut result = ctx.cluster.apply(target, &body, true, false).await;
        if let Err(ClusterError::Conflict { .. }) = &result {
            // Conflicts are already in the changes (from managedFields); a forced dry run still
            // tells what the server would store.
            result = ctx.cluster.apply(target, &body, true, true).await;
        }
        match result {
            Ok(stored) => checks.extend(dropped_checks(ctx, &stored, true)),
            Err(ClusterError::Forbidden { .. }) => checks.push(Check {
                severity: Severity::Warning,
                code: "dry_run_skipped".into(),
                message: format!(
                    "the credentials of context {} may not patch {}: the server-side dry run was skipped (fine for a read-only plan; apply needs patch)",
                    ctx.cluster.context, target.workload
                ),
            }),
            Err(e) => checks.push(Check {
                severity: Severity::Error,
                code: "dry_run".into(),
                message: format!("the server-side dry run failed: {e}"),
            }),
        }
    }
    EnvPlan {
        env: ctx.desired.env.clone(),
        target: ctx.desired.target.clone(),
        changes,
        checks,
        error: None,
        inputs: Some(PlanInputs {
            file_sha256: ctx.desired.file_sha256.clone(),
            resolved: ctx.resolved.clone(),
            live: ctx.observed.artifacts.clone(),
            resource_version: ctx.observed.resource_version.clone(),
        }),
    }
}
