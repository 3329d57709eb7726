//! The apply lock: a `coordination.k8s.io` Lease per workload, renewed while perses-oci works
//! and left to expire by itself when the process dies.

use super::{Cluster, ClusterError};
use crate::model::Target;
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use std::time::Duration;

/// How long a lease lives without renewal: a killed apply blocks others this long at most.
pub const LEASE_SECONDS: i32 = 30;

/// The Lease name for a workload.
pub fn lease_name(target: &Target) -> String {
    format!(
        "perses-oci-{}-{}",
        target.workload.kind.as_str(),
        target.workload.name
    )
}

/// Who holds a lease, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub identity: String,
    pub since: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.identity)?;
        if let Some(s) = &self.since {
            write!(f, " since {s}")?;
        }
        Ok(())
    }
}

/// `user@host (pid N)`: enough for a person to find the other apply.
pub fn identity(user: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host} (pid {})", std::process::id())
}

/// A held lease; `release` deletes it, and a background task renews it until then.
pub struct Held {
    api: Api<Lease>,
    name: String,
    renew: tokio::task::JoinHandle<()>,
}

fn expired(l: &Lease, now: DateTime<Utc>) -> bool {
    let Some(spec) = &l.spec else { return true };
    let Some(renew) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let secs = spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS) as i64;
    renew.0.as_millisecond() + secs * 1000 < now.timestamp_millis()
}

fn holder(l: &Lease) -> Holder {
    let spec = l.spec.clone().unwrap_or_default();
    Holder {
        identity: spec.holder_identity.unwrap_or_else(|| "(unknown)".into()),
        since: spec.acquire_time.map(|t| t.0.to_string()),
    }
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Cluster {
    /// Takes the lease of `target`, waiting up to `wait` while another holder has it.
    pub async fn lock(
        &self,
        target: &Target,
        who: &str,
        wait: Duration,
    ) -> Result<Held, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &target.namespace);
        let name = lease_name(target);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": target.namespace,
                             "labels": {"app.kubernetes.io/managed-by": "perses-oci"}},
                "spec": {"holderIdentity": who, "leaseDurationSeconds": LEASE_SECONDS},
            }))
            .expect("a lease");
            let mut lease = lease;
            if let Some(s) = lease.spec.as_mut() {
                s.acquire_time = Some(now_micro());
                s.renew_time = Some(now_micro());
            }
            let res = match api
                .get_opt(&name)
                .await
                .map_err(|e| self.error(e, "get", "leases", &target.namespace, &name))?
            {
                None => api.create(&PostParams::default(), &lease).await,
                Some(old) if expired(&old, Utc::now()) => {
                    // Replace with the old resourceVersion: two takers of an expired lease race,
                    // and the API server lets exactly one win.
                    lease.metadata.resource_version = old.metadata.resource_version.clone();
                    api.replace(&name, &PostParams::default(), &lease).await
                }
                Some(old) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ClusterError::Locked {
                            context: self.context.clone(),
                            namespace: target.namespace.clone(),
                            lease: name,
                            holder: holder(&old).to_string(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            match res {
                Ok(_) => break,
                // Someone else created or took it between our read and write: look again.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(self.error(e, "create", "leases", &target.namespace, &name)),
            }
        }
        let renew_api = api.clone();
        let renew_name = name.clone();
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs((LEASE_SECONDS / 3) as u64)).await;
                if let Ok(Some(mut l)) = renew_api.get_opt(&renew_name).await {
                    if let Some(s) = l.spec.as_mut() {
                        s.renew_time = Some(now_micro());
                    }
                    let _ = renew_api
                        .replace(&renew_name, &PostParams::default(), &l)
                        .await;
                }
            }
        });
        Ok(Held { api, name, renew })
    }

    /// Deletes the lease of `target` whoever holds it; returns the holder it had.
    pub async fn force_unlock(&self, target: &Target) -> Result<Option<String>, ClusterError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &target.namespace);
        let name = lease_name(target);
        let Some(old) = api
            .get_opt(&name)
            .await
            .map_err(|e| self.error(e, "get", "leases", &target.namespace, &name))?
        else {
            return Ok(None);
        };
        api.delete(&name, &DeleteParams::default())
            .await
            .map_err(|e| self.error(e, "delete", "leases", &target.namespace, &name))?;
        Ok(Some(holder(&old).to_string()))
    }
}

impl Held {
    pub async fn release(self) {
        self.renew.abort();
        let _ = self.api.delete(&self.name, &DeleteParams::default()).await;
    }
}
