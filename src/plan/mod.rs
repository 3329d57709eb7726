//! The pure diff: desired state + observed state + resolved digests -> changes and checks.
//! No async, no I/O; every rule about what is a change, and why, lives here.

pub mod drift;
pub mod helm;
pub mod pull;

use crate::cluster::observe::path_contains;
use crate::model::{
    Action, ArtifactSpec, ArtifactState, Change, Check, Desired, FIELD_MANAGER, LiveArtifact,
    Observed, Pin, PullPolicy, Reason, Resolved, Severity,
};

/// `repo[:tag][@digest]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRef {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub fn parse_ref(r: &str) -> ParsedRef {
    let (rest, digest) = match r.split_once('@') {
        Some((a, d)) => (a, Some(d.to_string())),
        None => (r, None),
    };
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[slash..].rfind(':') {
        Some(i) => ParsedRef {
            repository: rest[..slash + i].to_string(),
            tag: Some(rest[slash + i + 1..].to_string()),
            digest,
        },
        None => ParsedRef {
            repository: rest.to_string(),
            tag: None,
            digest,
        },
    }
}

/// The reference written into the workload for an artifact.
pub fn desired_reference(spec: &ArtifactSpec, digest: Option<&str>) -> String {
    match (spec.pin, digest) {
        (Pin::Digest, Some(d)) => format!("{}:{}@{}", spec.image, spec.tag, d),
        _ => spec.tag_reference(),
    }
}

/// The managed fields as the environment file asks for them.
pub fn desired_state(spec: &ArtifactSpec, digest: Option<&str>) -> ArtifactState {
    ArtifactState {
        reference: desired_reference(spec, digest),
        pull_policy: spec.pull_policy.map(|p| p.as_str().to_string()),
        mount_path: Some(spec.mount_path.clone()),
        sub_path: spec.sub_path.clone(),
    }
}

/// The pull policy a node uses when none is written: Always for `:latest`, else IfNotPresent.
pub fn effective_policy(policy: Option<&str>, reference: &str) -> String {
    match policy {
        Some(p) => p.to_string(),
        None if parse_ref(reference).tag.as_deref() == Some("latest") => {
            PullPolicy::Always.as_str().into()
        }
        None => PullPolicy::IfNotPresent.as_str().into(),
    }
}

/// Why `live` differs from `want`; empty when it does not.
fn reasons(
    spec: &ArtifactSpec,
    want: &ArtifactState,
    live: &LiveArtifact,
    digest: Option<&str>,
) -> Vec<Reason> {
    let mut out = Vec::new();
    let l = parse_ref(&live.state.reference);
    if l.repository != spec.image || l.tag.as_deref() != Some(spec.tag.as_str()) {
        let from = if l.repository != spec.image {
            format!("{}:{}", l.repository, l.tag.as_deref().unwrap_or(""))
        } else {
            l.tag.clone().unwrap_or_default()
        };
        let to = if l.repository != spec.image {
            spec.tag_reference()
        } else {
            spec.tag.clone()
        };
        out.push(Reason::TagChanged { from, to });
    } else {
        match (&l.digest, digest, spec.pin) {
            (Some(ld), Some(d), _) if ld != d => out.push(Reason::TagMoved {
                from: ld.clone(),
                to: d.to_string(),
            }),
            (None, Some(_), Pin::Digest) => out.push(Reason::PinChanged { to: Pin::Digest }),
            (Some(_), _, Pin::Tag) => out.push(Reason::PinChanged { to: Pin::Tag }),
            _ => {}
        }
    }
    if effective_policy(live.state.pull_policy.as_deref(), &live.state.reference)
        != effective_policy(want.pull_policy.as_deref(), &want.reference)
    {
        out.push(Reason::PullPolicyChanged);
    }
    if live.state.mount_path != want.mount_path || live.state.sub_path != want.sub_path {
        out.push(Reason::MountMoved);
    }
    if let Some(w) = &live.last_write
        && !out.is_empty()
        && live.applied_by_us
        && w.manager != FIELD_MANAGER
    {
        out.push(Reason::ChangedOutside {
            manager: w.manager.clone(),
        });
    }
    out
}

