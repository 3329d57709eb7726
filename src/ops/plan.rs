//! `plan`: for each environment, read the live workload and resolve the tags, diff, and ask the
//! API server (dry run) what it would store. Environments are planned concurrently; one that
//! fails is reported and does not hide the others.

use crate::cluster::{self, Cluster, ClusterError, observe};
use crate::config::{self, Project};
use crate::model::{
    Check, Desired, EnvError, EnvPlan, Observed, Plan, PlanInputs, Resolved, Severity, Target,
    WorkloadKind, WorkloadRef,
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

/// The plan of an observed environment, with the server's dry run where the credentials allow.
pub async fn plan_from(ctx: &EnvContext) -> EnvPlan {
    let (changes, mut checks) = diff(&ctx.desired, &ctx.observed, &ctx.resolved);
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
