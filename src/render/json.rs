//! The machine-readable plan: dedicated view structs, so that the JSON shape documented in
//! `docs/plan-json.md` and `docs/plan.schema.json` only changes when FORMAT_VERSION does, not
//! whenever the model does.

use crate::model::{
    Action, ArtifactState, Change, Check, ContentDiff, EnvPlan, Pin, Plan, Reason, Severity,
    Summary,
};
use serde::Serialize;

/// Version of the JSON shape. Minor: fields added. Major: anything a reader could trip over.
pub const FORMAT_VERSION: &str = "1.3";

#[derive(Serialize)]
struct PlanView<'a> {
    format_version: &'static str,
    environments: Vec<EnvView<'a>>,
    summary: TotalsView,
}

#[derive(Serialize)]
struct EnvView<'a> {
    name: &'a str,
    target: TargetView<'a>,
    changes: Vec<ChangeView<'a>>,
    checks: Vec<CheckView<'a>>,
    error: Option<ErrorView<'a>>,
    summary: CountsView,
}

#[derive(Serialize)]
struct TargetView<'a> {
    context: Option<&'a str>,
    namespace: &'a str,
    workload: String,
    container: &'a str,
}

#[derive(Serialize)]
struct ChangeView<'a> {
    action: &'static str,
    address: String,
    artifact: &'a str,
    reasons: Vec<ReasonView<'a>>,
    before: Option<StateView<'a>>,
    after: Option<StateView<'a>>,
    conflicts_with: &'a [String],
    /// Which Perses resources change inside the artifact (null: not read, or no change).
    content: Option<&'a ContentDiff>,
}

/// Flat rather than one struct per kind: readers switch on `kind` and read the fields it has.
#[derive(Serialize)]
struct ReasonView<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manager: Option<&'a str>,
    /// `not_owned`: the field managers that own the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    owners: Option<&'a [String]>,
    message: String,
}

#[derive(Serialize)]
struct StateView<'a> {
    reference: &'a str,
    pull_policy: Option<&'a str>,
    mount_path: Option<&'a str>,
    sub_path: Option<&'a str>,
}

#[derive(Serialize)]
struct CheckView<'a> {
    severity: &'static str,
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorView<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct CountsView {
    add: usize,
    change: usize,
    remove: usize,
    adopt: usize,
}

#[derive(Serialize)]
struct TotalsView {
    add: usize,
    change: usize,
    remove: usize,
    adopt: usize,
    /// Environments that failed or have error checks, so that CI can gate on one number.
    errors: usize,
}

impl From<Summary> for CountsView {
    fn from(s: Summary) -> CountsView {
        CountsView {
            add: s.add,
            change: s.change,
            remove: s.remove,
            adopt: s.adopt,
        }
    }
}

fn plan_view(plan: &Plan) -> PlanView<'_> {
    let s = plan.summary();
    PlanView {
        format_version: FORMAT_VERSION,
        environments: plan.envs.iter().map(env_view).collect(),
        summary: TotalsView {
            add: s.add,
            change: s.change,
            remove: s.remove,
            adopt: s.adopt,
            errors: plan.envs.iter().filter(|e| e.has_errors()).count(),
        },
    }
}

fn env_view(env: &EnvPlan) -> EnvView<'_> {
    let t = &env.target;
    EnvView {
        name: &env.env,
        target: TargetView {
            context: t.context.as_deref(),
            namespace: &t.namespace,
            workload: t.workload.to_string(),
            container: &t.container,
        },
        changes: env
            .changes
            .iter()
            .map(|c| change_view(&env.env, c))
            .collect(),
        checks: env.checks.iter().map(check_view).collect(),
        error: env.error.as_ref().map(|e| ErrorView {
            message: &e.message,
        }),
        summary: Summary::of(&env.changes).into(),
    }
}

fn change_view<'a>(env: &str, c: &'a Change) -> ChangeView<'a> {
    ChangeView {
        action: match c.action {
            Action::Add => "add",
            Action::Update => "update",
            Action::Remove => "remove",
            Action::Adopt => "adopt",
        },
        address: format!("{env}.artifact.{}", c.artifact),
        artifact: &c.artifact,
        reasons: c.reasons.iter().map(reason_view).collect(),
        before: c.before.as_ref().map(state_view),
        after: c.after.as_ref().map(state_view),
        conflicts_with: &c.conflicts_with,
        content: c.content.as_ref(),
    }
}