/// Computes the changes and checks of one environment.
pub fn diff(
    desired: &Desired,
    observed: &Observed,
    resolved: &[Resolved],
) -> (Vec<Change>, Vec<Check>) {
    let mut changes = Vec::new();
    let mut checks = Vec::new();
    let digest_of = |name: &str| {
        resolved
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.digest.as_str())
    };
    for spec in &desired.artifacts {
        let digest = digest_of(&spec.name);
        let want = desired_state(spec, digest);
        match observed.artifacts.iter().find(|a| a.name == spec.name) {
            None => changes.push(Change {
                action: Action::Add,
                reasons: vec![Reason::NotPresent],
                artifact: spec.name.clone(),
                before: None,
                after: Some(want),
                conflicts_with: vec![],
                content: None,
            }),
            Some(live) => {
                let why = reasons(spec, &want, live, digest);
                if why.is_empty() && !live.owned_by_us() && !live.owners.is_empty() {
                    // Equal values applied by another manager are shared, never a conflict.
                    changes.push(Change {
                        action: Action::Adopt,
                        reasons: vec![Reason::NotOwned {
                            owners: live.other_owners(),
                        }],
                        artifact: spec.name.clone(),
                        before: Some(live.state.clone()),
                        after: Some(want),
                        conflicts_with: vec![],
                        content: None,
                    });
                } else if !why.is_empty() {
                    changes.push(Change {
                        action: Action::Update,
                        reasons: why,
                        artifact: spec.name.clone(),
                        before: Some(live.state.clone()),
                        after: Some(want),
                        conflicts_with: live.other_owners(),
                        content: None,
                    });
                }
            }
        }
        checks.extend(artifact_checks(spec, observed));
    }
    for live in &observed.artifacts {
        if live.applied_by_us && !desired.artifacts.iter().any(|a| a.name == live.name) {
            changes.push(Change {
                action: Action::Remove,
                reasons: vec![Reason::RemovedFromConfig],
                artifact: live.name.clone(),
                before: Some(live.state.clone()),
                after: None,
                conflicts_with: live.other_owners(),
                content: None,
            });
        }
    }
    checks.extend(server_checks(desired, observed));
    checks.extend(helm::helm_checks(
        observed,
        &changes,
        &desired.target.workload.to_string(),
    ));
    (changes, checks)
}

fn error(code: &str, message: String) -> Check {
    Check {
        severity: Severity::Error,
        code: code.into(),
        message,
    }
}

fn warning(code: &str, message: String) -> Check {
    Check {
        severity: Severity::Warning,
        code: code.into(),
        message,
    }
}

fn server_checks(desired: &Desired, observed: &Observed) -> Vec<Check> {
    let (major, minor) = observed.server_version;
    let v = format!("{major}.{minor}");
    let mut out = Vec::new();
    if (major, minor) == (0, 0) {
        // Unknown: a manifest-file target has no API server to ask.
        return out;
    }
    if (major, minor) < (1, 31) {
        out.push(error(
            "server_version",
            format!("the API server is Kubernetes {v}; image volumes need 1.31 or later"),
        ));
    } else if (major, minor) < (1, 33) && desired.artifacts.iter().any(|a| a.sub_path.is_some()) {
        out.push(error(
            "sub_path_version",
            format!(
                "the API server is Kubernetes {v}; subPath on an image volume mount needs 1.33 or later"
            ),
        ));
    }
    if (major, minor) >= (1, 31) && (major, minor) < (1, 35) {
        out.push(warning(
            "image_volume_gate",
            format!("Kubernetes {v} has the ImageVolume feature gate off by default; without it the API server silently drops image volumes"),
        ));
    }
    out
}

