//! `apply`, `rollback`, `history` and `force-unlock`: bring environments to their files with
//! server-side apply, one after another, under a lease, recording history and waiting for the
//! rollout. A saved plan is applied only when nothing it was computed from has moved.

use crate::cluster::lease;
use crate::cluster::rollout::Progress;
use crate::cluster::{ClusterError, observe};
use crate::config::{self, Project};
use crate::manifest;
use crate::model::{
    Desired, EnvPlan, HISTORY_ANNOTATION, HISTORY_LIMIT, Plan, PlanInputs, Resolved, Revision,
    RevisionArtifact,
};
use crate::ops::plan::{
    Backend, EnvContext, ManifestFile, PlanOptions, Session, body_for, dropped_checks,
    observe_env_in, plan_from,
};
use crate::ops::planfile::{self, PlanFileError};
use crate::plan::{desired_reference, parse_ref};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub plan: PlanOptions,
    pub plan_file: Option<std::path::PathBuf>,
    pub force_conflicts: bool,
    pub wait: bool,
    pub timeout: Duration,
    pub lock_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error(transparent)]
    Cluster(Box<ClusterError>),
    #[error("environment {env}: {message}")]
    Env { env: String, message: String },
    #[error("the saved plan is stale, nothing was applied:\n{}", reasons.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    Stale { reasons: Vec<String> },
    #[error("environment {env}: {message}")]
    Dropped { env: String, message: String },
    #[error(
        "environment {env}: the rollout of {workload} did not finish within {timeout:?}: {state}.\n  The change is applied; to go back to the previous revision run: perses-oci rollback --env {env}"
    )]
    RolloutTimeout {
        env: String,
        workload: String,
        timeout: Duration,
        state: String,
    },
    #[error(
        "environment {env}: the rollout of {workload} failed: {state}.\n  The change is applied; to go back to the previous revision run: perses-oci rollback --env {env}"
    )]
    RolloutFailed {
        env: String,
        workload: String,
        state: String,
    },
}

impl ApplyError {
    /// Whether the environment was written before the error (its rollout then failed or timed
    /// out): what the summary line and a retry need to know.
    pub fn written(&self) -> bool {
        matches!(
            self,
            ApplyError::RolloutTimeout { .. } | ApplyError::RolloutFailed { .. }
        )
    }
}

impl From<ClusterError> for ApplyError {
    fn from(e: ClusterError) -> Self {
        ApplyError::Cluster(Box::new(e))
    }
}

/// A plan ready to apply: each environment's plan with what it was computed from.
pub struct Prepared {
    pub project: Project,
    pub plan: Plan,
    pub contexts: Vec<Option<EnvContext>>,
}

/// Plans fresh (no plan file) or checks a saved plan against the world.
pub async fn prepare(opts: &ApplyOptions) -> Result<Prepared, ApplyError> {
    let Some(path) = &opts.plan_file else {
        let (project, plan, contexts) = crate::ops::plan::plan(&opts.plan).await?;
        return Ok(Prepared {
            project,
            plan,
            contexts,
        });
    };
    let saved = planfile::read(path)?;
    let project = config::load_project(&opts.plan.dir)?;
    let mut reasons = Vec::new();
    let mut envs = Vec::new();
    let mut contexts = Vec::new();
    // One client per cluster and registry for the whole saved plan, as a fresh plan has.
    let session = Session::new(opts.plan.kubeconfig.clone());
    for env in &saved.envs {
        if let Some(e) = &env.error {
            return Err(ApplyError::Env {
                env: env.env.clone(),
                message: format!(
                    "the saved plan has an error, it cannot be applied: {}",
                    e.message
                ),
            });
        }
        let desired = config::load_env(&project, &env.env)?;
        let ctx = observe_env_in(&session, &desired)
            .await
            .map_err(|message| ApplyError::Env {
                env: env.env.clone(),
                message,
            })?;
        if let Some(inputs) = &env.inputs {
            reasons.extend(stale_reasons(&env.env, &desired, inputs, &ctx));
        }
        envs.push(plan_from(&ctx).await);
        contexts.push(Some(ctx));
    }
    if !reasons.is_empty() {
        return Err(ApplyError::Stale { reasons });
    }
    Ok(Prepared {
        project,
        plan: Plan { envs },
        contexts,
    })
}

