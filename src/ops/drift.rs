//! `drift`: for each environment, one class that says whether the cluster still holds what the
//! environment file asks for and, if not, why. Read-only on purpose: it runs from a cron job with
//! a service account that may only get, so unlike `plan` it never asks for a dry run.
//!
//! Classes, by precedence (the first that applies wins; docs/drift.md):
//! error > missing > cluster_edited > tag_moved > pending > in_sync.
//! `classify` is pure, so every rule is tested without a cluster.

use crate::cluster::{self, ClusterError};
use crate::config::{self, ConfigError, Project};
use crate::model::{
    Action, Desired, FIELD_MANAGER, LastWrite, LiveArtifact, Observed, Pin, PullPolicy, Resolved,
    Revision, RevisionArtifact, Target,
};
use crate::ops::plan::{Session, observe_env_in};
use crate::plan::{desired_state, parse_ref};
use crate::registry::Registry;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `drift` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    pub dir: PathBuf,
    pub envs: Vec<String>,
    pub all: bool,
    pub kubeconfig: Option<PathBuf>,
}

/// The drift class of one environment. The derived order is the precedence: when several apply,
/// the greatest is reported, so an environment has exactly one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftClass {
    InSync,
    Pending,
    TagMoved,
    ClusterEdited,
    Missing,
    Error,
}

impl DriftClass {
    /// Every class, in the order the documentation and the outputs list them.
    pub const ALL: [DriftClass; 6] = [
        DriftClass::InSync,
        DriftClass::Pending,
        DriftClass::ClusterEdited,
        DriftClass::TagMoved,
        DriftClass::Missing,
        DriftClass::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftClass::InSync => "in_sync",
            DriftClass::Pending => "pending",
            DriftClass::TagMoved => "tag_moved",
            DriftClass::ClusterEdited => "cluster_edited",
            DriftClass::Missing => "missing",
            DriftClass::Error => "error",
        }
    }

    /// Drift that a cron job should flag (exit 2), as opposed to in_sync and error.
    pub fn is_drift(self) -> bool {
        !matches!(self, DriftClass::InSync | DriftClass::Error)
    }
}

/// Which part of an applied artifact is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPart {
    /// The image volume is no longer in the pod template.
    Volume,
    /// The volume is there, but the target container no longer mounts it.
    Mount,
}

/// An artifact perses-oci applied (newest revision) that the workload no longer has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingArtifact {
    pub artifact: String,
    pub part: MissingPart,
    /// The reference perses-oci wrote.
    pub applied: String,
}

/// Managed fields of one artifact that someone else changed after perses-oci applied them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub artifact: String,
    /// `reference`, `pull_policy`, `mount_path`, `sub_path`.
    pub fields: Vec<String>,
    /// The reference perses-oci wrote (newest revision).
    pub applied: String,
    /// The reference the workload holds now.
    pub live: String,
    /// The newest write to the managed values (managedFields): who, how, when.
    pub by: Option<LastWrite>,
}

/// A tag that resolves to another digest than the one the cluster pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagMove {
    pub artifact: String,
    /// `image:tag`.
    pub tag: String,
    /// The digest the cluster pins (or perses-oci recorded, with `pin = "tag"`).
    pub from: String,
    /// What the tag resolves to now.
    pub to: String,
}

/// A difference between the environment file and what perses-oci last applied (or, never
/// applied, what is live): a merged change not applied yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingChange {
    pub artifact: String,
    pub action: Action,
    /// `image`, `tag`, `pin`, `pull_policy`, `mount_path`, `sub_path`; empty for add and remove.
    pub fields: Vec<String>,
    /// The reference last applied (or live).
    pub from: Option<String>,
    /// The reference the file asks for, with the tag's current digest when pinned.
    pub to: Option<String>,
}

/// Everything found for one environment; the class is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Findings {
    /// Why it could not tell.
    pub error: Option<String>,
    /// The workload is gone (why, as the API server said it).
    pub workload_missing: Option<String>,
    pub missing: Vec<MissingArtifact>,
    pub edits: Vec<Edit>,
    pub moves: Vec<TagMove>,
    pub pending: Vec<PendingChange>,
}

impl Findings {
    /// Every class that applies, greatest first; `[InSync]` when nothing does.
    pub fn classes(&self) -> Vec<DriftClass> {
        let mut out = Vec::new();
        if self.error.is_some() {
            out.push(DriftClass::Error);
        }
        if self.workload_missing.is_some() || !self.missing.is_empty() {
            out.push(DriftClass::Missing);
        }
        if !self.edits.is_empty() {
            out.push(DriftClass::ClusterEdited);
        }
        if !self.moves.is_empty() {
            out.push(DriftClass::TagMoved);
        }
        if !self.pending.is_empty() {
            out.push(DriftClass::Pending);
        }
        if out.is_empty() {
            out.push(DriftClass::InSync);
        }
        out
    }

