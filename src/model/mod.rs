//! The plain data model: what an environment asks for (Desired), what the cluster and registry
//! hold (Observed), and what would change (Plan). No I/O and no computation beyond accessors:
//! `crate::plan` computes plans, `crate::render` draws them.

pub mod drift;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The field manager perses-oci writes with, and looks for in `managedFields`.
pub const FIELD_MANAGER: &str = "perses-oci";

/// The kind of workload an environment targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    StatefulSet,
    Deployment,
}

impl WorkloadKind {
    pub fn api_kind(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Deployment => "Deployment",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::Deployment => "deployment",
        }
    }
}

/// `statefulset/NAME` or `deployment/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// Where an environment's artifacts are mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Kubeconfig context; `None` means the current context.
    pub context: Option<String>,
    pub namespace: String,
    pub workload: WorkloadRef,
    pub container: String,
    /// A manifest file holding the workload (GitOps), instead of a cluster: plan reads it and
    /// apply rewrites its managed lines. Relative to the project directory when loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.manifest {
            return write!(
                f,
                "{} {} container {}",
                m.display(),
                self.workload,
                self.container
            );
        }
        let ctx = self.context.as_deref().unwrap_or("(current context)");
        write!(
            f,
            "{ctx} {}/{} container {}",
            self.namespace, self.workload, self.container
        )
    }
}

/// Image volume pull policy, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub const ALL: [PullPolicy; 3] = [
        PullPolicy::Always,
        PullPolicy::IfNotPresent,
        PullPolicy::Never,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
    pub fn parse(s: &str) -> Option<PullPolicy> {
        PullPolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the image reference is written into the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// `repo:tag@sha256:...`: what a node mounts cannot change under a moved tag.
    #[default]
    Digest,
    /// `repo:tag`.
    Tag,
}

/// One artifact as the environment file asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactSpec {
    /// The volume name (DNS-1123 label).
    pub name: String,
    /// Repository, without tag.
    pub image: String,
    pub tag: String,
    pub pull_policy: Option<PullPolicy>,
    pub mount_path: String,
    pub sub_path: Option<String>,
    pub pin: Pin,
    /// Where perses-oci reads the artifact when it is not `image` itself: an OCI layout
    /// (`oci:PATH`, relative to the project directory) holding what the nodes will pull from
    /// `image`'s registry once it is copied there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ArtifactSpec {
    /// `image:tag`.
    pub fn tag_reference(&self) -> String {
        format!("{}:{}", self.image, self.tag)
    }
}

/// Registry settings of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RegistrySettings {
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure: Vec<String>,
    /// An extra CA bundle (absolute, resolved against the project directory).
    pub ca_file: Option<PathBuf>,
}

/// One environment file, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The environment's name: the file name without `.toml`.
    pub env: String,
    pub file: PathBuf,
    /// sha256 of the file's bytes, recorded in plan files.
    pub file_sha256: String,
    pub target: Target,
    pub artifacts: Vec<ArtifactSpec>,
    pub registry: RegistrySettings,
}

impl Desired {
    /// The project directory: environment files live in `DIR/environments/NAME.toml`.
    pub fn project_dir(&self) -> PathBuf {
        self.file
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// The managed fields of one image volume and its mount: exactly what perses-oci compares and
/// writes. Everything else of the workload is out of scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactState {
    pub reference: String,
    pub pull_policy: Option<String>,
    /// `None` when the volume exists but the container does not mount it.
    pub mount_path: Option<String>,
    pub sub_path: Option<String>,
}

/// An image volume found in the live workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveArtifact {
    pub name: String,
    pub state: ArtifactState,
    /// Field managers that own the managed values (image reference and pull policy, the
    /// mount's subPath), from managedFields.
    pub owners: Vec<String>,
    /// perses-oci's own managedFields entry lists this volume: perses-oci applied it before.
    pub applied_by_us: bool,
    /// When the managed values were last written, and by whom (the newest owner entry).
    pub last_write: Option<LastWrite>,
}

/// The newest managedFields entry among a volume's owners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastWrite {
    pub manager: String,
    pub operation: String,
    pub time: Option<String>,
}

impl LiveArtifact {
    pub fn owned_by_us(&self) -> bool {
        self.owners.iter().any(|o| o == FIELD_MANAGER)
    }
    /// The managers other than perses-oci that own part of it.
    pub fn other_owners(&self) -> Vec<String> {
        self.owners
            .iter()
            .filter(|o| *o != FIELD_MANAGER)
            .cloned()
            .collect()
    }
}

/// A volume mount of the target container (any volume, for clash checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMount {
    pub volume: String,
    pub mount_path: String,
}

