//! Pure functions over workload JSON: what perses-oci reads from a live object (image volumes,
//! mounts, field owners, the Perses config location) and the server-side apply body it sends.
//! No I/O, so the shape of Kubernetes objects is tested without a cluster.

use crate::model::{
    ArtifactState, FIELD_MANAGER, HISTORY_ANNOTATION, HelmRelease, HelmWrites, LastWrite,
    LiveArtifact, LiveMount, PullIdentity, Revision, Target,
};
use serde_json::{Value, json};

/// Why a live object cannot be read as the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    ContainerNotFound { containers: Vec<String> },
}

/// What the pod template of a workload says about the target container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub resource_version: String,
    pub generation: i64,
    pub artifacts: Vec<LiveArtifact>,
    pub mounts: Vec<LiveMount>,
    /// `(configmap name, key)` of the Perses config the container reads, when found.
    pub config_source: Option<(String, String)>,
    pub history: Vec<Revision>,
    pub pull: PullIdentity,
    pub helm: Option<HelmRelease>,
}

fn pod_spec(obj: &Value) -> &Value {
    &obj["spec"]["template"]["spec"]
}

fn container<'a>(obj: &'a Value, name: &str) -> Result<&'a Value, ShapeError> {
    let containers = pod_spec(obj)["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    containers
        .iter()
        .find(|c| c["name"] == name)
        .ok_or_else(|| ShapeError::ContainerNotFound {
            containers: containers
                .iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect(),
        })
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Reads the managed state of a workload object for one target container.
pub fn extract(obj: &Value, target: &Target) -> Result<Extracted, ShapeError> {
    let c = container(obj, &target.container)?;
    let mounts: Vec<LiveMount> = c["volumeMounts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|m| {
            Some(LiveMount {
                volume: str_of(&m["name"])?,
                mount_path: str_of(&m["mountPath"])?,
            })
        })
        .collect();
    let mut artifacts = Vec::new();
    for v in pod_spec(obj)["volumes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let (Some(name), Some(image)) = (v["name"].as_str(), v.get("image")) else {
            continue;
        };
        let mount = c["volumeMounts"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["name"] == name));
        let state = ArtifactState {
            reference: str_of(&image["reference"]).unwrap_or_default(),
            pull_policy: str_of(&image["pullPolicy"]),
            mount_path: mount.and_then(|m| str_of(&m["mountPath"])),
            sub_path: mount
                .and_then(|m| str_of(&m["subPath"]))
                .filter(|s| !s.is_empty()),
        };
        let owners = owners_of(obj, &target.container, name, state.mount_path.as_deref());
        artifacts.push(LiveArtifact {
            name: name.to_string(),
            state,
            owners: owners.owners,
            applied_by_us: owners.applied_by_us,
            last_write: owners.last_write,
        });
    }
    Ok(Extracted {
        resource_version: str_of(&obj["metadata"]["resourceVersion"]).unwrap_or_default(),
        generation: obj["metadata"]["generation"].as_i64().unwrap_or(0),
        artifacts,
        mounts,
        config_source: config_source(obj, c),
        history: history(obj),
        pull: pull_identity(obj),
        helm: helm_release(obj),
    })
}