/// What moved since a plan was saved, scoped to what perses-oci reads and writes: the file, the
/// resolved digests and the managed fields. Other writes to the workload do not count.
pub fn stale_reasons(
    env: &str,
    desired: &Desired,
    inputs: &PlanInputs,
    ctx: &EnvContext,
) -> Vec<String> {
    let mut out = Vec::new();
    if desired.file_sha256 != inputs.file_sha256 {
        out.push(format!(
            "{env}: {} changed since the plan",
            desired.file.display()
        ));
    }
    for r in &ctx.resolved {
        match inputs.resolved.iter().find(|o| o.name == r.name) {
            Some(o) if o.digest != r.digest => out.push(format!(
                "{env}: the tag of artifact {:?} now resolves to {} (the plan has {})",
                r.name, r.digest, o.digest
            )),
            None => out.push(format!("{env}: artifact {:?} was not in the plan", r.name)),
            _ => {}
        }
    }
    let names = ctx
        .observed
        .artifacts
        .iter()
        .map(|a| &a.name)
        .chain(inputs.live.iter().map(|a| &a.name));
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name.clone()) {
            continue;
        }
        let now = ctx
            .observed
            .artifacts
            .iter()
            .find(|a| &a.name == name)
            .map(|a| &a.state);
        let then = inputs
            .live
            .iter()
            .find(|a| &a.name == name)
            .map(|a| &a.state);
        if now != then {
            let show = |s: Option<&crate::model::ArtifactState>| {
                s.map(|s| s.reference.clone())
                    .unwrap_or_else(|| "(absent)".into())
            };
            out.push(format!(
                "{env}: the managed fields of volume {name:?} changed in the cluster since the plan ({} -> {})",
                show(then),
                show(now)
            ));
        }
    }
    out
}

/// Applies one environment's plan (no-op when it has no changes). Holds the workload's lease
/// for the whole write and rollout.
pub async fn apply_env(
    ctx: &EnvContext,
    plan: &EnvPlan,
    opts: &ApplyOptions,
    say: &mut dyn FnMut(String),
) -> Result<bool, ApplyError> {
    let env = &ctx.desired.env;
    if plan.changes.is_empty() {
        say(format!(
            "{env}: No changes. The workload matches the configuration."
        ));
        return Ok(false);
    }
    let cluster = match &ctx.backend {
        Backend::Cluster(c) => c,
        Backend::Manifest(m) => return write_manifest(ctx, plan, m, say).map(|_| true),
    };
    let target = &ctx.desired.target;
    // A dry run first: a refused write (RBAC, a conflict) is reported before taking the lock.
    cluster
        .apply(target, &body_for(ctx, &[]), true, opts.force_conflicts)
        .await?;
    let who = lease::identity(&cluster.user);
    let held = cluster.lock(target, &who, opts.lock_timeout).await?;
    // An adopt writes the values the pod template already has: nothing rolls out.
    let rollout = plan
        .changes
        .iter()
        .any(|c| c.action != crate::model::Action::Adopt);
    let result = write_and_wait(ctx, opts, rollout, say).await;
    held.release().await;
    result.map(|_| true)
}

