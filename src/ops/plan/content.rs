//! What changes inside the artifacts a plan writes: each new artifact read and linted, the live
//! one indexed, and the two diffed, each once per process however many environments mount it.

use super::{EnvContext, layout_dir};
use crate::artifact::diff::scanned_diff_known;
use crate::artifact::layout::LayoutRef;
use crate::artifact::scan::{Scan, ScanError};
use crate::artifact::source::Source;
use crate::model::{ArtifactSpec, Change, Check, Desired, Severity};
use crate::perses as lint;
use crate::plan::parse_ref;
use crate::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::OnceCell;

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
pub(super) async fn content_checks(
    ctx: &EnvContext,
    changes: &mut [Change],
    checks: &mut Vec<Check>,
) {
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