/// What the cluster holds for one environment's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub resource_version: String,
    pub generation: i64,
    /// `major.minor` of the API server, e.g. (1, 35).
    pub server_version: (u32, u32),
    /// Image volumes of the pod template, mounted by the target container or not.
    pub artifacts: Vec<LiveArtifact>,
    /// All volume mounts of the target container.
    pub mounts: Vec<LiveMount>,
    /// Provisioning folders of the Perses config (`None`: could not be read).
    pub provisioning_folders: Option<Vec<String>>,
    /// What perses-oci applied before, newest last (from the workload's annotation).
    pub history: Vec<Revision>,
    /// What the kubelet pulls the pod's images with.
    #[serde(default)]
    pub pull: PullIdentity,
    /// The Helm release the workload belongs to, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmRelease>,
}

/// A workload that Helm installed (its `meta.helm.sh/*` annotations), and how Helm writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmRelease {
    pub name: String,
    pub namespace: String,
    /// The field manager Helm writes with: `helm`, or Flux's `helm-controller`.
    pub manager: String,
    pub writes: HelmWrites,
}

/// How the next `helm upgrade` writes the workload, from Helm's managedFields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelmWrites {
    /// An `Update` entry: Helm 3, or Helm 4 on a release Helm 3 installed (`--server-side=auto`
    /// stays client-side): a three-way merge that sets back what the chart renders.
    ThreeWayMerge,
    /// An `Apply` entry: Helm 4's server-side apply, which refuses to take a field another
    /// manager owns (`--force-conflicts` takes it).
    ServerSideApply,
    /// Flux's helm-controller: server-side apply that always forces conflicts.
    ForcedApply,
    /// No managedFields entry of Helm's (a manifest file rendered by Helm, say).
    Unknown,
}

/// What a kubelet pulls a pod's images (and image volumes) with: the pod template's
/// `imagePullSecrets`, and those of its service account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullIdentity {
    /// `spec.template.spec.imagePullSecrets[].name`.
    pub secrets: Vec<String>,
    /// `spec.template.spec.serviceAccountName` (`default` when unset).
    pub service_account: String,
}

/// The annotation on the workload's metadata that holds the applied revisions.
pub const HISTORY_ANNOTATION: &str = "perses-oci.dev/history";
/// How many revisions the history keeps.
pub const HISTORY_LIMIT: usize = 10;

/// One apply, as recorded in the workload's history annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// 1, 2, 3...: grows by one per apply.
    pub revision: u64,
    /// RFC 3339.
    pub time: String,
    pub by: String,
    pub artifacts: Vec<RevisionArtifact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionArtifact {
    pub name: String,
    pub image: String,
    pub tag: String,
    pub digest: Option<String>,
    /// The reference as written.
    pub reference: String,
}

/// The tag of one artifact resolved in its registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub name: String,
    pub digest: String,
}

/// What happens to one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Update,
    Remove,
    /// The values already match; perses-oci writes them to own them (server-side apply
    /// records it as a field owner), so that no other writer's removal can take them away.
    /// The pod template does not change: no rollout.
    Adopt,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Add => '+',
            Action::Update => '~',
            Action::Remove => '-',
            Action::Adopt => '=',
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Update => "update",
            Action::Remove => "remove",
            Action::Adopt => "adopt",
        }
    }
}

/// Why a change happens. Closed: every change has at least one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The workload has no such volume yet.
    NotPresent,
    /// The repository or the tag differs.
    TagChanged {
        from: String,
        to: String,
    },
    /// Same tag, but the registry now resolves it to another digest.
    TagMoved {
        from: String,
        to: String,
    },
    /// Same tag and content, written as `repo:tag` instead of `repo:tag@digest` or back.
    PinChanged {
        to: Pin,
    },
    PullPolicyChanged,
    MountMoved,
    /// The managed fields were last written by another field manager.
    ChangedOutside {
        manager: String,
    },
    /// perses-oci applied it earlier and the environment file no longer has it.
    RemovedFromConfig,
    /// The values match the environment file, but only other field managers own them.
    NotOwned {
        owners: Vec<String>,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotPresent => f.write_str("not in the workload yet"),
            Reason::TagChanged { from, to } => write!(f, "tag changed ({from} -> {to})"),
            Reason::TagMoved { from, to } => {
                write!(
                    f,
                    "tag moved in the registry ({} -> {})",
                    short(from),
                    short(to)
                )
            }
            Reason::PinChanged { to: Pin::Digest } => {
                f.write_str("pin the digest (pin = \"digest\")")
            }
            Reason::PinChanged { to: Pin::Tag } => {
                f.write_str("drop the digest pin (pin = \"tag\")")
            }
            Reason::PullPolicyChanged => f.write_str("pull policy changed"),
            Reason::MountMoved => f.write_str("mount moved"),
            Reason::ChangedOutside { manager } => {
                write!(
                    f,
                    "changed outside perses-oci (by field manager {manager:?})"
                )
            }
            Reason::RemovedFromConfig => f.write_str("no longer in the environment file"),
            Reason::NotOwned { owners } => {
                let owners: Vec<String> = owners.iter().map(|o| format!("{o:?}")).collect();
                write!(
                    f,
                    "the values match, but only field manager{} {} own{} them; perses-oci takes a share, the pod template does not change",
                    if owners.len() == 1 { "" } else { "s" },
                    owners.join(", "),
                    if owners.len() == 1 { "s" } else { "" }
                )
            }
        }
    }
}

