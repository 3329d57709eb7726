//! The plan's checks beyond the diff: the server's dry run (and the image volumes it would
//! drop), whether the nodes can pull what is written, and artifacts to copy to their registry.

use super::{EnvContext, body_for, layout_dir};
use crate::cluster::{ClusterError, observe};
use crate::model::{ArtifactSpec, Check, Severity};
use crate::registry::{Anonymous, ImageName};
use std::collections::BTreeMap;

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

/// An artifact read from a layout `source`: the nodes pull it from `image`'s registry, which
/// perses-oci does not ask (it may be out of reach), so the plan says what must be there.
pub(super) fn copy_check(ctx: &EnvContext, spec: &ArtifactSpec, source: &str) -> Check {
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
pub(super) async fn pull_checks(ctx: &EnvContext, written: &[String]) -> Vec<Check> {
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
pub(super) async fn dry_run_checks(ctx: &EnvContext, has_changes: bool) -> Vec<Check> {
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