fn reason_view(r: &Reason) -> ReasonView<'_> {
    let (kind, from, to, manager) = match r {
        Reason::NotPresent => ("not_present", None, None, None),
        Reason::TagChanged { from, to } => ("tag_changed", Some(from), Some(to.as_str()), None),
        Reason::TagMoved { from, to } => ("tag_moved", Some(from), Some(to.as_str()), None),
        Reason::PinChanged { to } => ("pin_changed", None, Some(pin(*to)), None),
        Reason::PullPolicyChanged => ("pull_policy_changed", None, None, None),
        Reason::MountMoved => ("mount_moved", None, None, None),
        Reason::ChangedOutside { manager } => ("changed_outside", None, None, Some(manager)),
        Reason::RemovedFromConfig => ("removed_from_config", None, None, None),
        Reason::NotOwned { .. } => ("not_owned", None, None, None),
    };
    ReasonView {
        kind,
        from: from.map(String::as_str),
        to,
        manager: manager.map(String::as_str),
        owners: match r {
            Reason::NotOwned { owners } => Some(owners),
            _ => None,
        },
        message: r.to_string(),
    }
}

fn pin(p: Pin) -> &'static str {
    match p {
        Pin::Digest => "digest",
        Pin::Tag => "tag",
    }
}

fn state_view(s: &ArtifactState) -> StateView<'_> {
    StateView {
        reference: &s.reference,
        pull_policy: s.pull_policy.as_deref(),
        mount_path: s.mount_path.as_deref(),
        sub_path: s.sub_path.as_deref(),
    }
}

fn check_view(c: &Check) -> CheckView<'_> {
    CheckView {
        severity: match c.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        code: &c.code,
        message: &c.message,
    }
}

/// The plan as pretty-printed JSON with a trailing newline, keys in documented order.
pub fn json(plan: &Plan) -> String {
    let mut out = serde_json::to_string_pretty(&plan_view(plan))
        .expect("plan views hold only strings, numbers and options");
    out.push('\n');
    out
}

