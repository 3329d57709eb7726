//! Waiting for a rollout: small pure conditions over the workload's status and its pods (as
//! kube-runtime's `wait` does), and a poll loop that stops at a deadline, or as soon as a pod of
//! the new revision cannot start (the kubelet's reason and message say why).

use super::{Cluster, ClusterError};
use crate::model::{Target, WorkloadKind};
use crate::retry::{kube_transient, retry};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// Not yet, and why (for progress lines and the timeout message).
    Waiting(String),
    /// It cannot finish by itself (Deployment ProgressDeadlineExceeded, or a pod the kubelet
    /// cannot start), and why.
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Whether a workload has rolled out its current generation.
pub fn progress(kind: WorkloadKind, obj: &Value) -> Progress {
    let generation = int(&obj["metadata"]["generation"]);
    let status = &obj["status"];
    let observed = int(&status["observedGeneration"]);
    if observed < generation {
        return Progress::Waiting(format!(
            "the controller has not seen generation {generation} yet (observed {observed})"
        ));
    }
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = int(&status["updatedReplicas"]);
    match kind {
        WorkloadKind::StatefulSet => {
            let ready = int(&status["readyReplicas"]);
            let cur = status["currentRevision"].as_str().unwrap_or("");
            let upd = status["updateRevision"].as_str().unwrap_or("");
            if updated < replicas {
                Progress::Waiting(format!("{updated} of {replicas} pods updated"))
            } else if ready < replicas {
                Progress::Waiting(format!("{ready} of {replicas} pods ready"))
            } else if cur != upd {
                Progress::Waiting(format!(
                    "current revision {cur:?} is not the update revision {upd:?} yet"
                ))
            } else {
                Progress::Done
            }
        }
        WorkloadKind::Deployment => {
            if let Some(c) = status["conditions"].as_array().and_then(|cs| {
                cs.iter().find(|c| {
                    c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"
                })
            }) {
                return Progress::Failed(format!(
                    "progress deadline exceeded: {}",
                    c["message"].as_str().unwrap_or("")
                ));
            }
            let available = int(&status["availableReplicas"]);
            let total = int(&status["replicas"]);
            if updated < replicas {
                Progress::Waiting(format!("{updated} of {replicas} pods updated"))
            } else if total > updated {
                Progress::Waiting(format!("{} old pods still running", total - updated))
            } else if available < replicas {
                Progress::Waiting(format!("{available} of {replicas} pods available"))
            } else {
                Progress::Done
            }
        }
    }
}

/// A pod of the rollout that the kubelet (or the scheduler) cannot start, in its own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    pub pod: String,
    /// The container (or image volume's container) concerned; empty for a pod-level problem.
    pub container: String,
    /// The kubelet's reason: `ErrImagePull`, `ImagePullBackOff`, `CreateContainerError`, ...
    pub reason: String,
    /// The kubelet's message, verbatim.
    pub message: String,
}

/// Container waiting reasons that mean the kubelet tried and failed (not `ContainerCreating`
/// or `PodInitializing`, which are the normal way there).
const PROBLEM_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "ImageInspectError",
    "CreateContainerError",
    "CreateContainerConfigError",
    "RunContainerError",
    "CrashLoopBackOff",
    "PreStartHookError",
    "PostStartHookError",
];

/// Kubelet messages that no retry can change: the image or tag is not in the registry, the
/// registry refuses the pod's credentials, the image volume's `subPath` is not in the image.
const PERMANENT_MESSAGES: &[&str] = &[
    "not found",
    "manifest unknown",
    "unauthorized",
    "401 Unauthorized",
    "403 Forbidden",
    "denied",
    "ImageVolumeMountFailed",
    "no match for platform",
    "InvalidImageName",
];

/// How long a problem that might still clear (a registry hiccup, a slow mount) may last before
/// the wait gives up on it; well under any sensible `--timeout`.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

impl PodProblem {
    /// Whether waiting longer cannot help: the kubelet's words say the cause is not transient.
    pub fn permanent(&self) -> bool {
        self.reason == "InvalidImageName"
            || self.reason == "ErrImageNeverPull"
            || (self.reason != "Unschedulable"
                && PERMANENT_MESSAGES.iter().any(|m| self.message.contains(m)))
    }

    pub fn describe(&self) -> String {
        let container = if self.container.is_empty() {
            String::new()
        } else {
            format!(", container {}", self.container)
        };
        format!(
            "pod {}{container}: {}: {}",
            self.pod, self.reason, self.message
        )
    }
}

