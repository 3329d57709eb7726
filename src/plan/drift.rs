//! Drift classes, by precedence (the first that applies wins; docs/drift.md):
//! error > missing > cluster_edited > tag_moved > pending > in_sync. Pure: the environment
//! file, the observed workload and the tags as resolved now in, `Findings` out; the same rules
//! as `plan` (one `effective_policy`, one `desired_state`), so drift and plan never disagree.

use super::{desired_state, effective_policy, parse_ref};
use crate::cluster::observe::field_writer;
use crate::model::drift::{Edit, Findings, MissingArtifact, MissingPart, PendingChange, TagMove};
use crate::model::{
    Action, Desired, FIELD_MANAGER, HelmWrites, LastWrite, LiveArtifact, Observed, Pin, Resolved,
    Revision, RevisionArtifact,
};

/// The handover step that a Helm write of perses-oci's fields shows was missed.
pub fn missed_step(writes: HelmWrites) -> &'static str {
    use HelmWrites::*;
    match writes {
        ThreeWayMerge | Unknown => {
            "the release's values still render `ociArtifacts`, so every `helm upgrade` sets the chart's reference back: drop it from the values in the same change that hands the volume to perses-oci"
        }
        ServerSideApply => {
            "`helm upgrade --force-conflicts` ran while the values render `ociArtifacts`: drop it from the values (Helm 4 then leaves the volume to perses-oci)"
        }
        ForcedApply => {
            "the HelmRelease's values still render `ociArtifacts` and helm-controller forces conflicts: drop it from the HelmRelease's values"
        }
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
        helm: None,
    }
}

/// Names, for each edit, the manager that owns the first changed field.
pub fn name_editors(edits: &mut [Edit], obj: &serde_json::Value, container: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::drift::*;
    use crate::model::*;
    use crate::ops::drift::{previous_last_success, write_metrics};
    use std::time::Duration;

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
            helm: None,
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
                helm: None,
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
            helm: None,
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