async fn write_and_wait(
    ctx: &EnvContext,
    opts: &ApplyOptions,
    rollout: bool,
    say: &mut dyn FnMut(String),
) -> Result<(), ApplyError> {
    let env = &ctx.desired.env;
    let Backend::Cluster(cluster) = &ctx.backend else {
        unreachable!("manifest targets are written by write_manifest");
    };
    let target = &ctx.desired.target;
    // Under the lock, make sure nobody wrote the managed fields since we looked.
    let now = cluster.get_workload(target).await?;
    if let Ok(ex) = observe::extract(&now, target) {
        let states = |a: &[crate::model::LiveArtifact]| {
            a.iter()
                .map(|x| (x.name.clone(), x.state.clone()))
                .collect::<Vec<_>>()
        };
        if states(&ex.artifacts) != states(&ctx.observed.artifacts) {
            return Err(ApplyError::Stale {
                reasons: vec![format!(
                    "{env}: the managed fields changed in the cluster while planning; run again"
                )],
            });
        }
    }
    let history = next_history(
        &ctx.observed.history,
        &ctx.desired,
        &ctx.resolved,
        &cluster.user,
    );
    let annotation = serde_json::to_string(&history).expect("history serializes");
    let body = body_for(ctx, &[(HISTORY_ANNOTATION.to_string(), annotation)]);
    let stored = cluster
        .apply(target, &body, false, opts.force_conflicts)
        .await?;
    let dropped = dropped_checks(ctx, &stored, false);
    if !dropped.is_empty() {
        return Err(ApplyError::Dropped {
            env: env.clone(),
            message: dropped
                .into_iter()
                .map(|c| c.message)
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let generation = stored["metadata"]["generation"].as_i64().unwrap_or(0);
    say(format!(
        "{env}: applied to {} in {} (context {}), generation {generation}, revision {}",
        target.workload,
        target.namespace,
        cluster.context,
        history.last().map(|r| r.revision).unwrap_or(0)
    ));
    if !rollout {
        say(format!(
            "{env}: the pod template did not change (perses-oci now owns its fields): no rollout"
        ));
        return Ok(());
    }
    if !opts.wait {
        return Ok(());
    }
    // On a terminal, a spinner shows the wait's state and how long it has lasted; the lines
    // stay for the record (and are all there is in a pipe or a CI log).
    let spinner = crate::progress::spinner(format!("{env}: waiting for the rollout"));
    let progress = cluster
        .wait_rollout(target, opts.timeout, |why| {
            spinner.set(format!("{env}: waiting for the rollout: {why}"));
            spinner.suspend(|| say(format!("{env}: waiting for the rollout: {why}")))
        })
        .await;
    drop(spinner);
    let progress = progress?;
    match progress {
        Progress::Done => {
            say(format!("{env}: rolled out"));
            Ok(())
        }
        Progress::Waiting(state) => Err(ApplyError::RolloutTimeout {
            env: env.clone(),
            workload: format!("{}/{}", target.namespace, target.workload),
            timeout: opts.timeout,
            state,
        }),
        Progress::Failed(state) => Err(ApplyError::RolloutFailed {
            env: env.clone(),
            workload: format!("{}/{}", target.namespace, target.workload),
            state,
        }),
    }
}

/// Rewrites the managed lines of a manifest-file target, keeping every other byte, atomically
/// (a temporary file renamed over it). Refuses when the file changed since it was read.
fn write_manifest(
    ctx: &EnvContext,
    plan: &EnvPlan,
    m: &ManifestFile,
    say: &mut dyn FnMut(String),
) -> Result<(), ApplyError> {
    let env = &ctx.desired.env;
    let shown = m.path.display().to_string();
    let err = |message: String| ApplyError::Env {
        env: env.clone(),
        message,
    };
    let now =
        std::fs::read_to_string(&m.path).map_err(|e| err(format!("cannot read {shown}: {e}")))?;
    if now != m.text {
        return Err(ApplyError::Stale {
            reasons: vec![format!("{env}: {shown} changed while planning; run again")],
        });
    }
    let edits: Vec<manifest::Edit> = plan
        .changes
        .iter()
        .map(|c| (c.artifact.clone(), c.after.clone()))
        .collect();
    let text = manifest::apply_edits(
        &shown,
        &m.text,
        &m.doc,
        &ctx.desired.target.container,
        &edits,
    )
    .map_err(|e| err(e.to_string()))?;
    let dir = m
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| err(format!("cannot write next to {shown}: {e}")))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(|e| err(format!("cannot write {shown}: {e}")))?;
    if let Ok(meta) = std::fs::metadata(&m.path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(&m.path)
        .map_err(|e| err(format!("cannot replace {shown}: {e}")))?;
    say(format!(
        "{env}: wrote {shown} ({} of {} lines changed); commit it to deploy",
        changed_lines(&m.text, &text),
        text.lines().count()
    ));
    Ok(())
}

fn changed_lines(a: &str, b: &str) -> usize {
    similar::TextDiff::from_lines(a, b)
        .iter_all_changes()
        .filter(|c| c.tag() == similar::ChangeTag::Insert)
        .count()
}

/// The history after this apply: the old one plus one revision, the newest `HISTORY_LIMIT` kept.
pub fn next_history(
    old: &[Revision],
    desired: &Desired,
    resolved: &[Resolved],
    by: &str,
) -> Vec<Revision> {
    let revision = old.last().map(|r| r.revision + 1).unwrap_or(1);
    let artifacts = desired
        .artifacts
        .iter()
        .map(|a| {
            let digest = resolved
                .iter()
                .find(|r| r.name == a.name)
                .map(|r| r.digest.clone());
            RevisionArtifact {
                name: a.name.clone(),
                image: a.image.clone(),
                tag: a.tag.clone(),
                reference: desired_reference(a, digest.as_deref()),
                digest,
            }
        })
        .collect();
    let mut out: Vec<Revision> = old.to_vec();
    out.push(Revision {
        revision,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        by: by.to_string(),
        artifacts,
    });
    let skip = out.len().saturating_sub(HISTORY_LIMIT);
    out.drain(..skip);
    out
}

/// The environment as it was at `revision`: same target and mounts, the recorded image, tag and
/// digest. The digest is the one recorded, not the tag's current one: a moved tag must not
/// change what a rollback restores.
pub fn at_revision(ctx: &EnvContext, revision: &Revision) -> EnvContext {
    let mut desired = ctx.desired.clone();
    let mut resolved = Vec::new();
    desired
        .artifacts
        .retain(|a| revision.artifacts.iter().any(|r| r.name == a.name));
    for a in &mut desired.artifacts {
        let r = revision
            .artifacts
            .iter()
            .find(|r| r.name == a.name)
            .expect("retained");
        a.image = r.image.clone();
        a.tag = r.tag.clone();
        if let Some(d) = &r.digest {
            resolved.push(Resolved {
                name: a.name.clone(),
                digest: d.clone(),
            });
        } else if let Some(d) = parse_ref(&r.reference).digest {
            resolved.push(Resolved {
                name: a.name.clone(),
                digest: d,
            });
        }
    }
    EnvContext {
        desired,
        backend: ctx.backend.clone(),
        observed: ctx.observed.clone(),
        resolved,
        registry: ctx.registry.clone(),
    }
}

/// Rewrites the `tag = "..."` line of each rolled-back artifact in the environment file, keeping
/// every other byte. Returns the new text and the changes made, as `artifact: old -> new`.
pub fn rewrite_tags(text: &str, desired: &Desired, revision: &Revision) -> (String, Vec<String>) {
    let mut out = text.to_string();
    let mut changes = Vec::new();
    for a in &desired.artifacts {
        let Some(r) = revision.artifacts.iter().find(|r| r.name == a.name) else {
            continue;
        };
        if r.tag == a.tag {
            continue;
        }
        let old = format!("\"{}\"", a.tag);
        let new = format!("\"{}\"", r.tag);
        // Only touch a line that sets `tag` to exactly the old value, once.
        let mut done = false;
        out = out
            .split_inclusive('\n')
            .map(|line| {
                let t = line.trim_start();
                if !done
                    && t.starts_with("tag")
                    && t.contains(&old)
                    && t[3..].trim_start().starts_with('=')
                {
                    done = true;
                    line.replacen(&old, &new, 1)
                } else {
                    line.to_string()
                }
            })
            .collect();
        changes.push(format!(
            "artifact {:?}: tag = \"{}\" -> tag = \"{}\"",
            a.name, a.tag, r.tag
        ));
    }
    (out, changes)
}