fn artifact_checks(spec: &ArtifactSpec, observed: &Observed) -> Vec<Check> {
    let mut out = Vec::new();
    match &observed.provisioning_folders {
        None => out.push(warning(
            "provisioning_folder",
            format!(
                "artifact {:?}: the Perses config could not be read, so it is not known whether Perses provisions {}",
                spec.name, spec.mount_path
            ),
        )),
        Some(folders) if !folders.iter().any(|f| path_contains(f, &spec.mount_path)) => out.push(error(
            "provisioning_folder",
            format!(
                "artifact {:?}: mount_path {} is not inside any provisioning folder of the Perses config ({}); Perses would never read it",
                spec.name,
                spec.mount_path,
                if folders.is_empty() { "none configured".to_string() } else { folders.join(", ") }
            ),
        )),
        Some(_) => {}
    }
    for m in &observed.mounts {
        if m.mount_path == spec.mount_path && m.volume != spec.name {
            out.push(error(
                "mount_path_taken",
                format!(
                    "artifact {:?}: volume {:?} is already mounted at {} in the container",
                    spec.name, m.volume, spec.mount_path
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn spec() -> ArtifactSpec {
        ArtifactSpec {
            name: "perses-resources".into(),
            image: "reg.example/perses".into(),
            tag: "v1.2.0".into(),
            pull_policy: Some(PullPolicy::IfNotPresent),
            mount_path: "/etc/perses/provisioning".into(),
            sub_path: Some("prod".into()),
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

    fn observed(arts: Vec<LiveArtifact>) -> Observed {
        Observed {
            resource_version: "1".into(),
            generation: 1,
            server_version: (1, 35),
            mounts: arts
                .iter()
                .filter_map(|a| {
                    Some(LiveMount {
                        volume: a.name.clone(),
                        mount_path: a.state.mount_path.clone()?,
                    })
                })
                .collect(),
            artifacts: arts,
            provisioning_folders: Some(vec!["/etc/perses/provisioning".into()]),
            history: vec![],
            pull: Default::default(),
            helm: None,
        }
    }

    fn live(reference: &str, owners: &[&str], ours: bool) -> LiveArtifact {
        LiveArtifact {
            name: "perses-resources".into(),
            state: ArtifactState {
                reference: reference.into(),
                pull_policy: Some("IfNotPresent".into()),
                mount_path: Some("/etc/perses/provisioning".into()),
                sub_path: Some("prod".into()),
            },
            owners: owners.iter().map(|s| s.to_string()).collect(),
            applied_by_us: ours,
            last_write: owners.first().map(|m| LastWrite {
                manager: m.to_string(),
                operation: "Update".into(),
                time: None,
            }),
        }
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn resolved(d: &str) -> Vec<Resolved> {
        vec![Resolved {
            name: "perses-resources".into(),
            digest: d.into(),
        }]
    }

    #[test]
    fn parses_references() {
        assert_eq!(
            parse_ref("127.0.0.1:5000/a/b:v1@sha256:ab"),
            ParsedRef {
                repository: "127.0.0.1:5000/a/b".into(),
                tag: Some("v1".into()),
                digest: Some("sha256:ab".into())
            }
        );
        assert_eq!(parse_ref("127.0.0.1:5000/a/b").tag, None);
        assert_eq!(
            parse_ref("127.0.0.1:5000/a/b").repository,
            "127.0.0.1:5000/a/b"
        );
    }

    #[test]
    fn missing_artifact_is_added_pinned() {
        let (c, checks) = diff(&desired(vec![spec()]), &observed(vec![]), &resolved(D1));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].action, Action::Add);
        assert_eq!(c[0].reasons, vec![Reason::NotPresent]);
        assert_eq!(
            c[0].after.as_ref().unwrap().reference,
            format!("reg.example/perses:v1.2.0@{D1}")
        );
        assert!(checks.is_empty(), "{checks:?}");
    }

    #[test]
    fn helm_owned_older_tag_is_an_update_with_conflict() {
        let l = live("reg.example/perses:v1.1.0", &["helm"], false);
        let (c, _) = diff(&desired(vec![spec()]), &observed(vec![l]), &resolved(D1));
        assert_eq!(c[0].action, Action::Update);
        assert_eq!(
            c[0].reasons,
            vec![Reason::TagChanged {
                from: "v1.1.0".into(),
                to: "v1.2.0".into()
            }]
        );
        assert_eq!(c[0].conflicts_with, vec!["helm".to_string()]);
    }

    #[test]
    fn moved_tag_is_detected_by_digest() {
        let l = live(
            &format!("reg.example/perses:v1.2.0@{D1}"),
            &["perses-oci"],
            true,
        );
        let (c, _) = diff(&desired(vec![spec()]), &observed(vec![l]), &resolved(D2));
        assert_eq!(
            c[0].reasons,
            vec![Reason::TagMoved {
                from: D1.into(),
                to: D2.into()
            }]
        );
        assert!(c[0].conflicts_with.is_empty());
    }

    #[test]
    fn in_sync_is_no_change() {
        let l = live(
            &format!("reg.example/perses:v1.2.0@{D1}"),
            &["perses-oci"],
            true,
        );
        let (c, _) = diff(&desired(vec![spec()]), &observed(vec![l]), &resolved(D1));
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn equal_values_owned_by_another_manager_are_adopted_without_conflict() {
        let l = live(&format!("reg.example/perses:v1.2.0@{D1}"), &["helm"], false);
        let (c, _) = diff(
            &desired(vec![spec()]),
            &observed(vec![l.clone()]),
            &resolved(D1),
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].action, Action::Adopt);
        assert_eq!(
            c[0].reasons,
            vec![Reason::NotOwned {
                owners: vec!["helm".into()]
            }]
        );
        assert_eq!(c[0].before, Some(l.state));
        assert!(c[0].conflicts_with.is_empty());
        // Shared with perses-oci already: nothing to write.
        let shared = live(
            &format!("reg.example/perses:v1.2.0@{D1}"),
            &["helm", "perses-oci"],
            true,
        );
        let (c, _) = diff(
            &desired(vec![spec()]),
            &observed(vec![shared]),
            &resolved(D1),
        );
        assert!(c.is_empty(), "{c:?}");
        // No owner recorded (a manifest file): nothing to adopt.
        let unowned = live(&format!("reg.example/perses:v1.2.0@{D1}"), &[], false);
        let (c, _) = diff(
            &desired(vec![spec()]),
            &observed(vec![unowned]),
            &resolved(D1),
        );
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn unset_pull_policy_matches_the_server_default() {
        let mut s = spec();
        s.pull_policy = None;
        let mut l = live(
            &format!("reg.example/perses:v1.2.0@{D1}"),
            &["perses-oci"],
            true,
        );
        l.state.pull_policy = Some("IfNotPresent".into());
        let (c, _) = diff(&desired(vec![s]), &observed(vec![l]), &resolved(D1));
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn edit_by_another_manager_is_named() {
        let l = live("reg.example/perses:v0.9.0", &["kubectl-edit"], true);
        let (c, _) = diff(&desired(vec![spec()]), &observed(vec![l]), &resolved(D1));
        assert!(
            c[0].reasons.contains(&Reason::ChangedOutside {
                manager: "kubectl-edit".into()
            }),
            "{:?}",
            c[0].reasons
        );
    }

    #[test]
    fn dropped_artifact_applied_by_us_is_removed_and_foreign_ones_are_left() {
        let ours = live("reg.example/perses:v1", &["perses-oci"], true);
        let mut foreign = live("reg.example/other:v1", &["helm"], false);
        foreign.name = "other".into();
        let (c, _) = diff(&desired(vec![]), &observed(vec![ours, foreign]), &[]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].action, Action::Remove);
        assert_eq!(c[0].artifact, "perses-resources");
    }

    #[test]
    fn checks_provisioning_folder_boundary_and_mount_clash_and_version() {
        let mut o = observed(vec![]);
        o.provisioning_folders = Some(vec!["/etc/perses/prov".into()]);
        o.mounts.push(LiveMount {
            volume: "provisioning".into(),
            mount_path: "/etc/perses/provisioning".into(),
        });
        o.server_version = (1, 32);
        let (_, checks) = diff(&desired(vec![spec()]), &o, &resolved(D1));
        let codes: Vec<&str> = checks.iter().map(|c| c.code.as_str()).collect();
        assert!(codes.contains(&"provisioning_folder"), "{codes:?}");
        assert!(codes.contains(&"mount_path_taken"), "{codes:?}");
        assert!(codes.contains(&"sub_path_version"), "{codes:?}");
        assert!(
            checks
                .iter()
                .all(|c| c.severity == Severity::Error || c.code == "image_volume_gate")
        );
    }
}
