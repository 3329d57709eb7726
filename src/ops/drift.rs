//! `drift`: for each environment, one class that says whether the cluster still holds what the
//! environment file asks for and, if not, why. Read-only on purpose: it runs from a cron job with
//! a service account that may only get, so unlike `plan` it never asks for a dry run. This is
//! the orchestration (read, classify, name the editors, write the metrics file); the report's
//! types are in `crate::model::drift` and the rules in `crate::plan::drift`.

use crate::cluster::{self, ClusterError};
use crate::config::{self, ConfigError, Project};
pub use crate::model::drift::*;
use crate::model::{Desired, Target};
use crate::ops::plan::{Session, observe_env_in};
pub use crate::plan::drift::{classify, missed_step, name_editors};
use crate::registry::Registry;
use std::path::{Path, PathBuf};

/// What `drift` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    pub dir: PathBuf,
    pub envs: Vec<String>,
    pub all: bool,
    pub kubeconfig: Option<PathBuf>,
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
                    if let Some(release) = &ctx.observed.helm {
                        let by_helm =
                            |e: &Edit| e.by.as_ref().is_some_and(|w| w.manager == release.manager);
                        if findings.edits.iter().any(by_helm) {
                            let revision = cluster
                                .helm_revision(&release.namespace, &release.name)
                                .await;
                            for e in findings.edits.iter_mut().filter(|e| by_helm(e)) {
                                e.helm = Some(HelmEdit {
                                    release: release.name.clone(),
                                    namespace: release.namespace.clone(),
                                    revision,
                                    missed: missed_step(release.writes).to_string(),
                                });
                            }
                        }
                    }
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
