//! `plan`: for each environment, read the live workload and resolve the tags, diff, and ask the
//! API server (dry run) what it would store. Environments are planned concurrently (bounded),
//! sharing one client per cluster and per registry; one that fails is reported and does not
//! hide the others.

use crate::artifact::diff::scanned_diff_known;
use crate::artifact::layout::{Layout, LayoutRef};
use crate::artifact::scan::{Scan, ScanError};
use crate::artifact::source::Source;
use crate::cluster::{self, Cluster, ClusterError, observe};
use crate::config::{self, Project};
use crate::manifest;
use crate::model::{
    ArtifactSpec, Change, Check, Desired, EnvError, EnvPlan, Observed, Plan, PlanInputs,
    RegistrySettings, Resolved, Severity, Target, WorkloadKind, WorkloadRef,
};
use crate::perses as lint;
use crate::plan::{desired_state, diff, parse_ref};
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
pub fn layout_dir(desired: &Desired, spec: &ArtifactSpec) -> Option<PathBuf> {
    spec.source
        .as_deref()
        .unwrap_or(&spec.image)
        .strip_prefix("oci:")
        .map(|p| desired.project_dir().join(p))
}

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

/// The key an opened artifact is kept under for the process.
fn source_key(source: &Source) -> String {
    match source {
        Source::Dir(p) => format!("dir:{}", p.display()),
        Source::Layout(l) => format!("oci:{}:{}", l.path.display(), l.tag),
        Source::Registry(r) => r.clone(),
    }
}