/// The pods of the rollout's new revision that cannot start. For a StatefulSet, the pods of
/// `status.updateRevision` (label `controller-revision-hash`); for a Deployment, every pod of
/// its selector (old pods run, so only the new ones show problems). Pods being deleted are left
/// out.
pub fn pod_problems(kind: WorkloadKind, workload: &Value, pods: &[Value]) -> Vec<PodProblem> {
    let revision = match kind {
        WorkloadKind::StatefulSet => workload["status"]["updateRevision"].as_str(),
        WorkloadKind::Deployment => None,
    };
    let mut out = Vec::new();
    for pod in pods {
        let meta = &pod["metadata"];
        if !meta["deletionTimestamp"].is_null() {
            continue;
        }
        if let Some(rev) = revision
            && meta["labels"]["controller-revision-hash"].as_str() != Some(rev)
        {
            continue;
        }
        let name = meta["name"].as_str().unwrap_or("?").to_string();
        let status = &pod["status"];
        for key in ["initContainerStatuses", "containerStatuses"] {
            for c in status[key].as_array().into_iter().flatten() {
                let waiting = &c["state"]["waiting"];
                let Some(reason) = waiting["reason"].as_str() else {
                    continue;
                };
                if PROBLEM_REASONS.contains(&reason) {
                    out.push(PodProblem {
                        pod: name.clone(),
                        container: c["name"].as_str().unwrap_or("").to_string(),
                        reason: reason.to_string(),
                        message: waiting["message"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
        }
        for cond in status["conditions"].as_array().into_iter().flatten() {
            if cond["type"] == "PodScheduled"
                && cond["status"] == "False"
                && cond["reason"] == "Unschedulable"
            {
                out.push(PodProblem {
                    pod: name.clone(),
                    container: String::new(),
                    reason: "Unschedulable".into(),
                    message: cond["message"].as_str().unwrap_or("").to_string(),
                });
            }
        }
    }
    out
}

/// StatefulSet pods that the controller will not replace by itself: of an older revision than
/// `updateRevision`, not ready, and failing to start (a rollout that failed before this one).
/// With the default `OrderedReady` policy and rolling updates, the controller waits for such a
/// pod to become ready before it updates it, which never happens: Kubernetes' documented
/// "forced rollback" is to delete it, and the controller then creates it at the new revision.
pub fn stuck_pods(kind: WorkloadKind, workload: &Value, pods: &[Value]) -> Vec<PodProblem> {
    if kind != WorkloadKind::StatefulSet {
        return Vec::new();
    }
    let spec = &workload["spec"];
    let policy = spec["podManagementPolicy"]
        .as_str()
        .unwrap_or("OrderedReady");
    let strategy = spec["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate");
    let Some(update) = workload["status"]["updateRevision"].as_str() else {
        return Vec::new();
    };
    if policy != "OrderedReady" || strategy != "RollingUpdate" {
        return Vec::new();
    }
    let old: Vec<Value> = pods
        .iter()
        .filter(|p| {
            let rev = p["metadata"]["labels"]["controller-revision-hash"].as_str();
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            rev.is_some() && rev != Some(update) && !ready
        })
        .cloned()
        .collect();
    // The problems of those pods, whatever their revision (pod_problems filters by revision).
    let any_revision = serde_json::json!({"status": {}});
    pod_problems(WorkloadKind::Deployment, &any_revision, &old)
        .into_iter()
        .filter(|p| p.reason != "Unschedulable")
        .collect()
}

/// The label selector of a workload (`spec.selector.matchLabels`) as a list-query string.
fn selector(workload: &Value) -> Option<String> {
    let labels = workload["spec"]["selector"]["matchLabels"].as_object()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
    )
}

impl Cluster {
    /// Deletes one pod (its controller creates it again).
    async fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!(
            "API server of context {}: delete pods {namespace}/{name}",
            self.context
        );
        let dp = DeleteParams::default();
        retry(what, kube_transient, || api.delete(name, &dp))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e, "delete", "pods", namespace, name))
    }

    /// The pods a workload's selector matches, as JSON. `Ok(None)` when the credentials may not
    /// list pods: the wait then goes on without pod diagnostics.
    async fn selected_pods(
        &self,
        target: &Target,
        workload: &Value,
    ) -> Result<Option<Vec<Value>>, ClusterError> {
        let Some(sel) = selector(workload) else {
            return Ok(Some(Vec::new()));
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &target.namespace);
        let what = format!(
            "API server of context {}: list pods in {}",
            self.context, target.namespace
        );
        let lp = ListParams::default().labels(&sel);
        match retry(what, kube_transient, || api.list(&lp)).await {
            Ok(list) => Ok(Some(
                list.items
                    .into_iter()
                    .filter_map(|p| serde_json::to_value(p).ok())
                    .collect(),
            )),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
            Err(e) => Err(self.error(e, "list", "pods", &target.namespace, &sel)),
        }
    }

    /// Polls until the workload has rolled out, calling `report` when the state changes. Ends
    /// early with `Failed` when a pod of the new revision cannot start and waiting cannot help
    /// (see `PodProblem::permanent`), or when such a problem lasted `STUCK_AFTER`. Returns the
    /// last state on timeout.
    pub async fn wait_rollout(
        &self,
        target: &Target,
        timeout: Duration,
        mut report: impl FnMut(&str),
    ) -> Result<Progress, ClusterError> {
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        let mut last = String::new();
        let mut first_seen: HashMap<(String, String, String), tokio::time::Instant> =
            HashMap::new();
        let mut pods_allowed = true;
        let mut replaced: Vec<String> = Vec::new();
        loop {
            let obj = self.get_workload(target).await?;
            let p = progress(target.workload.kind, &obj);
            let why = match p {
                Progress::Done | Progress::Failed(_) => return Ok(p),
                Progress::Waiting(why) => why,
            };
            let mut problems = Vec::new();
            // Until the controller has seen the new generation, `status.updateRevision` still
            // names the revision before the write, whose pods are not this rollout's.
            let seen =
                int(&obj["status"]["observedGeneration"]) >= int(&obj["metadata"]["generation"]);
            if pods_allowed && seen {
                match self.selected_pods(target, &obj).await? {
                    Some(pods) => {
                        problems = pod_problems(target.workload.kind, &obj, &pods);
                        for stuck in stuck_pods(target.workload.kind, &obj, &pods) {
                            if replaced.contains(&stuck.pod) {
                                continue;
                            }
                            replaced.push(stuck.pod.clone());
                            let how = match self.delete_pod(&target.namespace, &stuck.pod).await {
                                Ok(()) => "deleted it, so that the controller creates it at the new revision".to_string(),
                                Err(e) => format!(
                                    "could not delete it ({e}); delete it by hand: kubectl delete pod -n {} {}",
                                    target.namespace, stuck.pod
                                ),
                            };
                            report(&format!(
                                "pod {} is stuck at an earlier revision that never started ({}: {}); the StatefulSet controller does not replace such a pod by itself (Kubernetes' \"forced rollback\"): {how}",
                                stuck.pod, stuck.reason, stuck.message
                            ));
                        }
                    }
                    None => {
                        pods_allowed = false;
                        report(&format!(
                            "cannot list pods in {} (RBAC: verb \"list\" on pods), so the wait \
                             cannot say why a pod does not start",
                            target.namespace
                        ));
                    }
                }
            }
            let now = tokio::time::Instant::now();
            let key = |p: &PodProblem| (p.pod.clone(), p.container.clone(), p.reason.clone());
            first_seen.retain(|k, _| problems.iter().any(|p| key(p) == *k));
            for pr in &problems {
                first_seen.entry(key(pr)).or_insert(now);
            }
            if let Some(pr) = problems.iter().find(|pr| {
                pr.reason != "Unschedulable"
                    && (pr.permanent() || now.duration_since(first_seen[&key(pr)]) >= STUCK_AFTER)
            }) {
                return Ok(Progress::Failed(pr.describe()));
            }
            let state = match problems.first() {
                Some(pr) => format!("{why} ({})", pr.describe()),
                None => why,
            };
            if state != last {
                report(&state);
                last = state.clone();
            }
            if now >= deadline {
                return Ok(Progress::Waiting(state));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statefulset_conditions() {
        let mut o = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1}});
        assert!(matches!(
            progress(WorkloadKind::StatefulSet, &o),
            Progress::Waiting(_)
        ));
        o["status"] = json!({"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2,
            "currentRevision": "a", "updateRevision": "b"});
        assert!(
            matches!(progress(WorkloadKind::StatefulSet, &o), Progress::Waiting(w) if w.contains("revision"))
        );
        o["status"]["currentRevision"] = json!("b");
        assert_eq!(progress(WorkloadKind::StatefulSet, &o), Progress::Done);
    }

    #[test]
    fn deployment_conditions() {
        let o = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1, "availableReplicas": 1}});
        assert_eq!(progress(WorkloadKind::Deployment, &o), Progress::Done);
        let o = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "x"}]}});
        assert!(matches!(
            progress(WorkloadKind::Deployment, &o),
            Progress::Failed(_)
        ));
    }

    fn pod(name: &str, rev: &str, status: serde_json::Value) -> Value {
        json!({"metadata": {"name": name, "labels": {"controller-revision-hash": rev}},
            "status": status})
    }

    #[test]
    fn pod_problems_are_the_new_revisions_in_the_kubelets_words() {
        let sts = json!({"status": {"updateRevision": "perses-2"}});
        let pull = json!({"containerStatuses": [{"name": "perses", "state": {"waiting": {
            "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"r/a:v2\": ErrImagePull: failed to pull and unpack image \"r/a:v2\": failed to resolve reference \"r/a:v2\": r/a:v2: not found"}}}]});
        let pods = vec![
            pod("perses-0", "perses-2", pull.clone()),
            // The old revision's pod is not the rollout's problem.
            pod("perses-1", "perses-1", pull),
            // Creating normally is no problem.
            pod(
                "perses-2",
                "perses-2",
                json!({"containerStatuses": [{"name": "perses",
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            ),
        ];
        let got = pod_problems(WorkloadKind::StatefulSet, &sts, &pods);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].pod, "perses-0");
        assert_eq!(got[0].container, "perses");
        assert_eq!(got[0].reason, "ImagePullBackOff");
        assert!(got[0].permanent());
        assert!(
            got[0]
                .describe()
                .starts_with("pod perses-0, container perses: ImagePullBackOff: Back-off pulling")
        );
    }

    #[test]
    fn transient_and_pod_level_problems_are_not_permanent() {
        let dep = json!({"status": {}});
        let pods = vec![
            json!({"metadata": {"name": "a"}, "status": {"containerStatuses": [{"name": "c",
                "state": {"waiting": {"reason": "ErrImagePull",
                "message": "failed to pull: dial tcp 127.0.0.1:5000: connect: connection refused"}}}]}}),
            json!({"metadata": {"name": "b"}, "status": {"conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) had untolerated taint"}]}}),
            json!({"metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {
                "reason": "CrashLoopBackOff", "message": "back-off"}}}]}}),
        ];
        let got = pod_problems(WorkloadKind::Deployment, &dep, &pods);
        assert_eq!(
            got.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(),
            ["ErrImagePull", "Unschedulable"]
        );
        assert!(got.iter().all(|p| !p.permanent()));
        assert_eq!(
            got[1].describe(),
            "pod b: Unschedulable: 0/1 nodes are available: 1 node(s) had untolerated taint"
        );
    }

    #[test]
    fn a_missing_sub_path_is_permanent() {
        let p = PodProblem {
            pod: "perses-0".into(),
            container: "perses".into(),
            reason: "CreateContainerError".into(),
            message: "failed to mount image volume: ImageVolumeMountFailed: failed to ensure image subpath \"nosuch\"".into(),
        };
        assert!(p.permanent());
    }

    #[test]
    fn selector_is_the_match_labels() {
        let w = json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}});
        assert_eq!(selector(&w).as_deref(), Some("a=1,b=2"));
        assert_eq!(selector(&json!({"spec": {}})), None);
    }

    #[test]
    fn a_pod_of_an_earlier_revision_that_never_started_is_stuck() {
        let sts = json!({"spec": {}, "status": {"updateRevision": "perses-3"}});
        let failing = json!({"containerStatuses": [{"name": "perses", "state": {"waiting": {
            "reason": "ImagePullBackOff", "message": "pull access denied"}}}]});
        let ready = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        let pods = vec![
            pod("perses-0", "perses-2", failing.clone()),
            // The new revision failing is the rollout's own problem, not a stuck pod.
            pod("perses-1", "perses-3", failing.clone()),
            // An old pod that serves is replaced by the controller in its turn.
            pod("perses-2", "perses-1", ready),
        ];
        let stuck = stuck_pods(WorkloadKind::StatefulSet, &sts, &pods);
        assert_eq!(
            stuck.iter().map(|p| p.pod.as_str()).collect::<Vec<_>>(),
            ["perses-0"]
        );
        // Parallel pod management and OnDelete updates behave otherwise: nothing is stuck.
        let parallel = json!({"spec": {"podManagementPolicy": "Parallel"},
            "status": {"updateRevision": "perses-3"}});
        assert!(stuck_pods(WorkloadKind::StatefulSet, &parallel, &pods).is_empty());
        let on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}},
            "status": {"updateRevision": "perses-3"}});
        assert!(stuck_pods(WorkloadKind::StatefulSet, &on_delete, &pods).is_empty());
        assert!(stuck_pods(WorkloadKind::Deployment, &sts, &pods).is_empty());
    }
}