/// `sha256:0123456789ab` from a full digest, for display.
pub fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => digest.to_string(),
    }
}

/// One change to one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub reasons: Vec<Reason>,
    /// The artifact (volume) name.
    pub artifact: String,
    pub before: Option<ArtifactState>,
    pub after: Option<ArtifactState>,
    /// Managers other than perses-oci that own the fields this change writes: apply needs
    /// `--force-conflicts` to take them over.
    pub conflicts_with: Vec<String>,
    /// Which Perses resources change inside the artifact (as mounted, `sub_path` applied);
    /// `None` when it could not be read or the artifact's content does not change.
    #[serde(default)]
    pub content: Option<ContentDiff>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A check that is not a change: something that would make the result not work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub severity: Severity,
    /// A stable identifier, e.g. `provisioning_folder`.
    pub code: String,
    pub message: String,
}

/// Why an environment could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvError {
    pub message: String,
}

/// The plan of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvPlan {
    pub env: String,
    pub target: Target,
    pub changes: Vec<Change>,
    pub checks: Vec<Check>,
    /// Set when the environment could not be planned; changes are then empty.
    pub error: Option<EnvError>,
    /// What the plan was computed from, for saved plans.
    pub inputs: Option<PlanInputs>,
}

/// What apply compares before using a saved plan: if any of these moved, the plan is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInputs {
    pub file_sha256: String,
    pub resolved: Vec<Resolved>,
    /// The managed fields as they were live, per artifact name.
    pub live: Vec<LiveArtifact>,
    pub resource_version: String,
}

impl EnvPlan {
    pub fn has_errors(&self) -> bool {
        self.error.is_some() || self.checks.iter().any(|c| c.severity == Severity::Error)
    }
}

/// Counts, as the summary line shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
    pub adopt: usize,
}

impl Summary {
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Summary {
        let mut s = Summary::default();
        for c in changes {
            match c.action {
                Action::Add => s.add += 1,
                Action::Update => s.change += 1,
                Action::Remove => s.remove += 1,
                Action::Adopt => s.adopt += 1,
            }
        }
        s
    }
    pub fn is_empty(&self) -> bool {
        self.add + self.change + self.remove + self.adopt == 0
    }
}

/// The plan of every environment asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub envs: Vec<EnvPlan>,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        Summary::of(self.envs.iter().flat_map(|e| &e.changes))
    }
    pub fn has_errors(&self) -> bool {
        self.envs.iter().any(EnvPlan::has_errors)
    }
}

// ---- what changes inside an artifact (computed by `crate::artifact::diff`) ----

/// How one Perses resource differs between the live artifact and the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentChange {
    Added,
    Removed,
    Changed,
}

/// One resource that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub change: ContentChange,
    pub kind: String,
    pub project: Option<String>,
    pub name: String,
    /// The file it comes from (the new file, or the old one when removed).
    pub path: String,
    /// Unified diff of the normalised resource (`--- before` / `+++ after`); masked specs
    /// appear as `(masked)`. Empty for added and removed resources.
    pub diff: String,
    /// The format `diff` is drawn in: the new file's (YAML stays YAML for its reviewers).
    #[serde(default)]
    pub diff_format: DiffFormat,
}

/// How a resource is printed in a content diff: keys sorted, so that a reformat is no change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffFormat {
    #[default]
    Json,
    Yaml,
}

impl DiffFormat {
    /// The format of a file of Perses resources, by its extension as Perses reads it.
    pub fn of_path(path: &str) -> DiffFormat {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            DiffFormat::Yaml
        } else {
            DiffFormat::Json
        }
    }
}

impl ResourceChange {
    /// `Dashboard project/name`, or `GlobalDatasource name`.
    pub fn key(&self) -> String {
        match &self.project {
            Some(p) => format!("{} {}/{}", self.kind, p, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// The content difference of two artifacts (or two folders of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentDiff {
    pub changes: Vec<ResourceChange>,
    /// Resources that are the same in both.
    pub unchanged: usize,
}

impl ContentDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn count(&self, kind: ContentChange) -> usize {
        self.changes.iter().filter(|c| c.change == kind).count()
    }
    /// `2 added, 1 changed, 0 removed (40 unchanged)`.
    pub fn summary(&self) -> String {
        format!(
            "{} added, {} changed, {} removed ({} unchanged)",
            self.count(ContentChange::Added),
            self.count(ContentChange::Changed),
            self.count(ContentChange::Removed),
            self.unchanged
        )
    }
}
