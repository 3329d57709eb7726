//! Test support for the renderers: fixed plans built by hand, and a small JSON Schema checker
//! for the keywords `docs/plan.schema.json` uses (no validator crate is a dependency).

use crate::model::{
    Action, ArtifactState, Change, Check, EnvError, EnvPlan, Plan, PlanInputs, Reason, Severity,
    Target, WorkloadKind, WorkloadRef,
};
use serde_json::Value;

pub const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
pub const REG: &str = "registry.example.com";

pub fn target(context: Option<&str>) -> Target {
    Target {
        context: context.map(str::to_string),
        namespace: "monitoring".to_string(),
        workload: WorkloadRef {
            kind: WorkloadKind::StatefulSet,
            name: "perses".to_string(),
        },
        container: "perses".to_string(),
        manifest: None,
    }
}

pub fn state(
    reference: &str,
    pull_policy: Option<&str>,
    mount_path: Option<&str>,
    sub_path: Option<&str>,
) -> ArtifactState {
    ArtifactState {
        reference: reference.to_string(),
        pull_policy: pull_policy.map(str::to_string),
        mount_path: mount_path.map(str::to_string),
        sub_path: sub_path.map(str::to_string),
    }
}

pub fn add_change(artifact: &str, after: ArtifactState) -> Change {
    Change {
        action: Action::Add,
        reasons: vec![Reason::NotPresent],
        artifact: artifact.to_string(),
        before: None,
        after: Some(after),
        conflicts_with: vec![],
        content: None,
    }
}

pub fn remove_change(artifact: &str, before: ArtifactState) -> Change {
    Change {
        action: Action::Remove,
        reasons: vec![Reason::RemovedFromConfig],
        artifact: artifact.to_string(),
        before: Some(before),
        after: None,
        conflicts_with: vec![],
        content: None,
    }
}

pub fn update_change(
    artifact: &str,
    reasons: Vec<Reason>,
    before: ArtifactState,
    after: ArtifactState,
    conflicts_with: &[&str],
) -> Change {
    Change {
        action: Action::Update,
        reasons,
        artifact: artifact.to_string(),
        before: Some(before),
        after: Some(after),
        conflicts_with: conflicts_with.iter().map(|s| s.to_string()).collect(),
        content: None,
    }
}

pub fn check(severity: Severity, code: &str, message: &str) -> Check {
    Check {
        severity,
        code: code.to_string(),
        message: message.to_string(),
    }
}

pub fn env(name: &str, changes: Vec<Change>, checks: Vec<Check>) -> EnvPlan {
    EnvPlan {
        env: name.to_string(),
        target: target(Some(name)),
        changes,
        checks,
        error: None,
        // Renderers must never show inputs: fill them with something recognisable.
        inputs: Some(PlanInputs {
            file_sha256: "INPUTS-MUST-NOT-BE-RENDERED".to_string(),
            resolved: vec![],
            live: vec![],
            resource_version: "INPUTS-RV".to_string(),
        }),
    }
}

pub fn no_change_env(name: &str) -> EnvPlan {
    env(name, vec![], vec![])
}

pub fn error_env(name: &str, message: &str) -> EnvPlan {
    EnvPlan {
        target: target(None),
        error: Some(EnvError {
            message: message.to_string(),
        }),
        ..env(name, vec![], vec![])
    }
}

/// The update of the brief's example: new tag, sub path added, fields owned by helm.
pub fn tag_update() -> Change {
    update_change(
        "perses-resources",
        vec![
            Reason::TagChanged {
                from: "v1.1.0".to_string(),
                to: "v1.2.0".to_string(),
            },
            Reason::MountMoved,
        ],
        state(
            &format!("{REG}/perses-resources:v1.1.0"),
            Some("IfNotPresent"),
            Some("/etc/perses/provisioning"),
            None,
        ),
        state(
            &format!("{REG}/perses-resources:v1.2.0@{D2}"),
            Some("IfNotPresent"),
            Some("/etc/perses/provisioning"),
            Some("prod"),
        ),
        &["helm"],
    )
}

/// Helm's own values, taken into perses-oci's ownership without a change (an import's first apply).
pub fn helm_adopt() -> Change {
    let live = state(
        &format!("{REG}/perses-resources:v1.1.0"),
        Some("IfNotPresent"),
        Some("/etc/perses/provisioning"),
        Some("prod"),
    );
    Change {
        action: Action::Adopt,
        reasons: vec![Reason::NotOwned {
            owners: vec!["helm".into()],
        }],
        artifact: "perses-resources".into(),
        before: Some(live.clone()),
        after: Some(live),
        conflicts_with: vec![],
        content: None,
    }
}

pub fn dashboards_add() -> Change {
    add_change(
        "perses-dashboards",
        state(
            &format!("{REG}/perses-dashboards:v2.0.0@{D1}"),
            None,
            Some("/etc/perses/dashboards"),
            None,
        ),
    )
}

