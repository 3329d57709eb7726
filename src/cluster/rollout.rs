//! Waiting for a rollout: small pure conditions over the workload's status (as kube-runtime's
//! `wait` does), and a poll loop that stops at a deadline.

use super::{Cluster, ClusterError};
use crate::model::{Target, WorkloadKind};
use serde_json::Value;
use std::time::Duration;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// Not yet, and why (for progress lines and the timeout message).
    Waiting(String),
    /// It cannot finish by itself (Deployment ProgressDeadlineExceeded).
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

impl Cluster {
    /// Polls until the workload has rolled out, calling `report` when the state changes.
    /// Returns the last state on timeout.
    pub async fn wait_rollout(
        &self,
        target: &Target,
        timeout: Duration,
        mut report: impl FnMut(&str),
    ) -> Result<Progress, ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let obj = self.get_workload(target).await?;
            let p = progress(target.workload.kind, &obj);
            match &p {
                Progress::Done | Progress::Failed(_) => return Ok(p),
                Progress::Waiting(why) => {
                    if *why != last {
                        report(why);
                        last = why.clone();
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(p);
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
}