    pub fn class(&self) -> DriftClass {
        self.classes()[0]
    }
}

/// The drift of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvDrift {
    pub env: String,
    /// `None` when the environment file could not be read.
    pub target: Option<Target>,
    /// The newest revision perses-oci recorded on the workload; `None` if it never applied (or
    /// the workload could not be read).
    pub revision: Option<Revision>,
    /// The artifacts of the environment file.
    pub artifacts: Vec<String>,
    pub findings: Findings,
    /// RFC 3339, when this environment was read.
    pub checked_at: String,
}

impl EnvDrift {
    pub fn class(&self) -> DriftClass {
        self.findings.class()
    }
}

/// The drift of every environment asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// When the check started.
    pub checked_at: chrono::DateTime<chrono::Utc>,
    pub duration: Duration,
    pub envs: Vec<EnvDrift>,
}

impl DriftReport {
    /// How many environments per class, for every class (zeros included).
    pub fn summary(&self) -> Vec<(DriftClass, usize)> {
        DriftClass::ALL
            .into_iter()
            .map(|c| (c, self.envs.iter().filter(|e| e.class() == c).count()))
            .collect()
    }

    pub fn has_errors(&self) -> bool {
        self.envs.iter().any(|e| e.class() == DriftClass::Error)
    }

    /// 0 all in sync, 2 any drift, 1 any error (an error wins: the drift of that environment
    /// is unknown).
    pub fn exit_code(&self) -> i32 {
        if self.has_errors() {
            crate::ops::exit::ERROR
        } else if self.envs.iter().any(|e| e.class().is_drift()) {
            crate::ops::exit::CHANGES
        } else {
            crate::ops::exit::OK
        }
    }