/// The plan as a JSON value (object keys sorted, as `serde_json::Value` keeps them).
pub fn json_value(plan: &Plan) -> serde_json::Value {
    serde_json::to_value(plan_view(plan))
        .expect("plan views hold only strings, numbers and options")
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::{Value, json};

    const SCHEMA: &str = include_str!("../../docs/plan.schema.json");
    const DOC: &str = include_str!("../../docs/plan-json.md");

    fn schema() -> Value {
        serde_json::from_str(SCHEMA).expect("docs/plan.schema.json is JSON")
    }

    #[test]
    fn rich_plan_matches_the_schema() {
        let v = json_value(&rich_plan());
        assert_eq!(validate(&schema(), &v), Vec::<String>::new());
        // The text form is the same document.
        let text = json(&rich_plan());
        assert!(text.ends_with("}\n"));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn every_reason_kind_matches_the_schema() {
        let reasons = vec![
            Reason::NotPresent,
            Reason::TagChanged {
                from: "a".into(),
                to: "b".into(),
            },
            Reason::TagMoved {
                from: D1.into(),
                to: D2.into(),
            },
            Reason::PinChanged { to: Pin::Digest },
            Reason::PinChanged { to: Pin::Tag },
            Reason::PullPolicyChanged,
            Reason::MountMoved,
            Reason::ChangedOutside {
                manager: "helm".into(),
            },
            Reason::RemovedFromConfig,
            Reason::NotOwned {
                owners: vec!["helm".into()],
            },
        ];
        let mut change = tag_update();
        change.reasons = reasons;
        let plan = Plan {
            envs: vec![env("prod", vec![change], vec![])],
        };
        let v = json_value(&plan);
        assert_eq!(validate(&schema(), &v), Vec::<String>::new());
        let kinds: Vec<&str> = v["environments"][0]["changes"][0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        let schema = schema();
        let mut documented: Vec<&str> = schema["$defs"]["reason"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|alt| alt["properties"]["kind"]["enum"].as_array().unwrap())
            .map(|k| k.as_str().unwrap())
            .collect();
        documented.sort_unstable();
        let mut rendered = kinds.clone();
        rendered.sort_unstable();
        rendered.dedup();
        assert_eq!(rendered, documented);
    }

    #[test]
    fn the_checker_rejects_what_the_schema_forbids() {
        let schema = schema();
        let good = json_value(&rich_plan());
        type Mutation = (&'static str, fn(&mut Value));
        let mutations: Vec<Mutation> = vec![
            ("bad action", |v| {
                v["environments"][0]["changes"][0]["action"] = json!("destroy")
            }),
            ("extra field", |v| {
                v["environments"][0]["target"]["cluster"] = json!("x")
            }),
            ("missing field", |v| {
                v["summary"].as_object_mut().unwrap().remove("errors");
            }),
            ("bad severity", |v| {
                v["environments"][0]["checks"][0]["severity"] = json!("info")
            }),
            ("reason without its fields", |v| {
                v["environments"][0]["changes"][1]["reasons"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("to");
            }),
            ("unknown reason", |v| {
                v["environments"][0]["changes"][0]["reasons"][0]["kind"] = json!("whim")
            }),
            ("negative count", |v| v["summary"]["add"] = json!(-1)),
            ("wrong version", |v| v["format_version"] = json!("2.0")),
            ("null reference", |v| {
                v["environments"][0]["changes"][0]["after"]["reference"] = Value::Null
            }),
        ];
        for (what, mutate) in mutations {
            let mut bad = good.clone();
            mutate(&mut bad);
            assert!(!validate(&schema, &bad).is_empty(), "{what} was accepted");
        }
    }

    #[test]
    fn shape_of_one_environment() {
        let plan = Plan {
            envs: vec![
                env("prod", vec![tag_update()], vec![]),
                error_env("staging", "boom"),
            ],
        };
        let v = json_value(&plan);
        assert_eq!(
            v,
            json!({
                "format_version": "1.3",
                "environments": [
                    {
                        "name": "prod",
                        "target": {
                            "context": "prod",
                            "namespace": "monitoring",
                            "workload": "statefulset/perses",
                            "container": "perses"
                        },
                        "changes": [{
                            "action": "update",
                            "address": "prod.artifact.perses-resources",
                            "artifact": "perses-resources",
                            "reasons": [
                                {
                                    "kind": "tag_changed",
                                    "from": "v1.1.0",
                                    "to": "v1.2.0",
                                    "message": "tag changed (v1.1.0 -> v1.2.0)"
                                },
                                {"kind": "mount_moved", "message": "mount moved"}
                            ],
                            "before": {
                                "reference": "registry.example.com/perses-resources:v1.1.0",
                                "pull_policy": "IfNotPresent",
                                "mount_path": "/etc/perses/provisioning",
                                "sub_path": null
                            },
                            "after": {
                                "reference": format!("registry.example.com/perses-resources:v1.2.0@{D2}"),
                                "pull_policy": "IfNotPresent",
                                "mount_path": "/etc/perses/provisioning",
                                "sub_path": "prod"
                            },
                            "conflicts_with": ["helm"],
                            "content": null
                        }],
                        "checks": [],
                        "error": null,
                        "summary": {"add": 0, "change": 1, "remove": 0, "adopt": 0}
                    },
                    {
                        "name": "staging",
                        "target": {
                            "context": null,
                            "namespace": "monitoring",
                            "workload": "statefulset/perses",
                            "container": "perses"
                        },
                        "changes": [],
                        "checks": [],
                        "error": {"message": "boom"},
                        "summary": {"add": 0, "change": 0, "remove": 0, "adopt": 0}
                    }
                ],
                "summary": {"add": 0, "change": 1, "remove": 0, "adopt": 0, "errors": 1}
            })
        );
    }

    #[test]
    fn keys_keep_the_documented_order_and_inputs_stay_out() {
        let text = json(&rich_plan());
        let fv = text.find("\"format_version\"").unwrap();
        let envs = text.find("\"environments\"").unwrap();
        assert!(fv < envs);
        assert!(text.starts_with("{\n  \"format_version\": \"1.3\",\n"));
        assert!(!text.contains("INPUTS"));
        assert!(!text.contains("\"inputs\""));
    }

    #[test]
    fn summary_counts_errors_per_environment() {
        let v = json_value(&rich_plan());
        assert_eq!(
            v["summary"],
            json!({"add": 1, "change": 2, "remove": 1, "adopt": 0, "errors": 2})
        );
        assert_eq!(
            json_value(&Plan::default()),
            json!({
                "format_version": "1.3",
                "environments": [],
                "summary": {"add": 0, "change": 0, "remove": 0, "adopt": 0, "errors": 0}
            })
        );
    }

    /// The plan the example in docs/plan-json.md was rendered from.
    fn doc_plan() -> Plan {
        Plan {
            envs: vec![
                env("prod", vec![tag_update(), dashboards_add()], vec![]),
                env(
                    "qa",
                    vec![moved_update()],
                    vec![check(
                        Severity::Warning,
                        "provisioning_folder",
                        "/etc/perses/provisioning is not a provisioning folder of the Perses config",
                    )],
                ),
                error_env("staging", "cannot reach the cluster: connection refused"),
            ],
        }
    }

    fn doc_example() -> Value {
        let start = DOC
            .find("```json\n")
            .expect("docs/plan-json.md has a json example")
            + 8;
        let len = DOC[start..].find("```").unwrap();
        serde_json::from_str(&DOC[start..start + len]).expect("the example is JSON")
    }

    #[test]
    fn the_documented_example_is_real() {
        let example = doc_example();
        assert_eq!(
            example,
            json_value(&doc_plan()),
            "docs/plan-json.md is stale; its example should be:\n{}",
            json(&doc_plan())
        );
        assert_eq!(validate(&schema(), &example), Vec::<String>::new());
        assert!(DOC.contains(&format!("`format_version` is `\"{FORMAT_VERSION}\"`")));
    }
}
