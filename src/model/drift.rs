//! The drift report: per environment one class (docs/drift.md) and the findings behind it.
//! Types only; `crate::plan::drift` computes them, `crate::render::drift` draws them.

use super::{Action, LastWrite, Revision, Target};
use serde::Serialize;
use std::time::Duration;

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
    /// When that write was Helm's: the release, its revision, and the handover step missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmEdit>,
}

/// A cluster edit made by `helm upgrade` (or Flux's helm-controller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelmEdit {
    pub release: String,
    pub namespace: String,
    /// The release's newest revision (`None`: the secrets could not be listed).
    pub revision: Option<u32>,
    /// What the handover (docs/helm.md) would have avoided.
    pub missed: String,
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