/// Results computed once per process and key, by an async computation (the first caller
/// computes, the others wait for it).
struct AsyncMemo<K, V> {
    cells: OnceLock<Mutex<HashMap<K, Arc<OnceCell<V>>>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> AsyncMemo<K, V> {
    const fn new() -> Self {
        AsyncMemo {
            cells: OnceLock::new(),
        }
    }

    async fn get<F: std::future::Future<Output = V>>(
        &self,
        key: K,
        compute: impl FnOnce() -> F,
    ) -> V {
        let cell = self
            .cells
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_init(compute).await.clone()
    }
}

type Opened<T> = Result<Arc<T>, Arc<ScanError>>;
/// An artifact's scan with its lint report.
type Linted = (Scan, lint::Report);
/// Opened artifacts are kept per source and sub path.
type ScanKey = (String, Option<String>);

/// The new artifact of a change at its sub path, read once and linted on the way (one pass),
/// once per process: fifty environments mounting one artifact read it once.
async fn new_artifact(
    what: &str,
    source: &Source,
    sub: Option<&str>,
    registry: &Registry,
) -> Opened<Linted> {
    static MEMO: AsyncMemo<ScanKey, Opened<Linted>> = AsyncMemo::new();
    let key = (source_key(source), sub.map(str::to_string));
    MEMO.get(key, || async {
        Scan::open_source_linted(what, source.clone(), sub, registry, &[])
            .await
            .map(Arc::new)
            .map_err(Arc::new)
    })
    .await
}

/// The live artifact of a change at its sub path: only the sha256 of each file is kept; the
/// content diff reads again the few files that differ.
async fn live_artifact(
    what: &str,
    source: &Source,
    sub: Option<&str>,
    registry: &Registry,
) -> Opened<Scan> {
    static MEMO: AsyncMemo<ScanKey, Opened<Scan>> = AsyncMemo::new();
    let key = (source_key(source), sub.map(str::to_string));
    MEMO.get(key, || async {
        Scan::open_source(what, source.clone(), sub, registry)
            .await
            .map(Arc::new)
            .map_err(Arc::new)
    })
    .await
}

/// Reads the new (and live) artifact of each change: which Perses resources change inside it,
/// whether `sub_path` exists in the new one (else the pod fails to start), and whether Perses
/// would load its files (else it skips them with only a log line). Each artifact is read once,
/// streaming (one file in memory per core), and not at all when the change keeps the image.
async fn content_checks(ctx: &EnvContext, changes: &mut [Change], checks: &mut Vec<Check>) {
    type DiffKey = (Option<ScanKey>, String, Option<String>);
    static DIFFS: AsyncMemo<DiffKey, Result<crate::model::ContentDiff, String>> = AsyncMemo::new();
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
        // The same image at the same sub path: nothing inside changes, and nothing is read.
        if let (Some(before), Some(d)) = (&change.before, &digest)
            && parse_ref(&before.reference).digest.as_deref() == Some(d.as_str())
            && before.sub_path == after.sub_path
        {
            continue;
        }
        let (new_ref, new_source) = match layout_dir(&ctx.desired, spec) {
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
        let new_key = source_key(&new_source);
        let new_sub = after.sub_path.as_deref();
        let new = match new_artifact(&new_ref, &new_source, new_sub, registry).await {
            Ok(n) => n,
            Err(e) => {
                checks.push(match &*e {
                    ScanError::NoSubPath { .. } => Check {
                        severity: Severity::Error,
                        code: "sub_path_missing".into(),
                        message: format!(
                            "artifact {:?}: {e}: the pod would fail to start (the container runtime checks subPath when it creates the container)",
                            spec.name
                        ),
                    },
                    _ => Check {
                        severity: Severity::Error,
                        code: "artifact_unreadable".into(),
                        message: format!("artifact {:?}: cannot read {new_ref}: {e}", spec.name),
                    },
                });
                continue;
            }
        };
        let report = &new.1;
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
        let (old_key, old) = match &change.before {
            None => (None, Arc::new(Scan::empty("(nothing)"))),
            Some(before) => {
                let old_source = live_source(&ctx.desired, spec, &before.reference);
                let sub = before.sub_path.as_deref();
                let key = Some((source_key(&old_source), sub.map(str::to_string)));
                match live_artifact(&before.reference, &old_source, sub, registry).await {
                    Ok(scan) => (key, scan),
                    // A live sub path that is not there: the container saw nothing.
                    Err(e) if matches!(*e, ScanError::NoSubPath { .. }) => {
                        (key, Arc::new(Scan::empty(&before.reference)))
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
        let diff_key = (old_key, new_key, new_sub.map(str::to_string));
        let content = DIFFS
            .get(diff_key, || async {
                let new = new.clone();
                tokio::task::spawn_blocking(move || {
                    // The lint parsed every new file: its resources stand for the identical ones.
                    let by_path: HashMap<&str, &lint::FileReport> =
                        new.1.files.iter().map(|f| (f.path.as_str(), f)).collect();
                    let known = |p: &str| by_path.get(p).map(|f| f.resources.clone());
                    scanned_diff_known(&old, &new.0, &known).map_err(|e| e.to_string())
                })
                .await
                .expect("the diff does not panic")
            })
            .await;
        match content {
            Ok(content) if !content.is_empty() => change.content = Some(content),
            Ok(_) => {}
            Err(e) => checks.push(Check {
                severity: Severity::Warning,
                code: "content_diff".into(),
                message: format!(
                    "artifact {:?}: cannot tell what changes inside: {e}",
                    spec.name
                ),
            }),
        }
    }
}

/// Where the live artifact is: its reference; for `oci:PATH:TAG@DIGEST` the layout's tag; for
/// the artifact's own repository when it has a layout `source`, that layout (by digest).
fn live_source(desired: &Desired, spec: &ArtifactSpec, reference: &str) -> Source {
    if spec.source.is_some() {
        let r = parse_ref(reference);
        if r.repository == spec.image
            && let Some(dir) = layout_dir(desired, spec)
            && let Some(at) = r.digest.or(r.tag)
        {
            return Source::Layout(LayoutRef { path: dir, tag: at });
        }
    }
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

/// An artifact read from a layout `source`: the nodes pull it from `image`'s registry, which
/// perses-oci does not ask (it may be out of reach), so the plan says what must be there.
fn copy_check(ctx: &EnvContext, spec: &ArtifactSpec, source: &str) -> Check {
    let digest = ctx
        .resolved
        .iter()
        .find(|r| r.name == spec.name)
        .map(|r| format!("@{}", r.digest))
        .unwrap_or_default();
    Check {
        severity: Severity::Warning,
        code: "copy_to_registry".into(),
        message: format!(
            "artifact {:?}: the nodes will pull {}:{}{digest}, read here from {source}:{}; copy it to the registry before the pods restart: skopeo copy --all {source}:{} docker://{}:{}",
            spec.name, spec.image, spec.tag, spec.tag, spec.tag, spec.image, spec.tag
        ),
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
        if layout_dir(&ctx.desired, spec).is_some() {
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
