//! What the next `helm upgrade` does to the fields perses-oci writes, when the workload is a
//! Helm release whose chart renders the same volume (`ociArtifacts`): pure rules over what
//! `observe` read (the release's annotations, Helm's managedFields entry, each volume's
//! owners). See docs/helm.md, and tests/bed/helm.rs for what real helm does.

use crate::model::{Action, Change, Check, HelmRelease, HelmWrites, Observed, Severity};

/// One warning per change to a volume that Helm also writes, saying what Helm will do and
/// what to do about it; and one for a Helm release whose volume perses-oci adds beside the
/// chart's (safe from reverts, but `helm upgrade --force` replaces the whole object).
pub fn helm_checks(observed: &Observed, changes: &[Change], workload: &str) -> Vec<Check> {
    let Some(release) = &observed.helm else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for change in changes {
        let live = observed
            .artifacts
            .iter()
            .find(|a| a.name == change.artifact);
        let chart_renders = live.is_some_and(|l| l.owners.contains(&release.manager));
        if chart_renders {
            out.push(Check {
                severity: Severity::Warning,
                code: if change.action == Action::Adopt {
                    "helm_shared"
                } else {
                    code(release.writes)
                }
                .into(),
                message: format!(
                    "artifact {:?}: {workload} is Helm release {:?} (namespace {}), whose chart renders this volume{}: {} See docs/helm.md for the handover.",
                    change.artifact,
                    release.name,
                    release.namespace,
                    how(release),
                    consequence(release, change.action)
                ),
            });
        } else if change.action == Action::Add {
            out.push(Check {
                severity: Severity::Warning,
                code: "helm_release".into(),
                message: format!(
                    "artifact {:?}: {workload} is Helm release {:?} (namespace {}); its chart does not render this volume, so `helm upgrade` keeps it, but `helm upgrade --force` replaces the whole object and drops it.",
                    change.artifact, release.name, release.namespace
                ),
            });
        }
    }
    out
}

fn code(writes: HelmWrites) -> &'static str {
    match writes {
        HelmWrites::ThreeWayMerge | HelmWrites::ForcedApply => "helm_upgrade_reverts",
        HelmWrites::ServerSideApply => "helm_upgrade_conflicts",
        HelmWrites::Unknown => "helm_release",
    }
}

fn how(release: &HelmRelease) -> &'static str {
    match release.writes {
        HelmWrites::ThreeWayMerge => {
            " and which Helm writes with a three-way merge (Helm 3, or Helm 4 on a release Helm 3 installed)"
        }
        HelmWrites::ServerSideApply => " and which Helm 4 writes with server-side apply",
        HelmWrites::ForcedApply => " and which Flux's helm-controller writes, forcing conflicts",
        HelmWrites::Unknown => "",
    }
}

fn consequence(release: &HelmRelease, action: Action) -> String {
    let removed = action == Action::Remove;
    if action == Action::Adopt {
        return adopt_consequence(release);
    }
    match release.writes {
        HelmWrites::ThreeWayMerge if removed => "the next `helm upgrade` renders the volume again while the values keep `ociArtifacts`.".into(),
        HelmWrites::ThreeWayMerge => "the next `helm upgrade`, whatever it changes, silently puts the chart's value back (the old reference), and one whose values drop `ociArtifacts` deletes the volume and its mount.".into(),
        HelmWrites::ServerSideApply => format!(
            "after this apply every `helm upgrade` that still renders the volume fails with a conflict naming {:?} (with `--force-conflicts` it puts the chart's value back), until the values drop `ociArtifacts`.",
            crate::model::FIELD_MANAGER
        ),
        HelmWrites::ForcedApply => "the next reconcile of the HelmRelease puts the chart's value back; set the value in the HelmRelease, or drop `ociArtifacts` from its values and let perses-oci own the volume.".into(),
        HelmWrites::Unknown => "whichever writes the chart next sets its own value back.".into(),
    }
}