/// The Helm release of a workload: Helm annotates what it installs with
/// `meta.helm.sh/release-name` and `-namespace` (and labels it `managed-by: Helm`); its
/// managedFields entry says how it writes.
pub fn helm_release(obj: &Value) -> Option<HelmRelease> {
    let annotations = &obj["metadata"]["annotations"];
    let name = str_of(&annotations["meta.helm.sh/release-name"])?;
    let namespace = str_of(&annotations["meta.helm.sh/release-namespace"])
        .or_else(|| str_of(&obj["metadata"]["namespace"]))
        .unwrap_or_default();
    let entries = obj["metadata"]["managedFields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let entry = entries
        .iter()
        .filter(|e| matches!(e["manager"].as_str(), Some("helm" | "helm-controller")))
        // Helm's newest way of writing decides what the next upgrade does.
        .max_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    let (manager, writes) = match entry {
        None => ("helm".to_string(), HelmWrites::Unknown),
        Some(e) => {
            let manager = str_of(&e["manager"]).unwrap_or_default();
            let writes = match (manager.as_str(), e["operation"].as_str()) {
                ("helm-controller", _) => HelmWrites::ForcedApply,
                (_, Some("Apply")) => HelmWrites::ServerSideApply,
                (_, Some("Update")) => HelmWrites::ThreeWayMerge,
                _ => HelmWrites::Unknown,
            };
            (manager, writes)
        }
    };
    Some(HelmRelease {
        name,
        namespace,
        manager,
        writes,
    })
}

/// The pull secrets and service account of the pod template.
pub fn pull_identity(obj: &Value) -> PullIdentity {
    let spec = pod_spec(obj);
    PullIdentity {
        secrets: spec["imagePullSecrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| str_of(&s["name"]))
            .collect(),
        service_account: str_of(&spec["serviceAccountName"])
            .or_else(|| str_of(&spec["serviceAccount"]))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
    }
}

/// The applied revisions recorded on the workload; an unreadable annotation counts as none
/// (it is rewritten on the next apply).
pub fn history(obj: &Value) -> Vec<Revision> {
    obj["metadata"]["annotations"][HISTORY_ANNOTATION]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

struct Owners {
    owners: Vec<String>,
    applied_by_us: bool,
    last_write: Option<LastWrite>,
}

fn volume_key(name: &str) -> String {
    format!("k:{}", json!({ "name": name }))
}

fn mount_key(path: &str) -> String {
    format!("k:{}", json!({ "mountPath": path }))
}

/// Who owns the values perses-oci manages, from managedFields (fieldsV1).
fn owners_of(obj: &Value, container: &str, volume: &str, mount_path: Option<&str>) -> Owners {
    let mut owners = Vec::new();
    let mut applied_by_us = false;
    let mut last_write: Option<LastWrite> = None;
    for entry in obj["metadata"]["managedFields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let Some(manager) = entry["manager"].as_str() else {
            continue;
        };
        let spec = &entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"];
        let vol = &spec["f:volumes"][volume_key(volume)];
        let image = &vol["f:image"];
        let mount = mount_path
            .map(|p| &spec["f:containers"][format!("k:{}", json!({ "name": container }))]["f:volumeMounts"][mount_key(p)])
            .unwrap_or(&Value::Null);
        let owns_value = !image["f:reference"].is_null()
            || !image["f:pullPolicy"].is_null()
            || !mount["f:subPath"].is_null();
        if manager == FIELD_MANAGER && !vol.is_null() {
            applied_by_us = true;
        }
        if owns_value {
            if !owners.iter().any(|o| o == manager) {
                owners.push(manager.to_string());
            }
            let time = str_of(&entry["time"]);
            let newer = match (&last_write, &time) {
                (None, _) => true,
                // managedFields times have one-second resolution: on a tie, the manager that
                // is not perses-oci is the one that changed the value after perses-oci.
                (Some(lw), Some(t)) => lw.time.as_deref().is_none_or(|lt| {
                    t.as_str() > lt || (t.as_str() == lt && lw.manager == FIELD_MANAGER)
                }),
                (Some(_), None) => false,
            };
            if newer {
                last_write = Some(LastWrite {
                    manager: manager.to_string(),
                    operation: str_of(&entry["operation"]).unwrap_or_default(),
                    time,
                });
            }
        }
    }
    Owners {
        owners,
        applied_by_us,
        last_write,
    }
}

/// The ConfigMap and key behind the container's `--config` flag, as the Perses chart mounts it.
fn config_source(obj: &Value, c: &Value) -> Option<(String, String)> {
    let args: Vec<&str> = c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["command"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let mut path = None;
    for (i, a) in args.iter().enumerate() {
        if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.to_string());
        } else if *a == "--config" {
            path = args.get(i + 1).map(|s| s.to_string());
        }
    }
    let path = path?;
    // The mount that holds the file: the longest mountPath that is a path prefix of it.
    let mounts = c["volumeMounts"].as_array()?;
    let m = mounts
        .iter()
        .filter(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|mp| path_contains(mp, &path))
        })
        .max_by_key(|m| m["mountPath"].as_str().map(str::len))?;
    let mount_path = m["mountPath"].as_str()?;
    let key = match m["subPath"].as_str() {
        Some(sp) if !sp.is_empty() && mount_path == path => sp.to_string(),
        _ => path[mount_path.len()..].trim_start_matches('/').to_string(),
    };
    let vol_name = m["name"].as_str()?;
    let vol = pod_spec(obj)["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == vol_name)?;
    let cm = vol["configMap"]["name"].as_str()?;
    // A configMap volume with `items` maps keys to other paths.
    let key = vol["configMap"]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|it| it["path"] == key.as_str()))
        .and_then(|it| it["key"].as_str().map(str::to_string))
        .unwrap_or(key);
    Some((cm.to_string(), key))
}