    /// Seconds since the epoch at the end of the check.
    pub fn finished_unix(&self) -> f64 {
        self.checked_at.timestamp_millis() as f64 / 1000.0 + self.duration.as_secs_f64()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Checks every selected environment, concurrently. Errors of the project itself (no
/// environments, unknown names) are returned; errors of one environment are its class.
pub async fn drift(opts: &DriftOptions) -> Result<DriftReport, ConfigError> {
    let project = config::load_project(&opts.dir)?;
    let names = project.select(&opts.envs, opts.all)?;
    let checked_at = chrono::Utc::now();
    let started = std::time::Instant::now();
    // One set of clients for the whole run, as plan does: one connection per cluster and
    // registry, `/version` once per cluster, each tag resolved once.
    let session = Session::new(opts.kubeconfig.clone());
    let envs = futures::future::join_all(
        names
            .iter()
            .map(|name| check_env(&project, name, &session, opts.kubeconfig.as_deref())),
    )
    .await;
    Ok(DriftReport {
        checked_at,
        duration: started.elapsed(),
        envs,
    })
}

fn failed(env: &str, target: Option<Target>, artifacts: Vec<String>, reason: String) -> EnvDrift {
    EnvDrift {
        env: env.to_string(),
        target,
        revision: None,
        artifacts,
        findings: Findings {
            error: Some(reason),
            ..Default::default()
        },
        checked_at: now(),
    }
}

/// Checks one environment; never fails, an error is its class.
pub async fn check_env(
    project: &Project,
    name: &str,
    session: &Session,
    kubeconfig: Option<&Path>,
) -> EnvDrift {
    let desired = match config::load_env(project, name) {
        Ok(d) => d,
        Err(e) => return failed(name, None, vec![], e.to_string()),
    };
    let names: Vec<String> = desired.artifacts.iter().map(|a| a.name.clone()).collect();
    match observe_env_in(session, &desired).await {
        Ok(ctx) => {
            let mut findings = classify(&ctx.desired, &ctx.observed, &ctx.resolved);
            if !findings.edits.is_empty() {
                // `last_write` is the newest entry over all managed values, at one-second
                // resolution: an edit in the same second as the apply ties. The owner of the
                // very field that changed is exact (an Update that changes a field takes it
                // over), so read managedFields again on this path only.
                if let Some(cluster) = ctx.backend.cluster()
                    && let Ok(obj) = cluster.get_workload(&desired.target).await
                {
                    name_editors(&mut findings.edits, &obj, &desired.target.container);
                }
            }
            EnvDrift {
                env: name.to_string(),
                target: Some(desired.target.clone()),
                revision: ctx.observed.history.last().cloned(),
                artifacts: names,
                findings,
                checked_at: now(),
            }
        }
        Err(message) => {
            let findings = diagnose(&desired, kubeconfig, message).await;
            EnvDrift {
                env: name.to_string(),
                target: Some(desired.target.clone()),
                revision: None,
                artifacts: names,
                findings,
                checked_at: now(),
            }
        }
    }
}

/// After a failed observation: a workload the API server says is gone is `missing`, not an
/// error. `observe_env` only returns text, so the workload is read again to get a typed answer;
/// this costs a request only on this path. The registry is still asked, so that an unreachable
/// registry keeps its precedence (error > missing).
async fn diagnose(desired: &Desired, kubeconfig: Option<&Path>, message: String) -> Findings {
    let error = |reason: String| Findings {
        error: Some(reason),
        ..Default::default()
    };
    let target = &desired.target;
    let Ok(cluster) = cluster::connect(kubeconfig, target.context.as_deref()).await else {
        return error(message);
    };
    match cluster.get_workload(target).await {
        Err(gone @ ClusterError::NotFound { .. }) => {
            let registry = Registry::new(desired.registry.clone());
            for a in &desired.artifacts {
                if let Err(e) = registry.resolve(&a.image, &a.tag).await {
                    return error(e.to_string());
                }
            }
            Findings {
                workload_missing: Some(gone.to_string()),
                ..Default::default()
            }
        }
        _ => error(message),
    }
}

/// The pull policy a node uses when none is written (Kubernetes' defaulting): Always for
/// `:latest`, else IfNotPresent. Kept equal to `crate::plan`'s rule so drift and plan agree.
fn effective_policy(policy: Option<&str>, reference: &str) -> String {
    match policy {
        Some(p) => p.to_string(),
        None if parse_ref(reference).tag.as_deref() == Some("latest") => {
            PullPolicy::Always.as_str().into()
        }
        None => PullPolicy::IfNotPresent.as_str().into(),
    }
}

/// Whether a managedFields write happened at or after a revision was applied. Either time
/// missing or unreadable counts as after: an unknown order must not hide an edit.
fn written_since(w: &LastWrite, revision: &Revision) -> bool {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    match (w.time.as_deref().and_then(parse), parse(&revision.time)) {
        (Some(w), Some(r)) => w >= r,
        _ => true,
    }
}

/// The pure classification of one observed environment: the environment file (`desired`), the
/// workload with its managedFields and history (`observed`), and the tags as the registry
/// resolves them now (`resolved`).
pub fn classify(desired: &Desired, observed: &Observed, resolved: &[Resolved]) -> Findings {
    let mut f = Findings::default();
    let last = observed.history.last();
    let applied = |name: &str| -> Option<&RevisionArtifact> {
        last.and_then(|r| r.artifacts.iter().find(|a| a.name == name))
    };
    let digest_of = |name: &str| {
        resolved
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.digest.as_str())
    };
    for spec in &desired.artifacts {
        let digest = digest_of(&spec.name);
        let want = desired_state(spec, digest);
        let live = observed.artifacts.iter().find(|a| a.name == spec.name);
        let rev = applied(&spec.name);
        let Some(live) = live else {
            match rev {
                Some(r) => f.missing.push(MissingArtifact {
                    artifact: spec.name.clone(),
                    part: MissingPart::Volume,
                    applied: r.reference.clone(),
                }),
                None => f.pending.push(PendingChange {
                    artifact: spec.name.clone(),
                    action: Action::Add,
                    fields: vec![],
                    from: None,
                    to: Some(want.reference.clone()),
                }),
            }
            continue;
        };
        if let Some(r) = rev
            && live.state.mount_path.is_none()
        {
            f.missing.push(MissingArtifact {
                artifact: spec.name.clone(),
                part: MissingPart::Mount,
                applied: r.reference.clone(),
            });
            continue;
        }
        let state = &live.state;
        let policy_differs = effective_policy(state.pull_policy.as_deref(), &state.reference)
            != effective_policy(want.pull_policy.as_deref(), &want.reference);
        let mount_differs = state.mount_path != want.mount_path;
        let sub_differs = state.sub_path != want.sub_path;

        // Cluster edits: the reference against the history; the other values are not recorded
        // in the history, so they count as edited when another manager wrote the managed values
        // since the last apply, and as pending otherwise.
        let mut edited: Vec<String> = Vec::new();
        if let (Some(r), Some(last)) = (rev, last) {
            if state.reference != r.reference {
                edited.push("reference".into());
            }
            let outside = live
                .last_write
                .as_ref()
                .is_some_and(|w| w.manager != FIELD_MANAGER && written_since(w, last));
            if outside {
                for (differs, field) in [
                    (policy_differs, "pull_policy"),
                    (mount_differs, "mount_path"),
                    (sub_differs, "sub_path"),
                ] {
                    if differs {
                        edited.push(field.into());
                    }
                }
            }
            if !edited.is_empty() {
                f.edits.push(edit(&spec.name, edited.clone(), r, live));
            }
        }

        // A moved tag: same repository and tag as the file, another digest than pinned.
        let lp = parse_ref(&state.reference);
        if lp.repository == spec.image && lp.tag.as_deref() == Some(spec.tag.as_str()) {
            let pinned = lp.digest.clone().or_else(|| {
                rev.filter(|r| r.reference == state.reference)
                    .and_then(|r| r.digest.clone())
            });
            if let (Some(from), Some(to)) = (pinned, digest)
                && from != to
            {
                f.moves.push(TagMove {
                    artifact: spec.name.clone(),
                    tag: spec.tag_reference(),
                    from,
                    to: to.to_string(),
                });
            }
        }

        // Pending: the file against what perses-oci last applied, or what is live when it never
        // applied this artifact.
        let base = rev
            .map(|r| r.reference.as_str())
            .unwrap_or(&state.reference);
        let bp = parse_ref(base);
        let mut fields: Vec<String> = Vec::new();
        if bp.repository != spec.image {
            fields.push("image".into());
        }
        if bp.tag.as_deref() != Some(spec.tag.as_str()) {
            fields.push("tag".into());
        } else if bp.repository == spec.image {
            match (bp.digest.is_some(), spec.pin) {
                (false, Pin::Digest) if digest.is_some() => fields.push("pin".into()),
                (true, Pin::Tag) => fields.push("pin".into()),
                _ => {}
            }
        }
        for (differs, field) in [
            (policy_differs, "pull_policy"),
            (mount_differs, "mount_path"),
            (sub_differs, "sub_path"),
        ] {
            if differs && !edited.iter().any(|e| e == field) {
                fields.push(field.into());
            }
        }
        if !fields.is_empty() {
            f.pending.push(PendingChange {
                artifact: spec.name.clone(),
                action: Action::Update,
                fields,
                from: Some(base.to_string()),
                to: Some(want.reference.clone()),
            });
        }
    }
    // Artifacts perses-oci applied that the file no longer has: the next apply removes them.
    for live in &observed.artifacts {
        if desired.artifacts.iter().any(|a| a.name == live.name) {
            continue;
        }
        let rev = applied(&live.name);
        if rev.is_none() && !live.applied_by_us {
            continue;
        }
        if let Some(r) = rev
            && live.state.reference != r.reference
        {
            f.edits
                .push(edit(&live.name, vec!["reference".into()], r, live));
        }
        f.pending.push(PendingChange {
            artifact: live.name.clone(),
            action: Action::Remove,
            fields: vec![],
            from: Some(live.state.reference.clone()),
            to: None,
        });
    }
    f
}

fn edit(name: &str, fields: Vec<String>, r: &RevisionArtifact, live: &LiveArtifact) -> Edit {
    Edit {
        artifact: name.to_string(),
        fields,
        applied: r.reference.clone(),
        live: live.state.reference.clone(),
        by: live.last_write.clone(),
    }
}

/// The managedFields entry that owns one managed field of a volume (`reference`,
/// `pull_policy`, `mount_path`, `sub_path`), from the workload JSON. With several owners (a
/// shared server-side apply), another manager than perses-oci wins, then the newest.
pub fn field_writer(
    obj: &serde_json::Value,
    container: &str,
    volume: &str,
    field: &str,
) -> Option<LastWrite> {
    let key = |k: &str, v: &str| format!("k:{}", serde_json::json!({ k: v }));
    let pod = &obj["spec"]["template"]["spec"];
    let mount_path = pod["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)?["volumeMounts"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == volume))
        .and_then(|m| m["mountPath"].as_str());
    let mut best: Option<LastWrite> = None;
    for entry in obj["metadata"]["managedFields"].as_array()? {
        let spec = &entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"];
        let image = &spec["f:volumes"][key("name", volume)]["f:image"];
        let mount = || {
            mount_path
                .map(|p| {
                    &spec["f:containers"][key("name", container)]["f:volumeMounts"]
                        [key("mountPath", p)]
                })
                .unwrap_or(&serde_json::Value::Null)
        };
        let owned = match field {
            "reference" => &image["f:reference"],
            "pull_policy" => &image["f:pullPolicy"],
            "mount_path" => &mount()["f:mountPath"],
            "sub_path" => &mount()["f:subPath"],
            _ => &serde_json::Value::Null,
        };
        let (false, Some(manager)) = (owned.is_null(), entry["manager"].as_str()) else {
            continue;
        };
        let w = LastWrite {
            manager: manager.to_string(),
            operation: entry["operation"].as_str().unwrap_or_default().to_string(),
            time: entry["time"].as_str().map(str::to_string),
        };
        let better = match &best {
            None => true,
            Some(b) if (b.manager == FIELD_MANAGER) != (w.manager == FIELD_MANAGER) => {
                b.manager == FIELD_MANAGER
            }
            Some(b) => w.time > b.time,
        };
        if better {
            best = Some(w);
        }
    }
    best
}

/// Names, for each edit, the manager that owns the first changed field.
fn name_editors(edits: &mut [Edit], obj: &serde_json::Value, container: &str) {
    for e in edits {
        if let Some(w) = e
            .fields
            .first()
            .and_then(|f| field_writer(obj, container, &e.artifact, f))
        {
            e.by = Some(w);
        }
    }
}

/// The value of `perses_oci_drift_last_success_timestamp_seconds` in a metrics file written
/// before, to keep it across checks that had errors.
pub fn previous_last_success(text: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("perses_oci_drift_last_success_timestamp_seconds")?;
        // The bare name followed by the value: not another metric that shares the prefix.
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        rest.split_whitespace().next()?.parse::<f64>().ok()
    })
}

/// Writes the Prometheus text file atomically (a temporary file in the same directory, then a
/// rename), so a collector never reads half a file. The last-success time is now when no
/// environment had an error; otherwise the previous file's value is kept (none: 0).
pub fn write_metrics(path: &Path, report: &DriftReport) -> std::io::Result<()> {
    let last_success = if report.has_errors() {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| previous_last_success(&t))
    } else {
        Some(report.finished_unix())
    };
    let text = crate::render::drift::metrics(report, last_success);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "metrics".into());
    // A leading dot and no `.prom` ending: node_exporter's textfile collector skips it.
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    const IMAGE: &str = "reg.example/perses";
    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const MOUNT: &str = "/etc/perses/provisioning";

    fn spec(tag: &str) -> ArtifactSpec {
        ArtifactSpec {
            name: "perses-resources".into(),
            image: IMAGE.into(),
            tag: tag.into(),
            pull_policy: Some(PullPolicy::IfNotPresent),
            mount_path: MOUNT.into(),
            sub_path: None,
            pin: Pin::Digest,
            source: None,
        }
    }

    fn desired(arts: Vec<ArtifactSpec>) -> Desired {
        Desired {
            env: "prod".into(),
            file: "environments/prod.toml".into(),
            file_sha256: "sha256:00".into(),
            target: Target {
                context: Some("prod".into()),
                namespace: "monitoring".into(),
                workload: WorkloadRef {
                    kind: WorkloadKind::StatefulSet,
                    name: "perses".into(),
                },
                container: "perses".into(),
                manifest: None,
            },
            artifacts: arts,
            registry: RegistrySettings::default(),
        }
    }

    fn write(manager: &str, time: &str) -> Option<LastWrite> {
        Some(LastWrite {
            manager: manager.into(),
            operation: if manager == FIELD_MANAGER {
                "Apply"
            } else {
                "Update"
            }
            .into(),
            time: Some(time.into()),
        })
    }

    /// A live artifact last written by perses-oci at 10:00.
    fn live(reference: &str) -> LiveArtifact {
        LiveArtifact {
            name: "perses-resources".into(),
            state: ArtifactState {
                reference: reference.into(),
                pull_policy: Some("IfNotPresent".into()),
                mount_path: Some(MOUNT.into()),
                sub_path: None,
            },
            owners: vec![FIELD_MANAGER.into()],
            applied_by_us: true,
            last_write: write(FIELD_MANAGER, "2026-05-01T10:00:00Z"),
        }
    }

    fn edited_by(mut l: LiveArtifact, manager: &str, time: &str) -> LiveArtifact {
        l.owners.push(manager.into());
        l.last_write = write(manager, time);
        l
    }

    /// Revision 1, applied at 10:00, of `tag` pinned to `digest`.
    fn revision(tag: &str, digest: &str) -> Revision {
        Revision {
            revision: 1,
            time: "2026-05-01T10:00:00Z".into(),
            by: "admin".into(),
            artifacts: vec![RevisionArtifact {
                name: "perses-resources".into(),
                image: IMAGE.into(),
                tag: tag.into(),
                digest: Some(digest.into()),
                reference: format!("{IMAGE}:{tag}@{digest}"),
            }],
        }
    }

    fn observed(arts: Vec<LiveArtifact>, history: Vec<Revision>) -> Observed {
        Observed {
            resource_version: "1".into(),
            generation: 1,
            server_version: (1, 35),
            mounts: vec![],
            artifacts: arts,
            provisioning_folders: Some(vec![MOUNT.into()]),
            history,
            pull: Default::default(),
        }
    }

    fn resolved(d: &str) -> Vec<Resolved> {
        vec![Resolved {
            name: "perses-resources".into(),
            digest: d.into(),
        }]
    }

    fn pinned(tag: &str, d: &str) -> String {
        format!("{IMAGE}:{tag}@{d}")
    }

    #[test]
    fn in_sync_right_after_apply() {
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![live(&pinned("v1", D1))], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(f, Findings::default());
        assert_eq!(f.class(), DriftClass::InSync);
    }

    #[test]
    fn in_sync_when_never_applied_but_equal() {
        let mut l = live(&pinned("v1", D1));
        l.owners = vec!["helm".into()];
        l.applied_by_us = false;
        l.last_write = write("helm", "2026-01-01T00:00:00Z");
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![l], vec![]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::InSync, "{f:?}");
    }

    #[test]
    fn pending_when_the_file_moved_on_and_the_cluster_did_not() {
        let f = classify(
            &desired(vec![spec("v2")]),
            &observed(vec![live(&pinned("v1", D1))], vec![revision("v1", D1)]),
            &resolved(D2),
        );
        assert_eq!(f.class(), DriftClass::Pending);
        assert_eq!(
            f.pending,
            vec![PendingChange {
                artifact: "perses-resources".into(),
                action: Action::Update,
                fields: vec!["tag".into()],
                from: Some(pinned("v1", D1)),
                to: Some(pinned("v2", D2)),
            }]
        );
        assert!(f.edits.is_empty() && f.moves.is_empty());
    }

    #[test]
    fn pending_for_pull_policy_mount_pin_and_new_or_dropped_artifacts() {
        let mut s = spec("v1");
        s.pull_policy = Some(PullPolicy::Always);
        s.sub_path = Some("prod".into());
        s.pin = Pin::Tag;
        let f = classify(
            &desired(vec![s]),
            &observed(vec![live(&pinned("v1", D1))], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::Pending);
        assert_eq!(f.pending[0].fields, vec!["pin", "pull_policy", "sub_path"]);

        // A new artifact in the file; the applied one dropped from it.
        let mut other = spec("v1");
        other.name = "more".into();
        other.mount_path = "/etc/perses/provisioning/more".into();
        let f = classify(
            &desired(vec![other]),
            &observed(vec![live(&pinned("v1", D1))], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        let actions: Vec<Action> = f.pending.iter().map(|p| p.action).collect();
        assert_eq!(actions, vec![Action::Add, Action::Remove]);
        assert_eq!(f.class(), DriftClass::Pending);
    }

    #[test]
    fn never_applied_and_different_is_pending() {
        let mut l = live(&format!("{IMAGE}:v0"));
        l.owners = vec!["helm".into()];
        l.applied_by_us = false;
        l.last_write = write("helm", "2026-01-01T00:00:00Z");
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![l], vec![]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::Pending);
        assert_eq!(f.pending[0].fields, vec!["tag"]);
        assert!(f.edits.is_empty(), "helm's values are not edits of ours");
        // Not applied by us and not in the file: not ours, not a removal.
        let mut foreign = live(&format!("{IMAGE}:v0"));
        foreign.name = "helm-only".into();
        foreign.applied_by_us = false;
        let f = classify(&desired(vec![]), &observed(vec![foreign], vec![]), &[]);
        assert_eq!(f.class(), DriftClass::InSync);
    }

    #[test]
    fn cluster_edited_names_the_manager_and_time() {
        let l = edited_by(
            live(&format!("{IMAGE}:v0")),
            "kubectl-edit",
            "2026-05-01T11:00:00Z",
        );
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![l], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::ClusterEdited);
        let e = &f.edits[0];
        assert_eq!(e.fields, vec!["reference"]);
        assert_eq!(e.applied, pinned("v1", D1));
        assert_eq!(e.live, format!("{IMAGE}:v0"));
        let by = e.by.as_ref().unwrap();
        assert_eq!(by.manager, "kubectl-edit");
        assert_eq!(by.operation, "Update");
        assert_eq!(by.time.as_deref(), Some("2026-05-01T11:00:00Z"));
        // The file still equals what was applied: nothing pending.
        assert!(f.pending.is_empty(), "{f:?}");
    }

    #[test]
    fn pull_policy_edit_by_another_manager_is_an_edit_not_pending() {
        let mut l = edited_by(
            live(&pinned("v1", D1)),
            "kubectl-edit",
            "2026-05-01T11:00:00Z",
        );
        l.state.pull_policy = Some("Always".into());
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![l.clone()], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::ClusterEdited);
        assert_eq!(f.edits[0].fields, vec!["pull_policy"]);
        assert!(f.pending.is_empty());
        // Written before the last apply (another manager's older entry): the file changed.
        l.last_write = write("helm", "2026-04-01T00:00:00Z");
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![l], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::Pending);
        assert_eq!(f.pending[0].fields, vec!["pull_policy"]);
    }

    #[test]
    fn tag_moved_when_the_registry_resolves_another_digest() {
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![live(&pinned("v1", D1))], vec![revision("v1", D1)]),
            &resolved(D2),
        );
        assert_eq!(f.class(), DriftClass::TagMoved);
        assert_eq!(
            f.moves,
            vec![TagMove {
                artifact: "perses-resources".into(),
                tag: format!("{IMAGE}:v1"),
                from: D1.into(),
                to: D2.into(),
            }]
        );
        assert!(f.pending.is_empty(), "{f:?}");
    }

    #[test]
    fn tag_moved_with_pin_tag_compares_the_recorded_digest() {
        let mut s = spec("v1");
        s.pin = Pin::Tag;
        let mut rev = revision("v1", D1);
        rev.artifacts[0].reference = format!("{IMAGE}:v1");
        let f = classify(
            &desired(vec![s]),
            &observed(vec![live(&format!("{IMAGE}:v1"))], vec![rev]),
            &resolved(D2),
        );
        assert_eq!(f.class(), DriftClass::TagMoved);
        assert_eq!(f.moves[0].from, D1);
    }

    #[test]
    fn missing_volume_or_mount_applied_before() {
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::Missing);
        assert_eq!(f.missing[0].part, MissingPart::Volume);
        assert_eq!(f.missing[0].applied, pinned("v1", D1));
        let mut l = live(&pinned("v1", D1));
        l.state.mount_path = None;
        let f = classify(
            &desired(vec![spec("v1")]),
            &observed(vec![l], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(f.class(), DriftClass::Missing);
        assert_eq!(f.missing[0].part, MissingPart::Mount);
    }

    #[test]
    fn precedence_error_missing_edited_moved_pending() {
        let all = Findings {
            error: Some("boom".into()),
            workload_missing: Some("gone".into()),
            missing: vec![],
            edits: vec![Edit {
                artifact: "a".into(),
                fields: vec!["reference".into()],
                applied: "x".into(),
                live: "y".into(),
                by: None,
            }],
            moves: vec![TagMove {
                artifact: "a".into(),
                tag: "t".into(),
                from: D1.into(),
                to: D2.into(),
            }],
            pending: vec![PendingChange {
                artifact: "a".into(),
                action: Action::Add,
                fields: vec![],
                from: None,
                to: None,
            }],
        };
        assert_eq!(
            all.classes(),
            vec![
                DriftClass::Error,
                DriftClass::Missing,
                DriftClass::ClusterEdited,
                DriftClass::TagMoved,
                DriftClass::Pending
            ]
        );
        let mut f = all.clone();
        f.error = None;
        assert_eq!(f.class(), DriftClass::Missing);
        f.workload_missing = None;
        assert_eq!(f.class(), DriftClass::ClusterEdited);
        f.edits.clear();
        assert_eq!(f.class(), DriftClass::TagMoved);
        f.moves.clear();
        assert_eq!(f.class(), DriftClass::Pending);
        f.pending.clear();
        assert_eq!(f.class(), DriftClass::InSync);
        // The derived order is the same precedence.
        let mut sorted = DriftClass::ALL.to_vec();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![
                DriftClass::InSync,
                DriftClass::Pending,
                DriftClass::TagMoved,
                DriftClass::ClusterEdited,
                DriftClass::Missing,
                DriftClass::Error
            ]
        );
    }

    #[test]
    fn edited_and_moved_and_pending_at_once_is_cluster_edited() {
        // The file asks for v2; someone pinned v1 to another digest by hand; v1 also moved.
        let l = edited_by(
            live(&pinned("v1", D2)),
            "kubectl-edit",
            "2026-05-01T11:00:00Z",
        );
        let f = classify(
            &desired(vec![spec("v2")]),
            &observed(vec![l], vec![revision("v1", D1)]),
            &resolved(D1),
        );
        assert_eq!(
            f.classes(),
            vec![DriftClass::ClusterEdited, DriftClass::Pending]
        );
    }

    fn report(classes: &[DriftClass]) -> DriftReport {
        let envs = classes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut f = Findings::default();
                match c {
                    DriftClass::Error => f.error = Some("x".into()),
                    DriftClass::Missing => f.workload_missing = Some("x".into()),
                    DriftClass::Pending => f.pending.push(PendingChange {
                        artifact: "a".into(),
                        action: Action::Add,
                        fields: vec![],
                        from: None,
                        to: None,
                    }),
                    _ => {}
                }
                EnvDrift {
                    env: format!("e{i}"),
                    target: None,
                    revision: None,
                    artifacts: vec![],
                    findings: f,
                    checked_at: "2026-05-01T10:00:00Z".into(),
                }
            })
            .collect();
        DriftReport {
            checked_at: chrono::DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z")
                .unwrap()
                .into(),
            duration: Duration::from_millis(1500),
            envs,
        }
    }

    #[test]
    fn exit_codes_error_wins_over_drift() {
        use crate::ops::exit;
        assert_eq!(report(&[DriftClass::InSync]).exit_code(), exit::OK);
        assert_eq!(
            report(&[DriftClass::InSync, DriftClass::Pending]).exit_code(),
            exit::CHANGES
        );
        assert_eq!(report(&[DriftClass::Missing]).exit_code(), exit::CHANGES);
        assert_eq!(
            report(&[DriftClass::Pending, DriftClass::Error]).exit_code(),
            exit::ERROR
        );
        let r = report(&[DriftClass::InSync, DriftClass::Pending, DriftClass::Pending]);
        let s: Vec<(&str, usize)> = r.summary().iter().map(|(c, n)| (c.as_str(), *n)).collect();
        assert_eq!(
            s,
            vec![
                ("in_sync", 1),
                ("pending", 2),
                ("cluster_edited", 0),
                ("tag_moved", 0),
                ("missing", 0),
                ("error", 0)
            ]
        );
        assert_eq!(r.finished_unix(), 1_777_629_601.5);
    }

    #[test]
    fn metrics_file_is_replaced_and_keeps_last_success_on_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("drift.prom");
        write_metrics(&path, &report(&[DriftClass::InSync])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(previous_last_success(&text), Some(1_777_629_601.5));
        write_metrics(&path, &report(&[DriftClass::Error])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(previous_last_success(&text), Some(1_777_629_601.5));
        assert!(
            text.contains("perses_oci_drift{environment=\"e0\",class=\"error\"} 1"),
            "{text}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        let fresh = dir.join("fresh.prom");
        write_metrics(&fresh, &report(&[DriftClass::Error])).unwrap();
        let text = std::fs::read_to_string(&fresh).unwrap();
        assert_eq!(previous_last_success(&text), Some(0.0));
    }

    #[test]
    fn field_writer_prefers_the_owner_of_the_changed_field_over_a_same_second_tie() {
        let vol = r#"k:{"name":"perses-resources"}"#;
        let c = r#"k:{"name":"perses"}"#;
        let m = r#"k:{"mountPath":"/etc/perses/provisioning"}"#;
        let obj = serde_json::json!({
            "metadata": {"managedFields": [
                {"manager": "perses-oci", "operation": "Apply", "time": "2026-05-01T10:00:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                    "f:volumes": {vol: {"f:image": {"f:pullPolicy": {}}}},
                    "f:containers": {c: {"f:volumeMounts": {m: {"f:mountPath": {}}}}}}}}}},
                {"manager": "kubectl-edit", "operation": "Update", "time": "2026-05-01T10:00:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                    "f:volumes": {vol: {"f:image": {"f:reference": {}}}}}}}}}
            ]},
            "spec": {"template": {"spec": {"containers": [{"name": "perses", "volumeMounts": [
                {"name": "perses-resources", "mountPath": "/etc/perses/provisioning"}]}]}}}
        });
        let w = field_writer(&obj, "perses", "perses-resources", "reference").unwrap();
        assert_eq!(
            (w.manager.as_str(), w.operation.as_str()),
            ("kubectl-edit", "Update")
        );
        let w = field_writer(&obj, "perses", "perses-resources", "mount_path").unwrap();
        assert_eq!(w.manager, "perses-oci");
        assert_eq!(
            field_writer(&obj, "perses", "perses-resources", "sub_path"),
            None
        );
        assert_eq!(field_writer(&obj, "perses", "other", "reference"), None);
        let mut edits = vec![Edit {
            artifact: "perses-resources".into(),
            fields: vec!["reference".into()],
            applied: "a".into(),
            live: "b".into(),
            by: write(FIELD_MANAGER, "2026-05-01T10:00:00Z"),
        }];
        name_editors(&mut edits, &obj, "perses");
        assert_eq!(edits[0].by.as_ref().unwrap().manager, "kubectl-edit");
    }

    #[test]
    fn previous_last_success_reads_only_its_own_metric() {
        let text = "# HELP x\nperses_oci_drift_last_success_timestamp_seconds_other 5\nperses_oci_drift_last_success_timestamp_seconds 42.5\n";
        assert_eq!(previous_last_success(text), Some(42.5));
        assert_eq!(previous_last_success("nothing\n"), None);
    }
}
