//! `plan`: for each environment, read the live workload and resolve the tags, diff, and ask the
//! API server (dry run) what it would store. Environments are planned concurrently (bounded),
//! sharing one client per cluster and per registry; one that fails is reported and does not
//! hide the others.

use crate::artifact::diff::content_diff;
use crate::artifact::layout::{Layout, LayoutRef};
use crate::artifact::source::{self, Source};
use crate::cluster::{self, Cluster, ClusterError, observe};
use crate::config::{self, Project};
use crate::manifest;
use crate::model::{
    Change, Check, Desired, EnvError, EnvPlan, Observed, Plan, PlanInputs, RegistrySettings,
    Resolved, Severity, Target, WorkloadKind, WorkloadRef,
};
use crate::perses::{self as lint, lint_files};
use crate::plan::{desired_state, diff};
use crate::registry::{Anonymous, ImageName, Registry};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::OnceCell;

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

type Shared<T> = Arc<OnceCell<Result<T, String>>>;

/// What one command shares between its environments: one Kubernetes client per kubeconfig
/// context (one connection pool and one `/version` per cluster, one kubeconfig read and TLS
/// set-up per context), one registry client set per registry settings (one protocol probe and
/// one TLS set-up per registry), and each `image:tag` resolved once, so that every environment
/// of one plan pins the same digest for the same tag.
#[derive(Clone, Default)]
pub struct Session {
    inner: Arc<SessionInner>,
}

#[derive(Default)]
struct SessionInner {
    kubeconfig: Option<PathBuf>,
    clusters: Mutex<HashMap<Option<String>, Shared<Cluster>>>,
    registries: Mutex<Vec<(RegistrySettings, Arc<RegistryEntry>)>>,
}

struct RegistryEntry {
    registry: Arc<Registry>,
    tags: Mutex<HashMap<(String, String), Shared<String>>>,
}

impl Session {
    pub fn new(kubeconfig: Option<PathBuf>) -> Session {
        Session {
            inner: Arc::new(SessionInner {
                kubeconfig,
                ..Default::default()
            }),
        }
    }

    /// The client of a kubeconfig context (`None`: the current one), connected once.
    pub async fn cluster(&self, context: Option<&str>) -> Result<Cluster, String> {
        let cell = self
            .inner
            .clusters
            .lock()
            .unwrap()
            .entry(context.map(str::to_string))
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            cluster::connect(self.inner.kubeconfig.as_deref(), context)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .clone()
    }

    fn registry_entry(&self, settings: &RegistrySettings) -> Arc<RegistryEntry> {
        let mut all = self.inner.registries.lock().unwrap();
        if let Some((_, e)) = all.iter().find(|(s, _)| s == settings) {
            return e.clone();
        }
        let entry = Arc::new(RegistryEntry {
            registry: Arc::new(Registry::new(settings.clone())),
            tags: Mutex::default(),
        });
        all.push((settings.clone(), entry.clone()));
        entry
    }

    /// The registry clients for these settings.
    pub fn registry(&self, settings: &RegistrySettings) -> Arc<Registry> {
        self.registry_entry(settings).registry.clone()
    }

    /// `image:tag` resolved to a digest, once per command and settings.
    async fn resolve(
        &self,
        settings: &RegistrySettings,
        image: &str,
        tag: &str,
    ) -> Result<String, String> {
        let entry = self.registry_entry(settings);
        let cell = entry
            .tags
            .lock()
            .unwrap()
            .entry((image.to_string(), tag.to_string()))
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            entry
                .registry
                .resolve(image, tag)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .clone()
    }
}

/// Where an `oci:PATH` image's layout is: relative to the project directory.
pub fn layout_dir(desired: &Desired, image: &str) -> Option<PathBuf> {
    image
        .strip_prefix("oci:")
        .map(|p| desired.project_dir().join(p))
}