pub fn old_remove() -> Change {
    remove_change(
        "old-dashboards",
        state(
            &format!("{REG}/old-dashboards:v0.9.0"),
            Some("Always"),
            Some("/etc/perses/old"),
            None,
        ),
    )
}

/// An update that only moves the digest, changed by someone else meanwhile.
pub fn moved_update() -> Change {
    update_change(
        "perses-resources",
        vec![
            Reason::TagMoved {
                from: D1.to_string(),
                to: D2.to_string(),
            },
            Reason::ChangedOutside {
                manager: "kubectl-edit".to_string(),
            },
        ],
        state(
            &format!("{REG}/perses-resources:v1.2.0@{D1}"),
            None,
            Some("/etc/perses/provisioning"),
            None,
        ),
        state(
            &format!("{REG}/perses-resources:v1.2.0@{D2}"),
            None,
            Some("/etc/perses/provisioning"),
            None,
        ),
        &[],
    )
}

/// Every kind of environment: changes of each action with a warning, a failed one, a quiet one,
/// and one with an error check.
pub fn rich_plan() -> Plan {
    Plan {
        envs: vec![
            env(
                "prod",
                vec![dashboards_add(), tag_update(), old_remove()],
                vec![check(
                    Severity::Warning,
                    "provisioning_folder",
                    "/etc/perses/old is not a provisioning folder of Perses",
                )],
            ),
            error_env("staging", "cannot reach the cluster: connection refused"),
            no_change_env("dev"),
            env(
                "qa",
                vec![moved_update()],
                vec![check(
                    Severity::Error,
                    "mount_clash",
                    "mount path /etc/perses/provisioning is already used by volume config",
                )],
            ),
        ],
    }
}

// A JSON Schema checker for the subset the plan schema keeps to. It refuses unknown keywords,
// so the schema cannot quietly rely on something that is not checked here.

const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "title",
    "description",
];
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "$ref",
    "oneOf",
    "anyOf",
    "minimum",
];

/// Every violation of `schema` by `instance`, as `path: problem`; empty when valid.
pub fn validate(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check_node(schema, schema, instance, "$", &mut errors);
    errors
}

fn check_node(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        panic!("schema at {path} is not an object: {schema}");
    };
    for key in obj.keys() {
        assert!(
            ANNOTATIONS.contains(&key.as_str()) || KEYWORDS.contains(&key.as_str()),
            "schema keyword {key:?} is not supported by the test checker"
        );
    }
    if let Some(r) = obj.get("$ref") {
        let r = r.as_str().expect("$ref is a string");
        let name = r
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unsupported $ref {r}"));
        let target = root["$defs"]
            .get(name)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
        check_node(root, target, v, path, errors);
    }
    if let Some(t) = obj.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|x| x.as_str().expect("type name")).collect(),
            _ => panic!("bad type keyword at {path}"),
        };
        if !types.iter().any(|t| has_type(v, t)) {
            errors.push(format!("{path}: expected type {types:?}, got {v}"));
            return;
        }
    }
    if let Some(e) = obj.get("enum") {
        let allowed = e.as_array().expect("enum is an array");
        if !allowed.contains(v) {
            errors.push(format!("{path}: {v} is not one of {e}"));
        }
    }
    if let (Some(min), Some(n)) = (obj.get("minimum"), v.as_f64())
        && n < min.as_f64().expect("minimum is a number")
    {
        errors.push(format!("{path}: {n} is below the minimum {min}"));
    }
    if let Some(map) = v.as_object() {
        let props = obj.get("properties").and_then(Value::as_object);
        if let Some(req) = obj.get("required") {
            for name in req.as_array().expect("required is an array") {
                let name = name.as_str().expect("required names are strings");
                if !map.contains_key(name) {
                    errors.push(format!("{path}: missing required property {name:?}"));
                }
            }
        }
        for (k, val) in map {
            let sub = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(s) => check_node(root, s, val, &sub, errors),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{path}: unexpected property {k:?}"))
                    }
                    Some(Value::Bool(true)) | None => {}
                    Some(s) => check_node(root, s, val, &sub, errors),
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (obj.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check_node(root, items, item, &format!("{path}[{i}]"), errors);
        }
    }
    for (kw, want_one) in [("oneOf", true), ("anyOf", false)] {
        let Some(alts) = obj.get(kw) else { continue };
        let matching = alts
            .as_array()
            .expect("oneOf/anyOf is an array")
            .iter()
            .filter(|alt| {
                let mut errs = Vec::new();
                check_node(root, alt, v, path, &mut errs);
                errs.is_empty()
            })
            .count();
        let ok = if want_one {
            matching == 1
        } else {
            matching >= 1
        };
        if !ok {
            errors.push(format!("{path}: {matching} alternatives of {kw} match {v}"));
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other:?}"),
    }
}
