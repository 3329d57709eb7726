//! `plan`: for each environment, read the live workload and resolve the tags, diff, and ask the
//! API server (dry run) what it would store. Environments are planned concurrently (bounded),
//! sharing one client per cluster and per registry; one that fails is reported and does not
//! hide the others.

mod checks;
mod content;
mod live;
mod session;

pub use checks::dropped_checks;
pub use live::{observe_env, observe_env_in, observe_env_live};
pub use session::Session;

use crate::cluster::{Cluster, observe};
use crate::config::{self, Project};
use crate::manifest;
use crate::model::{
    ArtifactSpec, Desired, EnvError, EnvPlan, Observed, Plan, PlanInputs, Resolved, Target,
    WorkloadKind, WorkloadRef,
};
use crate::plan::{desired_state, diff};
use crate::registry::Registry;
use checks::{copy_check, dry_run_checks, pull_checks};
use content::content_checks;
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;

/// How many environments are planned at once. Enough to keep both API servers of a plan busy
/// while one environment waits on a round trip; few enough that each cluster's client reuses a
/// handful of TLS connections (kube speaks HTTP/1.1: one request per connection at a time)
/// instead of opening one per environment.
pub const CONCURRENCY: usize = 16;

/// What `plan` was asked for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub dir: PathBuf,
    pub envs: Vec<String>,
    pub all: bool,
    pub kubeconfig: Option<PathBuf>,
}

/// Where an environment's workload lives.
#[derive(Clone)]
pub enum Backend {
    Cluster(Cluster),
    /// A manifest file (GitOps): read and rewritten in place.
    Manifest(ManifestFile),
}

/// A manifest file as it was read: its text and the workload document in it.
#[derive(Clone)]
pub struct ManifestFile {
    pub path: PathBuf,
    pub text: String,
    pub doc: manifest::Doc,
}

impl Backend {
    /// For messages: `context prod` or `manifest deploy/perses.yaml`.
    pub fn describe(&self) -> String {
        match self {
            Backend::Cluster(c) => format!("context {}", c.context),
            Backend::Manifest(m) => format!("manifest {}", m.path.display()),
        }
    }
    pub fn cluster(&self) -> Option<&Cluster> {
        match self {
            Backend::Cluster(c) => Some(c),
            Backend::Manifest(_) => None,
        }
    }
}

/// Everything computed for one environment, kept for apply.
pub struct EnvContext {
    pub desired: Desired,
    pub backend: Backend,
    pub observed: Observed,
    pub resolved: Vec<Resolved>,
    /// The registry clients of the environment's settings, shared with the other environments
    /// of the command (reading the artifact reuses the connection that resolved its tag).
    pub registry: Arc<Registry>,
}

/// Where an `oci:PATH` image's layout is: relative to the project directory.
pub fn layout_dir(desired: &Desired, spec: &ArtifactSpec) -> Option<PathBuf> {
    spec.source
        .as_deref()
        .unwrap_or(&spec.image)
        .strip_prefix("oci:")
        .map(|p| desired.project_dir().join(p))
}

/// Plans every selected environment. Errors of the project itself (no environments, unknown
/// names) are returned; errors of one environment land in its `EnvPlan`.
pub async fn plan(
    opts: &PlanOptions,
) -> Result<(Project, Plan, Vec<Option<EnvContext>>), config::ConfigError> {
    let project = config::load_project(&opts.dir)?;
    let names = project.select(&opts.envs, opts.all)?;
    let session = Session::new(opts.kubeconfig.clone());
    // `buffered` keeps the environments in their order while running several at once.
    crate::progress::PLANNED.reset();
    let results: Vec<_> = futures::stream::iter(&names)
        .map(|name| async {
            let planned = plan_env_in(&session, &project, name).await;
            crate::progress::PLANNED.add(1, 0);
            planned
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
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
            manifest: None,
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
    plan_env_in(&Session::new(kubeconfig), project, name).await
}

/// [`plan_env`] with the clients of a session.
pub async fn plan_env_in(
    session: &Session,
    project: &Project,
    name: &str,
) -> (EnvPlan, Option<EnvContext>) {
    let desired = match config::load_env(project, name) {
        Ok(d) => d,
        Err(e) => return (failed(name, None, e.to_string()), None),
    };
    match observe_env_in(session, &desired).await {
        Ok(ctx) => (plan_from(&ctx).await, Some(ctx)),
        Err(e) => (failed(name, Some(&desired.target), e), None),
    }
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

/// The plan of an observed environment, with the server's dry run where the credentials allow.
/// The artifact checks and the dry run do not depend on each other: they run at the same time.
pub async fn plan_from(ctx: &EnvContext) -> EnvPlan {
    let (mut changes, mut checks) = diff(&ctx.desired, &ctx.observed, &ctx.resolved);
    let mut content = Vec::new();
    let needs_dry_run = !changes.is_empty();
    let written: Vec<String> = changes
        .iter()
        .filter(|c| c.after.is_some())
        .map(|c| c.artifact.clone())
        .collect();
    let pulls = pull_checks(ctx, &written);
    let ((), dry_run, pulls) = tokio::join!(
        content_checks(ctx, &mut changes, &mut content),
        dry_run_checks(ctx, needs_dry_run),
        pulls
    );
    checks.extend(content);
    checks.extend(dry_run);
    checks.extend(pulls);
    for spec in ctx
        .desired
        .artifacts
        .iter()
        .filter(|a| written.contains(&a.name))
    {
        if let Some(source) = &spec.source {
            checks.push(copy_check(ctx, spec, source));
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