/// An adopt writes the chart's own values: nothing reverts or conflicts now; what matters is
/// what it makes of the handover's next step, dropping `ociArtifacts` from the values.
fn adopt_consequence(release: &HelmRelease) -> String {
    match release.writes {
        HelmWrites::ThreeWayMerge => "this apply writes the values the chart renders, so `helm upgrade` and perses-oci agree while the values keep `ociArtifacts`; but a three-way merge deletes what the old manifest had and the new one lacks, whoever owns it: an upgrade whose values drop `ociArtifacts` still deletes the volume and its mount. Hand over under a volume name and mount path the chart never rendered instead.".into(),
        HelmWrites::ServerSideApply => "this apply writes the values the chart renders, so perses-oci owns them beside Helm: a `helm upgrade` whose values drop `ociArtifacts` then leaves the volume and its mount to perses-oci (the handover's second step); while the values keep `ociArtifacts`, moving the tag here makes every `helm upgrade` conflict.".into(),
        HelmWrites::ForcedApply => "this apply writes the values the HelmRelease renders; helm-controller keeps them while they agree, and puts its own back at the next reconcile once they differ: drop `ociArtifacts` from the HelmRelease's values before moving the tag here.".into(),
        HelmWrites::Unknown => "this apply writes the values the chart renders; whichever writes the chart next keeps them while they agree.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ArtifactState, LiveArtifact, Reason};

    fn observed(helm: Option<(&str, HelmWrites)>, owners: &[&str]) -> Observed {
        Observed {
            resource_version: "1".into(),
            generation: 1,
            server_version: (1, 35),
            artifacts: vec![LiveArtifact {
                name: "perses-resources".into(),
                state: ArtifactState {
                    reference: "reg/perses:v1".into(),
                    pull_policy: None,
                    mount_path: Some("/etc/perses/provisioning".into()),
                    sub_path: None,
                },
                owners: owners.iter().map(|o| o.to_string()).collect(),
                applied_by_us: false,
                last_write: None,
            }],
            mounts: vec![],
            provisioning_folders: None,
            history: vec![],
            pull: Default::default(),
            helm: helm.map(|(manager, writes)| HelmRelease {
                name: "perses".into(),
                namespace: "monitoring".into(),
                manager: manager.into(),
                writes,
            }),
        }
    }

    fn change(name: &str, action: Action) -> Change {
        Change {
            action,
            reasons: vec![Reason::NotPresent],
            artifact: name.into(),
            before: None,
            after: None,
            conflicts_with: vec![],
            content: None,
        }
    }

    const W: &str = "statefulset/perses";

    #[test]
    fn helm_3_reverts_on_the_next_upgrade() {
        let c = helm_checks(
            &observed(Some(("helm", HelmWrites::ThreeWayMerge)), &["helm"]),
            &[change("perses-resources", Action::Update)],
            W,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].code, "helm_upgrade_reverts");
        assert_eq!(
            c[0].message,
            "artifact \"perses-resources\": statefulset/perses is Helm release \"perses\" (namespace monitoring), whose chart renders this volume and which Helm writes with a three-way merge (Helm 3, or Helm 4 on a release Helm 3 installed): the next `helm upgrade`, whatever it changes, silently puts the chart's value back (the old reference), and one whose values drop `ociArtifacts` deletes the volume and its mount. See docs/helm.md for the handover."
        );
    }

    #[test]
    fn helm_4_conflicts_and_flux_forces() {
        let c = helm_checks(
            &observed(Some(("helm", HelmWrites::ServerSideApply)), &["helm"]),
            &[change("perses-resources", Action::Update)],
            W,
        );
        assert_eq!(c[0].code, "helm_upgrade_conflicts");
        assert!(
            c[0].message
                .contains("fails with a conflict naming \"perses-oci\""),
            "{}",
            c[0].message
        );
        let c = helm_checks(
            &observed(
                Some(("helm-controller", HelmWrites::ForcedApply)),
                &["helm-controller"],
            ),
            &[change("perses-resources", Action::Update)],
            W,
        );
        assert_eq!(c[0].code, "helm_upgrade_reverts");
        assert!(
            c[0].message.contains("next reconcile of the HelmRelease"),
            "{}",
            c[0].message
        );
    }

    #[test]
    fn an_adopt_says_what_dropping_oci_artifacts_does_next() {
        let c = helm_checks(
            &observed(Some(("helm", HelmWrites::ServerSideApply)), &["helm"]),
            &[change("perses-resources", Action::Adopt)],
            W,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].code, "helm_shared");
        assert!(
            c[0].message
                .contains("leaves the volume and its mount to perses-oci"),
            "{}",
            c[0].message
        );
        let c = helm_checks(
            &observed(Some(("helm", HelmWrites::ThreeWayMerge)), &["helm"]),
            &[change("perses-resources", Action::Adopt)],
            W,
        );
        assert_eq!(c[0].code, "helm_shared");
        assert!(
            c[0].message
                .contains("still deletes the volume and its mount")
                && c[0].message.contains("never rendered"),
            "{}",
            c[0].message
        );
    }

    #[test]
    fn a_volume_the_chart_does_not_render_is_kept_but_force_drops_it() {
        let c = helm_checks(
            &observed(Some(("helm", HelmWrites::ThreeWayMerge)), &["helm"]),
            &[change("other", Action::Add)],
            W,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].code, "helm_release");
        assert!(c[0].message.contains("--force"), "{}", c[0].message);
    }

    #[test]
    fn nothing_without_a_release_or_a_change() {
        let no_helm = observed(None, &["helm"]);
        assert!(helm_checks(&no_helm, &[change("perses-resources", Action::Update)], W).is_empty());
        let helm = observed(Some(("helm", HelmWrites::ThreeWayMerge)), &["helm"]);
        assert!(helm_checks(&helm, &[], W).is_empty());
        // perses-oci owns it alone now (a finished handover): no warning.
        let ours = observed(Some(("helm", HelmWrites::ThreeWayMerge)), &["perses-oci"]);
        assert!(helm_checks(&ours, &[change("perses-resources", Action::Update)], W).is_empty());
    }
}