/// Resolves every artifact's tag: in its registry, or in its OCI layout.
async fn resolve_all(desired: &Desired, session: &Session) -> Result<Vec<Resolved>, String> {
    let all = futures::future::join_all(desired.artifacts.iter().map(|a| async {
        let digest = match layout_dir(desired, &a.image) {
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
    let observed = Observed {
        resource_version: String::new(),
        generation: doc.value["metadata"]["generation"].as_i64().unwrap_or(0),
        // No API server: the version checks do not apply (0.0 means unknown).
        server_version: (0, 0),
        artifacts: ex.artifacts,
        mounts: ex.mounts,
        provisioning_folders: folders,
        history: ex.history,
        pull: ex.pull,
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

/// Plans every selected environment. Errors of the project itself (no environments, unknown
/// names) are returned; errors of one environment land in its `EnvPlan`.
pub async fn plan(
    opts: &PlanOptions,
) -> Result<(Project, Plan, Vec<Option<EnvContext>>), config::ConfigError> {
    let project = config::load_project(&opts.dir)?;
    let names = project.select(&opts.envs, opts.all)?;
    let session = Session::new(opts.kubeconfig.clone());
    // `buffered` keeps the environments in their order while running several at once.
    let results: Vec<_> = futures::stream::iter(&names)
        .map(|name| plan_env_in(&session, &project, name))
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
    };
    Ok(EnvContext {
        desired: desired.clone(),
        backend: Backend::Cluster(cluster),
        observed,
        resolved,
        registry,
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
                    "the API server of {} {} the image volume {:?} and its mount without an error: the ImageVolume feature gate is off on that API server (Kubernetes 1.31-1.34 default, or --feature-gates=ImageVolume=false). It {} volumes [{}]. Enable the gate on the API server and kubelets (and use containerd 2.1+ or CRI-O).",
                    ctx.backend.describe(),
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

/// Per-process results computed from an artifact's files, keyed like `source::load`'s cache (a
/// digest-pinned reference, or a layout and tag read once per process): fifty environments
/// mounting the same artifact select its sub path, lint it and diff it once, not fifty times.
/// Values are pure functions of the files, so sharing them changes no result.
struct Memo<K, V> {
    cells: OnceLock<Mutex<HashMap<K, Arc<OnceLock<V>>>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Memo<K, V> {
    const fn new() -> Self {
        Memo {
            cells: OnceLock::new(),
        }
    }

    fn get(&self, key: K, compute: impl FnOnce() -> V) -> V {
        let cell = self
            .cells
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_init(compute).clone()
    }
}

/// The key `source::load` caches a source under.
fn source_key(source: &Source) -> String {
    match source {
        Source::Dir(p) => format!("dir:{}", p.display()),
        Source::Layout(l) => format!("oci:{}:{}", l.path.display(), l.tag),
        Source::Registry(r) => r.clone(),
    }
}

type Selected = Result<Arc<source::Files>, String>;

/// The files a container sees under `sub_path`, memoised per source and sub path.
fn selected(key: &str, files: &source::Files, sub_path: Option<&str>) -> Selected {
    static MEMO: Memo<(String, Option<String>), Selected> = Memo::new();
    MEMO.get((key.to_string(), sub_path.map(str::to_string)), || {
        source::at_sub_path(files, sub_path).map(Arc::new)
    })
}

/// The lint report of the files under `sub_path` of a source, memoised.
fn linted(key: &str, sub_path: Option<&str>, files: &source::Files) -> Arc<lint::Report> {
    static MEMO: Memo<(String, Option<String>), Arc<lint::Report>> = Memo::new();
    MEMO.get((key.to_string(), sub_path.map(str::to_string)), || {
        Arc::new(lint_files(files, &[]))
    })
}

/// Reads the new (and live) artifact of each change: which Perses resources change inside it,
/// whether `sub_path` exists in the new one (else the pod fails to start), and whether Perses
/// would load its files (else it skips them with only a log line).
async fn content_checks(ctx: &EnvContext, changes: &mut [Change], checks: &mut Vec<Check>) {
    type DiffKey = (Option<(String, Option<String>)>, String, Option<String>);
    static DIFFS: Memo<DiffKey, crate::model::ContentDiff> = Memo::new();
    let registry = &*ctx.registry;
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
        let (new_ref, new_source) = match layout_dir(&ctx.desired, &spec.image) {
            Some(dir) => (
                format!("{}:{}", spec.image, spec.tag),
                Source::Layout(LayoutRef {
                    path: dir,
                    tag: spec.tag.clone(),
                }),
            ),
            None => {
                let r = match &digest {
                    Some(d) => format!("{}@{d}", spec.image),
                    None => after.reference.clone(),
                };
                (r.clone(), Source::Registry(r))
            }
        };
        let new = match source::load(&new_source, registry).await {
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
        let new_key = source_key(&new_source);
        let new_sub = after.sub_path.as_deref();
        let new_files = match selected(&new_key, &new.files, new_sub) {
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
        let report = linted(&new_key, new_sub, &new_files);
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
                    "artifact {:?}: Perses would not load all of {new_ref}: {shown}{} (see `perses-oci lint {new_ref}{}`)",
                    spec.name,
                    if more > 0 { format!(" and {more} more") } else { String::new() },
                    after.sub_path.as_ref().map(|s| format!(" --sub-path {s}")).unwrap_or_default()
                ),
            });
        }
        let (old_key, old_files) = match &change.before {
            None => (None, Arc::new(Vec::new())),
            Some(before) => {
                let old_source = live_source(&ctx.desired, &before.reference);
                match source::load(&old_source, registry).await {
                    Ok(l) => {
                        let key = source_key(&old_source);
                        let sub = before.sub_path.as_deref();
                        let files = selected(&key, &l.files, sub).unwrap_or_default();
                        (Some((key, sub.map(str::to_string))), files)
                    }
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
        let content = DIFFS.get((old_key, new_key, new_sub.map(str::to_string)), || {
            content_diff(&old_files, &new_files)
        });
        if !content.is_empty() {
            change.content = Some(content);
        }
    }
}

/// Where the live artifact is: its reference, or for `oci:PATH:TAG@DIGEST` the layout's tag.
fn live_source(desired: &Desired, reference: &str) -> Source {
    if reference.starts_with("oci:") {
        let without_digest = reference.split('@').next().unwrap_or(reference);
        if let Some(Ok(mut l)) = LayoutRef::parse(without_digest) {
            l.path = desired.project_dir().join(&l.path);
            return Source::Layout(l);
        }
    }
    Source::Registry(reference.to_string())
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

/// Whether the nodes can pull each artifact a change writes (`plan::pull`): asked only of
/// registries perses-oci itself needs credentials for, with one anonymous request each.
async fn pull_checks(ctx: &EnvContext, written: &[String]) -> Vec<Check> {
    let Some(cluster) = ctx.backend.cluster() else {
        return Vec::new();
    };
    let ns = &ctx.desired.target.namespace;
    let mut checks = Vec::new();
    let mut account: Option<Option<Vec<String>>> = None;
    let mut secrets: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    for artifact in written {
        let Some(spec) = ctx.desired.artifacts.iter().find(|a| &a.name == artifact) else {
            continue;
        };
        if layout_dir(&ctx.desired, &spec.image).is_some() {
            continue;
        }
        let registry = ImageName::parse(&spec.image).registry;
        // Anonymous for perses-oci is anonymous for the kubelet too.
        if !matches!(
            crate::registry::credentials(&registry).await,
            Ok(oci_client::secrets::RegistryAuth::Basic(..)
                | oci_client::secrets::RegistryAuth::Bearer(..))
        ) {
            continue;
        }
        let reference = ctx
            .resolved
            .iter()
            .find(|r| r.name == spec.name)
            .map(|r| r.digest.clone())
            .unwrap_or_else(|| spec.tag.clone());
        let status = match ctx.registry.anonymous_pull(&spec.image, &reference).await {
            Ok(Anonymous::Refused(code)) => code,
            Ok(Anonymous::Allowed) | Err(_) => continue,
        };
        let pull = &ctx.observed.pull;
        if account.is_none() {
            account = Some(
                cluster
                    .account_pull_secrets(ns, &pull.service_account)
                    .await,
            );
        }
        let account_secrets = account.clone().flatten();
        for name in pull.secrets.iter().chain(account_secrets.iter().flatten()) {
            if !secrets.contains_key(name) {
                let regs = cluster.secret_registries(ns, name).await;
                secrets.insert(name.clone(), regs);
            }
        }
        if let Some(c) = crate::plan::pull::pull_check(&crate::plan::pull::PullFacts {
            artifact: &spec.name,
            registry: &registry,
            namespace: ns,
            refused_status: status,
            pull,
            account_secrets: account_secrets.as_deref(),
            secret_registries: &secrets,
        }) {
            checks.push(c);
        }
    }
    checks
}

/// The server-side dry run of an environment with changes on a cluster: what the API server
/// would store, checked for dropped image volumes.
async fn dry_run_checks(ctx: &EnvContext, has_changes: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    if let (true, Some(cluster)) = (has_changes, ctx.backend.cluster()) {
        let body = body_for(ctx, &[]);
        let target = &ctx.desired.target;
        let mut result = cluster.apply(target, &body, true, false).await;
        if let Err(ClusterError::Conflict { .. }) = &result {
            // Conflicts are already in the changes (from managedFields); a forced dry run still
            // tells what the server would store.
            result = cluster.apply(target, &body, true, true).await;
        }
        match result {
            Ok(stored) => checks.extend(dropped_checks(ctx, &stored, true)),
            Err(ClusterError::Forbidden { .. }) => checks.push(Check {
                severity: Severity::Warning,
                code: "dry_run_skipped".into(),
                message: format!(
                    "the credentials of context {} may not patch {}: the server-side dry run was skipped (fine for a read-only plan; apply needs patch)",
                    ctx.backend.describe(), target.workload
                ),
            }),
            Err(e) => checks.push(Check {
                severity: Severity::Error,
                code: "dry_run".into(),
                message: format!("the server-side dry run failed: {e}"),
            }),
        }
    }
    checks
}