/// Whether directory `dir` contains `path` (or is it), on path boundaries:
/// `/etc/perses/prov` does not contain `/etc/perses/provisioning`.
pub fn path_contains(dir: &str, path: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return path.starts_with('/');
    }
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Provisioning folders from a Perses config file (YAML or JSON).
pub fn provisioning_folders(config: &str) -> Result<Vec<String>, String> {
    let v: Value = serde_saphyr::from_str(config).map_err(|e| e.to_string())?;
    Ok(v["provisioning"]["folders"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The server-side apply body: only what identifies the object and the entries perses-oci
/// owns. Entries left out that perses-oci owned before are removed by the server.
pub fn apply_body(
    target: &Target,
    artifacts: &[(String, ArtifactState)],
    annotations: &[(String, String)],
) -> Value {
    let volumes: Vec<Value> = artifacts
        .iter()
        .map(|(name, s)| {
            let mut image = json!({ "reference": s.reference });
            if let Some(p) = &s.pull_policy {
                image["pullPolicy"] = json!(p);
            }
            json!({ "name": name, "image": image })
        })
        .collect();
    let mounts: Vec<Value> = artifacts
        .iter()
        .filter_map(|(name, s)| {
            let mut m = json!({ "name": name, "mountPath": s.mount_path.as_ref()? });
            if let Some(sp) = &s.sub_path {
                m["subPath"] = json!(sp);
            }
            Some(m)
        })
        .collect();
    let mut metadata = json!({ "name": target.workload.name, "namespace": target.namespace });
    if !annotations.is_empty() {
        metadata["annotations"] = annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
    }
    let mut spec = json!({});
    if !artifacts.is_empty() {
        spec = json!({ "template": { "spec": {
            "volumes": volumes,
            "containers": [ { "name": target.container, "volumeMounts": mounts } ],
        } } });
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": target.workload.kind.api_kind(),
        "metadata": metadata,
        "spec": spec,
    })
}

/// The managedFields entry that owns one managed field of a volume (`reference`,
/// `pull_policy`, `mount_path`, `sub_path`), from the workload JSON. With several owners (a
/// shared server-side apply), another manager than perses-oci wins, then the newest.
pub fn field_writer(obj: &Value, container: &str, volume: &str, field: &str) -> Option<LastWrite> {
    let key = |k: &str, v: &str| format!("k:{}", json!({ k: v }));
    let pod = &obj["spec"]["template"]["spec"];
    let mount_path = pod["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)?["volumeMounts"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == volume))
        .and_then(|m| m["mountPath"].as_str());
    let mut best: Option<LastWrite> = None;
    for entry in obj["metadata"]["managedFields"].as_array()? {
        let spec = &entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"];
        let image = &spec["f:volumes"][key("name", volume)]["f:image"];
        let mount = || {
            mount_path
                .map(|p| {
                    &spec["f:containers"][key("name", container)]["f:volumeMounts"]
                        [key("mountPath", p)]
                })
                .unwrap_or(&serde_json::Value::Null)
        };
        let owned = match field {
            "reference" => &image["f:reference"],
            "pull_policy" => &image["f:pullPolicy"],
            "mount_path" => &mount()["f:mountPath"],
            "sub_path" => &mount()["f:subPath"],
            _ => &serde_json::Value::Null,
        };
        let (false, Some(manager)) = (owned.is_null(), entry["manager"].as_str()) else {
            continue;
        };
        let w = LastWrite {
            manager: manager.to_string(),
            operation: entry["operation"].as_str().unwrap_or_default().to_string(),
            time: entry["time"].as_str().map(str::to_string),
        };
        let better = match &best {
            None => true,
            Some(b) if (b.manager == FIELD_MANAGER) != (w.manager == FIELD_MANAGER) => {
                b.manager == FIELD_MANAGER
            }
            Some(b) => w.time > b.time,
        };
        if better {
            best = Some(w);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{WorkloadKind, WorkloadRef};

    #[test]
    fn a_helm_release_and_how_helm_writes_it() {
        let mut obj = json!({"metadata": {"namespace": "monitoring", "annotations": {
            "meta.helm.sh/release-name": "perses", "meta.helm.sh/release-namespace": "monitoring"},
            "managedFields": [
                {"manager": "helm", "operation": "Update", "time": "2026-01-01T00:00:00Z"},
                {"manager": "perses-oci", "operation": "Apply", "time": "2026-01-02T00:00:00Z"}]}});
        let r = helm_release(&obj).unwrap();
        assert_eq!(
            (r.name.as_str(), r.namespace.as_str()),
            ("perses", "monitoring")
        );
        assert_eq!(
            (r.manager.as_str(), r.writes),
            ("helm", HelmWrites::ThreeWayMerge)
        );
        // Helm 4 converted the release (`--server-side=true`): its newest entry is an Apply.
        obj["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"manager": "helm", "operation": "Apply", "time": "2026-01-03T00:00:00Z"}));
        assert_eq!(
            helm_release(&obj).unwrap().writes,
            HelmWrites::ServerSideApply
        );
        obj["metadata"]["managedFields"] =
            json!([{"manager": "helm-controller", "operation": "Apply"}]);
        let r = helm_release(&obj).unwrap();
        assert_eq!(
            (r.manager.as_str(), r.writes),
            ("helm-controller", HelmWrites::ForcedApply)
        );
        obj["metadata"]["managedFields"] = json!([]);
        assert_eq!(helm_release(&obj).unwrap().writes, HelmWrites::Unknown);
        obj["metadata"]["annotations"] = json!({});
        assert_eq!(
            helm_release(&obj),
            None,
            "not a release without Helm's annotations"
        );
    }

    fn target() -> Target {
        Target {
            context: Some("prod".into()),
            namespace: "monitoring".into(),
            workload: WorkloadRef {
                kind: WorkloadKind::StatefulSet,
                name: "perses".into(),
            },
            container: "perses".into(),
            manifest: None,
        }
    }

    fn sts() -> Value {
        json!({
          "metadata": {"name": "perses", "resourceVersion": "42", "generation": 3,
            "managedFields": [
              {"manager": "helm", "operation": "Update", "time": "2026-01-01T00:00:00Z",
               "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                 "f:volumes": {"k:{\"name\":\"perses-resources\"}": {".": {}, "f:name": {}, "f:image": {"f:reference": {}, "f:pullPolicy": {}}}},
                 "f:containers": {"k:{\"name\":\"perses\"}": {"f:volumeMounts": {"k:{\"mountPath\":\"/etc/perses/provisioning\"}": {"f:subPath": {}}}}}}}}}},
              {"manager": "perses-oci", "operation": "Apply", "time": "2026-02-01T00:00:00Z",
               "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                 "f:volumes": {"k:{\"name\":\"perses-resources\"}": {".": {}, "f:name": {}}}}}}}}
            ]},
          "spec": {"template": {"spec": {
            "containers": [{"name": "perses", "args": ["--config=/etc/perses/config/config.yaml"],
              "volumeMounts": [
                {"name": "config", "mountPath": "/etc/perses/config"},
                {"name": "perses-resources", "mountPath": "/etc/perses/provisioning", "subPath": "prod"}]}],
            "volumes": [
              {"name": "config", "configMap": {"name": "perses"}},
              {"name": "perses-resources", "image": {"reference": "r/p:v1", "pullPolicy": "IfNotPresent"}}]}}}
        })
    }

    #[test]
    fn extracts_image_volumes_owners_and_config() {
        let e = extract(&sts(), &target()).unwrap();
        assert_eq!(e.resource_version, "42");
        assert_eq!(e.generation, 3);
        assert_eq!(e.artifacts.len(), 1);
        let a = &e.artifacts[0];
        assert_eq!(a.state.reference, "r/p:v1");
        assert_eq!(
            a.state.mount_path.as_deref(),
            Some("/etc/perses/provisioning")
        );
        assert_eq!(a.state.sub_path.as_deref(), Some("prod"));
        // perses-oci shares the list key only; helm owns the values.
        assert_eq!(a.owners, vec!["helm".to_string()]);
        assert!(a.applied_by_us);
        assert_eq!(a.last_write.as_ref().unwrap().manager, "helm");
        assert_eq!(
            e.config_source,
            Some(("perses".into(), "config.yaml".into()))
        );
        assert_eq!(e.mounts.len(), 2);
    }

    #[test]
    fn missing_container_lists_the_others() {
        let mut t = target();
        t.container = "nope".into();
        assert_eq!(
            extract(&sts(), &t).unwrap_err(),
            ShapeError::ContainerNotFound {
                containers: vec!["perses".into()]
            }
        );
    }

    #[test]
    fn path_boundaries() {
        assert!(path_contains(
            "/etc/perses/provisioning",
            "/etc/perses/provisioning"
        ));
        assert!(path_contains(
            "/etc/perses/provisioning/",
            "/etc/perses/provisioning/a"
        ));
        assert!(path_contains("/etc/perses", "/etc/perses/provisioning"));
        assert!(!path_contains(
            "/etc/perses/prov",
            "/etc/perses/provisioning"
        ));
        assert!(path_contains("/", "/x"));
    }

    #[test]
    fn provisioning_folders_from_chart_config() {
        let f = provisioning_folders(
            "provisioning:\n  folders:\n    - /a\n    - /b\n  interval: 10m\n",
        )
        .unwrap();
        assert_eq!(f, vec!["/a".to_string(), "/b".to_string()]);
        assert_eq!(
            provisioning_folders("database: {}\n").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn apply_body_holds_only_owned_entries() {
        let s = ArtifactState {
            reference: "r/p:v2@sha256:ab".into(),
            pull_policy: None,
            mount_path: Some("/m".into()),
            sub_path: Some("prod".into()),
        };
        let body = apply_body(&target(), &[("a".into(), s)], &[]);
        assert_eq!(
            body,
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
              "metadata": {"name": "perses", "namespace": "monitoring"},
              "spec": {"template": {"spec": {
                "volumes": [{"name": "a", "image": {"reference": "r/p:v2@sha256:ab"}}],
                "containers": [{"name": "perses", "volumeMounts": [{"name": "a", "mountPath": "/m", "subPath": "prod"}]}]}}}})
        );
        let empty = apply_body(&target(), &[], &[]);
        assert_eq!(empty["spec"], json!({}));
    }
}
