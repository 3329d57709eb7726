//! Behaviour of `config` as its callers see it: files in, `Desired` or diagnostics out.

use std::path::{Path, PathBuf};

use super::*;
use crate::model::{
    ArtifactSpec, Desired, Pin, PullPolicy, RegistrySettings, Target, WorkloadKind, WorkloadRef,
};

const FILE: &str = "environments/prod.toml";

const MINIMAL: &str = r#"[target]
namespace = "monitoring"

[artifact]
name = "perses-resources"
image = "registry.company.com/perses-resources"
tag = "prod-v1.2.0"
mount_path = "/etc/perses/provisioning"
"#;

fn parse(text: &str) -> Result<Desired, ConfigError> {
    parse_env("prod", Path::new(FILE), text, Path::new("proj"))
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Err(ConfigError::Invalid { diagnostics }) => diagnostics,
        other => panic!("expected diagnostics, got {other:?}"),
    }
}

/// The only diagnostic of `text`, displayed.
fn single(text: &str) -> String {
    let d = diagnostics(text);
    assert_eq!(d.len(), 1, "{d:#?}");
    d[0].to_string()
}

/// MINIMAL with one line replaced (`from` must occur once).
fn minimal_with(from: &str, to: &str) -> String {
    assert_eq!(MINIMAL.matches(from).count(), 1, "{from}");
    MINIMAL.replace(from, to)
}

fn artifact(name: &str, mount_path: &str) -> ArtifactSpec {
    ArtifactSpec {
        name: name.into(),
        image: "registry.company.com/perses-resources".into(),
        tag: "prod-v1.2.0".into(),
        pull_policy: None,
        mount_path: mount_path.into(),
        sub_path: None,
        pin: Pin::Digest,
        source: None,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

// --- valid files -------------------------------------------------------------------------

#[test]
fn minimal_file_gets_defaults() {
    let d = parse(MINIMAL).unwrap();
    assert_eq!(
        d,
        Desired {
            env: "prod".into(),
            file: PathBuf::from(FILE),
            file_sha256: sha256_hex(MINIMAL.as_bytes()),
            target: Target {
                context: None,
                namespace: "monitoring".into(),
                workload: WorkloadRef {
                    kind: WorkloadKind::StatefulSet,
                    name: "perses".into(),
                },
                container: "perses".into(),
                manifest: None,
            },
            artifacts: vec![artifact("perses-resources", "/etc/perses/provisioning")],
            registry: RegistrySettings::default(),
        }
    );
}

#[test]
fn every_key_is_read() {
    let text = r#"
[target]
context = "arn:aws:eks:eu-west-1:123:cluster/prod"
namespace = "monitoring"
workload = "deployment/perses.v2"
container = "server"

[artifact]
name = "perses-resources"
image = "registry.company.com:5000/team/perses-resources"
tag = "prod-v1.2.0"
pull_policy = "Always"
mount_path = "/etc/perses/provisioning"
sub_path = "envs/prod"
pin = "tag"

[registry]
insecure = ["127.0.0.1:5000", "registry.local"]
ca_file = "certs/registry-ca.pem"
"#;
    let d = parse(text).unwrap();
    assert_eq!(
        d.target,
        Target {
            context: Some("arn:aws:eks:eu-west-1:123:cluster/prod".into()),
            namespace: "monitoring".into(),
            workload: WorkloadRef {
                kind: WorkloadKind::Deployment,
                name: "perses.v2".into(),
            },
            container: "server".into(),
            manifest: None,
        }
    );
    assert_eq!(
        d.artifacts,
        vec![ArtifactSpec {
            name: "perses-resources".into(),
            image: "registry.company.com:5000/team/perses-resources".into(),
            tag: "prod-v1.2.0".into(),
            pull_policy: Some(PullPolicy::Always),
            mount_path: "/etc/perses/provisioning".into(),
            sub_path: Some("envs/prod".into()),
            pin: Pin::Tag,
            source: None,
        }]
    );
    assert_eq!(
        d.registry,
        RegistrySettings {
            insecure: vec!["127.0.0.1:5000".into(), "registry.local".into()],
            ca_file: Some(Path::new("proj").join("certs/registry-ca.pem")),
        }
    );
}

#[test]
fn absolute_ca_file_is_kept() {
    let text = format!("{MINIMAL}\n[registry]\nca_file = \"/etc/ssl/ca.pem\"\n");
    let d = parse(&text).unwrap();
    assert_eq!(d.registry.ca_file, Some(PathBuf::from("/etc/ssl/ca.pem")));
    assert!(d.registry.insecure.is_empty());
}

#[test]
fn several_artifacts() {
    let text = r#"[target]
namespace = "monitoring"

[[artifact]]
name = "dashboards"
image = "registry.company.com/perses-resources"
tag = "prod-v1.2.0"
mount_path = "/etc/perses/dashboards"

[[artifact]]
name = "datasources"
image = "registry.company.com/perses-resources"
tag = "prod-v1.2.0"
mount_path = "/etc/perses/datasources"
pull_policy = "Never"
"#;
    let d = parse(text).unwrap();
    let mut second = artifact("datasources", "/etc/perses/datasources");
    second.pull_policy = Some(PullPolicy::Never);
    assert_eq!(
        d.artifacts,
        vec![artifact("dashboards", "/etc/perses/dashboards"), second]
    );

    // Errors in an array of tables name the element.
    let bad = text.replace("\"/etc/perses/datasources\"", "\"etc\"");
    assert_eq!(
        single(&bad),
        "environments/prod.toml:14:14: artifact[1].mount_path: must be an absolute path (got \"etc\")"
    );
}

#[test]
fn sha256_is_of_the_file_bytes() {
    let a = parse(MINIMAL).unwrap();
    assert_eq!(a.file_sha256.len(), "sha256:".len() + 64);
    let b = parse(&format!("# a comment\n{MINIMAL}")).unwrap();
    assert_ne!(a.file_sha256, b.file_sha256);
    assert_eq!(a.target, b.target);
    assert_eq!(
        super::env::sha256(b"abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

// --- one failing case per rule, with position and key ------------------------------------

#[test]
fn mount_path_must_be_absolute() {
    let text = minimal_with(
        "mount_path = \"/etc/perses/provisioning\"",
        "mount_path = \"etc/perses\"",
    );
    assert_eq!(
        single(&text),
        "environments/prod.toml:8:14: artifact.mount_path: must be an absolute path (got \"etc/perses\")"
    );
}

#[test]
fn mount_path_shapes() {
    for (path, message) in [
        ("/", "must not be \"/\", the container's root"),
        ("/etc//perses", "must not contain \"//\""),
        ("/etc/perses/", "must not end with '/'"),
        ("/etc/../perses", "must not contain a \"..\" component"),
        ("", "must not be empty"),
    ] {
        let text = minimal_with("\"/etc/perses/provisioning\"", &format!("{path:?}"));
        let d = diagnostics(&text);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key, "artifact.mount_path");
        assert_eq!(d[0].message, format!("{message} (got {path:?})"));
    }
}

#[test]
fn sub_path_rules() {
    let with = |sub: &str| format!("{MINIMAL}sub_path = {sub:?}\n");
    assert_eq!(
        parse(&with("prod")).unwrap().artifacts[0]
            .sub_path
            .as_deref(),
        Some("prod")
    );
    assert_eq!(
        single(&with("/prod")),
        "environments/prod.toml:9:12: artifact.sub_path: must be a relative path (no leading '/') (got \"/prod\")"
    );
    assert_eq!(
        diagnostics(&with("a/../b"))[0].message,
        "must not contain a \"..\" component (got \"a/../b\")"
    );
    assert!(
        diagnostics(&with(""))[0]
            .message
            .starts_with("must not be empty")
    );
}

#[test]
fn namespace_must_be_a_label() {
    let text = minimal_with("\"monitoring\"", "\"Monitoring\"");
    assert_eq!(
        single(&text),
        "environments/prod.toml:2:13: target.namespace: must be a DNS-1123 label: lowercase \
         letters, digits and '-' only (found 'M') (got \"Monitoring\")"
    );
    let long = minimal_with("\"monitoring\"", &format!("{:?}", "m".repeat(64)));
    assert!(single(&long).contains("at most 63 characters (is 64)"));
}

#[test]
fn target_values() {
    let target = |extra: &str| minimal_with("[target]\n", &format!("[target]\n{extra}\n"));
    assert_eq!(
        single(&target("workload = \"sts/perses\"")),
        "environments/prod.toml:2:12: target.workload: must be `statefulset/NAME` or \
         `deployment/NAME`: unknown kind \"sts\" (got \"sts/perses\")"
    );
    assert_eq!(
        diagnostics(&target("workload = \"perses\""))[0].message,
        "must be `statefulset/NAME` or `deployment/NAME` (got \"perses\")"
    );
    let d = diagnostics(&target("workload = \"deployment/Perses_1\""));
    assert_eq!(d[0].key, "target.workload");
    assert!(
        d[0].message
            .starts_with("name \"Perses_1\" must be a DNS-1123 subdomain")
    );
    let d = diagnostics(&target("container = \"perses.server\""));
    assert_eq!(
        (d[0].key.as_str(), d[0].line, d[0].column),
        ("target.container", 2, 13)
    );
    let d = diagnostics(&target("context = \"\""));
    assert_eq!(d[0].key, "target.context");
    assert!(d[0].message.starts_with("must not be empty"));
}

#[test]
fn artifact_values() {
    let cases = [
        (
            "name = \"perses-resources\"",
            "name = \"perses_resources\"",
            "artifact.name",
            "must be a DNS-1123 label",
        ),
        (
            "tag = \"prod-v1.2.0\"",
            "tag = \".prod\"",
            "artifact.tag",
            "must start with a letter, a digit or '_' (found '.')",
        ),
        (
            "tag = \"prod-v1.2.0\"",
            "tag = \"v1+b\"",
            "artifact.tag",
            "may contain only letters, digits, '.', '_' and '-' (found '+')",
        ),
        (
            "image = \"registry.company.com/perses-resources\"",
            "image = \"registry.company.com/perses-resources:prod-v1.2.0\"",
            "artifact.image",
            "must not include a tag: remove \":prod-v1.2.0\" and write tag = \"prod-v1.2.0\"",
        ),
        (
            "image = \"registry.company.com/perses-resources\"",
            "image = \"registry.company.com/perses-resources@sha256:abc\"",
            "artifact.image",
            "must not include a digest",
        ),
        (
            "image = \"registry.company.com/perses-resources\"",
            "image = \"registry.company.com/Perses\"",
            "artifact.image",
            "path component \"Perses\": repository paths are lowercase",
        ),
    ];
    for (from, to, key, start) in cases {
        let d = diagnostics(&minimal_with(from, to));
        assert_eq!(d.len(), 1, "{to}: {d:#?}");
        assert_eq!(d[0].key, key, "{to}");
        assert!(d[0].message.starts_with(start), "{to}: {}", d[0].message);
    }
}

#[test]
fn pull_policy_and_pin_suggest_the_right_spelling() {
    let text = format!("{MINIMAL}pull_policy = \"ifnotpresent\"\npin = \"digests\"\n");
    let d: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    assert_eq!(
        d,
        [
            "environments/prod.toml:9:15: artifact.pull_policy: must be one of Always, \
             IfNotPresent, Never; did you mean `IfNotPresent`? (got \"ifnotpresent\")",
            "environments/prod.toml:10:7: artifact.pin: must be \"digest\" or \"tag\"; did you \
             mean `digest`? (got \"digests\")",
        ]
    );
}

#[test]
fn registry_values() {
    let text = format!(
        "{MINIMAL}\n[registry]\ninsecure = [\"127.0.0.1:5000\", \"http://r.io\", 5]\nca_file = \"\"\n"
    );
    let d = diagnostics(&text);
    let got: Vec<(&str, usize, usize)> = d
        .iter()
        .map(|d| (d.key.as_str(), d.line, d.column))
        .collect();
    assert_eq!(
        got,
        [
            ("registry.insecure[1]", 11, 31),
            ("registry.insecure[2]", 11, 46),
            ("registry.ca_file", 12, 11),
        ]
    );
    assert_eq!(d[1].message, "expected a string, got integer");
    assert!(
        d[0].message
            .starts_with("must be host[:port], without a scheme")
    );
}

#[test]
fn wrong_types_are_named() {
    let text = minimal_with("\"monitoring\"", "5");
    assert_eq!(
        single(&text),
        "environments/prod.toml:2:13: target.namespace: expected a string, got integer"
    );
    let d = diagnostics("target = \"prod\"\nartifact = 1\nregistry = []\n");
    let got: Vec<String> = d
        .iter()
        .map(|d| format!("{}: {}", d.key, d.message))
        .collect();
    assert_eq!(
        got,
        [
            "target: expected a table, got string",
            "artifact: expected a table ([artifact]) or an array of tables ([[artifact]]), got integer",
            "registry: expected a table, got array",
        ]
    );
    let d = diagnostics(&minimal_with("tag = \"prod-v1.2.0\"", "tag = [\"a\"]"));
    assert_eq!(d[0].message, "expected a string, got array");
    let d = diagnostics(&minimal_with("tag = \"prod-v1.2.0\"", "tag = { a = 1 }"));
    assert_eq!(d[0].message, "expected a string, got table");
}

#[test]
fn control_characters_are_refused() {
    let text = minimal_with("tag = \"prod-v1.2.0\"", "tag = \"prod\\u0007\"");
    assert_eq!(
        single(&text),
        "environments/prod.toml:7:7: artifact.tag: must not contain control characters (found '\\u{7}')"
    );
    let text = minimal_with("[target]\n", "[target]\ncontext = \"a\\tb\"\n");
    assert_eq!(diagnostics(&text)[0].key, "target.context");
}

#[test]
fn missing_keys_are_positioned_at_their_table() {
    let text = "# prod\n[target]\ncontext = \"prod\"\n\n[artifact]\nname = \"x\"\n";
    let d: Vec<String> = diagnostics(text).iter().map(ToString::to_string).collect();
    assert_eq!(
        d,
        [
            "environments/prod.toml:2:1: target.namespace: missing required key `namespace`",
            "environments/prod.toml:5:1: artifact.image: missing required key `image`",
            "environments/prod.toml:5:1: artifact.tag: missing required key `tag`",
            "environments/prod.toml:5:1: artifact.mount_path: missing required key `mount_path`",
        ]
    );
}

#[test]
fn missing_tables() {
    let d: Vec<String> = diagnostics("").iter().map(ToString::to_string).collect();
    assert_eq!(
        d,
        [
            "environments/prod.toml:1:1: target: missing [target] table (at least `namespace` is required)",
            "environments/prod.toml:1:1: artifact: missing [artifact] table: at least one artifact is required",
        ]
    );
    let text = "[target]\nnamespace = \"m\"\nartifact = []\n";
    // `artifact = []` after [target] is a key of the target table, hence two diagnostics.
    let d = diagnostics(text);
    assert!(d.iter().any(|d| d.key == "target.artifact"), "{d:#?}");
    let text = "artifact = []\n[target]\nnamespace = \"m\"\n";
    assert_eq!(
        single(text),
        "environments/prod.toml:1:12: artifact: at least one artifact is required"
    );
}

#[test]
fn unknown_keys_suggest_the_closest_known_key() {
    let text = minimal_with("mount_path =", "mout_path =");
    let d: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    assert_eq!(
        d,
        // Not also "missing required key `mount_path`": that is the same mistake.
        [
            "environments/prod.toml:8:1: artifact.mout_path: unknown key `mout_path`; did you mean `mount_path`?"
        ]
    );
    let text = minimal_with(
        "[target]\n",
        "[target]\nnamspace = \"x\"\ncolour = \"red\"\n",
    );
    let d: Vec<String> = diagnostics(&text)
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(
        d,
        [
            "unknown key `namspace`; did you mean `namespace`?",
            "unknown key `colour` (expected one of: context, namespace, workload, container, manifest)",
        ]
    );
    let text = MINIMAL.replace("[artifact]", "[artifacts]");
    assert_eq!(
        single(&text),
        "environments/prod.toml:4:2: artifacts: unknown key `artifacts`; did you mean `artifact`?"
    );
    // Keys that are not bare are quoted in the path.
    let d = diagnostics(&minimal_with("[target]\n", "[target]\n\"a b\" = 1\n"));
    assert_eq!(d[0].key, "target.\"a b\"");
}

#[test]
fn toml_syntax_errors_name_line_and_column() {
    let text = minimal_with("tag = \"prod-v1.2.0\"", "tag = prod");
    let d = diagnostics(&text);
    assert_eq!((d[0].line, d[0].column, d[0].key.as_str()), (7, 7, ""));
    assert!(
        d[0].to_string()
            .starts_with("environments/prod.toml:7:7: invalid TOML: "),
        "{}",
        d[0]
    );
    let dup = minimal_with("[target]\n", "[target]\nnamespace = \"a\"\n");
    let d = diagnostics(&dup);
    assert_eq!((d[0].line, d[0].column), (3, 1));
    assert!(d[0].message.contains("duplicate key"), "{}", d[0].message);
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let text = r#"[target]
namespace = "Monitoring"
workload = "pod/perses"

[artifact]
name = "perses-resources"
image = "registry.company.com/perses-resources:v1"
tag = ""
mount_path = "etc"
"#;
    let d: Vec<(usize, String)> = diagnostics(text)
        .into_iter()
        .map(|d| (d.line, d.key))
        .collect();
    assert_eq!(
        d,
        [
            (2, "target.namespace".to_string()),
            (3, "target.workload".to_string()),
            (7, "artifact.image".to_string()),
            (8, "artifact.tag".to_string()),
            (9, "artifact.mount_path".to_string()),
        ]
    );
    let err = parse(text).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 5, "{err}");
    assert!(
        err.lines()
            .all(|l| l.starts_with("environments/prod.toml:"))
    );
}

#[test]
fn duplicate_names_and_mount_paths() {
    let text = r#"[target]
namespace = "monitoring"

[[artifact]]
name = "a"
image = "r.io/a"
tag = "v1"
mount_path = "/etc/perses/x"

[[artifact]]
name = "a"
image = "r.io/b"
tag = "v1"
mount_path = "/etc/perses/x"
"#;
    let d: Vec<String> = diagnostics(text).iter().map(ToString::to_string).collect();
    assert_eq!(
        d,
        [
            "environments/prod.toml:11:8: artifact[1].name: duplicate artifact name \"a\" \
             (also used by artifact[0].name on line 5)",
            "environments/prod.toml:14:14: artifact[1].mount_path: duplicate mount path \
             \"/etc/perses/x\" (also used by artifact[0].mount_path on line 8)",
        ]
    );
}

#[test]
fn environment_name_is_checked() {
    let d = match parse_env(
        "Prod",
        Path::new("environments/Prod.toml"),
        MINIMAL,
        Path::new("."),
    ) {
        Err(ConfigError::Invalid { diagnostics }) => diagnostics,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        d[0].to_string(),
        "environments/Prod.toml:1:1: environment name \"Prod\" (the file name) must be a DNS-1123 \
         label: lowercase letters, digits and '-' only (found 'P')"
    );
}

#[test]
fn columns_count_characters_and_lines_survive_crlf() {
    let text = MINIMAL
        .replace('\n', "\r\n")
        .replace("[target]", "# é\r\n[target]")
        .replace("\"monitoring\"", "\"Monitoring\"");
    let d = diagnostics(&text);
    assert_eq!((d[0].line, d[0].column), (3, 13));
    let text = minimal_with("[target]\n", "[target] # ééé\nnamespace = \"x\"\n");
    let d = diagnostics(&text);
    assert_eq!((d[0].line, d[0].column), (3, 1));
    let text = format!("{MINIMAL}[registry]\ninsecure = [\"ééé.io\", \"http://r.io\"]\n");
    let d: Vec<(usize, usize)> = diagnostics(&text)
        .iter()
        .map(|d| (d.line, d.column))
        .collect();
    assert_eq!(d, [(10, 13), (10, 23)]);
}

// --- rendering ---------------------------------------------------------------------------

fn round_trip(d: &Desired, project_dir: &Path, rendered: &str) {
    let back = parse_env(&d.env, &d.file, rendered, project_dir)
        .unwrap_or_else(|e| panic!("{e}\n---\n{rendered}"));
    let mut expected = d.clone();
    expected.file_sha256 = back.file_sha256.clone();
    assert_eq!(back, expected, "\n{rendered}");
}

#[test]
fn render_round_trips() {
    let minimal = parse(MINIMAL).unwrap();
    round_trip(&minimal, Path::new("proj"), &render_env_toml(&minimal));

    let mut full = minimal.clone();
    full.target.context = Some("it's \"quoted\" é".into());
    full.target.workload = WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: "perses.v2".into(),
    };
    full.target.container = "server".into();
    full.artifacts[0].pull_policy = Some(PullPolicy::IfNotPresent);
    full.artifacts[0].sub_path = Some("prod".into());
    full.artifacts[0].pin = Pin::Tag;
    let mut second = artifact("second", "/etc/perses/second");
    second.image = "127.0.0.1:5000/a/b".into();
    full.artifacts.push(second);
    full.registry = RegistrySettings {
        insecure: vec!["127.0.0.1:5000".into(), "[::1]:5000".into()],
        ca_file: Some(PathBuf::from("/etc/ssl/registry-ca.pem")),
    };
    round_trip(&full, Path::new("proj"), &render_env_toml(&full));

    // A relative CA file round-trips when rendered against its project directory.
    full.registry.ca_file = Some(Path::new("proj").join("certs/ca.pem"));
    let rendered = render_env_toml_in(&full, Path::new("proj"));
    assert!(
        rendered.contains("ca_file = \"certs/ca.pem\""),
        "{rendered}"
    );
    round_trip(&full, Path::new("proj"), &rendered);
}

#[test]
fn render_writes_a_clean_file() {
    let minimal = parse(MINIMAL).unwrap();
    let text = render_env_toml(&minimal);
    assert_eq!(
        text,
        r#"# perses-oci environment "prod".
# `perses-oci plan --env prod` shows what applying this file would change.

# The workload perses-oci edits: only its image volumes and their mounts.
[target]
# context = "..."   # kubeconfig context; the current one when unset
namespace = "monitoring"
workload = "statefulset/perses"
container = "perses"

# An OCI image mounted read-only into the container.
[artifact]
name = "perses-resources"
image = "registry.company.com/perses-resources"
tag = "prod-v1.2.0"
mount_path = "/etc/perses/provisioning"
"#
    );

    let mut two = minimal.clone();
    two.artifacts.push(artifact("b", "/b"));
    let text = render_env_toml(&two);
    assert_eq!(text.matches("\n[[artifact]]\n").count(), 2, "{text}");
    assert!(
        !text.contains("\n\n[[artifact]]"),
        "comment before each artifact: {text}"
    );
    assert!(!text.contains("\n[artifact]\n"));
    assert!(!text.contains("pin ="));
    assert!(!text.contains("[registry]"));
}

// --- project settings and selection ------------------------------------------------------

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn project(envs: &[&str], order: &[&str]) -> Project {
    Project {
        dir: PathBuf::from("proj"),
        settings: ProjectSettings {
            order: names(order),
        },
        envs: names(envs),
    }
}

#[test]
fn settings_are_validated() {
    let file = Path::new("perses-oci.toml");
    let envs = names(&["dev", "prod", "staging"]);
    assert_eq!(
        parse_settings(file, "order = [\"staging\", \"prod\"]\n", &envs).unwrap(),
        ProjectSettings {
            order: names(&["staging", "prod"])
        }
    );
    assert_eq!(
        parse_settings(file, "", &envs).unwrap(),
        ProjectSettings::default()
    );
    let err = parse_settings(
        file,
        "# order\norder = [\"staging\", \"prd\", \"staging\"]\nordr = 1\n",
        &envs,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "perses-oci.toml:2:21: order[1]: no environment named \"prd\" (known: dev, prod, \
         staging); did you mean `prod`?\n\
         perses-oci.toml:2:28: order[2]: \"staging\" is listed twice (first as order[0])\n\
         perses-oci.toml:3:1: ordr: unknown key `ordr`; did you mean `order`?"
    );
    let err = parse_settings(file, "order = \"prod\"", &envs).unwrap_err();
    assert_eq!(
        err.to_string(),
        "perses-oci.toml:1:9: order: expected an array of strings, got string"
    );
}

#[test]
fn select_by_name_keeps_the_given_order() {
    let p = project(&["dev", "prod", "staging"], &["staging", "prod"]);
    assert_eq!(
        p.select(&names(&["prod", "dev", "prod"]), false).unwrap(),
        names(&["prod", "dev"])
    );
    let err = p.select(&names(&["dev", "qa"]), false).unwrap_err();
    assert!(matches!(&err, ConfigError::UnknownEnvironment { name, .. } if name == "qa"));
    assert_eq!(
        err.to_string(),
        format!(
            "no environment named qa in {} (known: dev, prod, staging)",
            Path::new("proj").join("environments").display()
        )
    );
}

#[test]
fn select_all_follows_the_configured_order() {
    let p = project(&["a", "dev", "prod", "staging"], &["staging", "prod"]);
    assert_eq!(
        p.select(&[], true).unwrap(),
        names(&["staging", "prod", "a", "dev"])
    );
    let p = project(&["b", "a"], &[]);
    assert_eq!(p.select(&[], true).unwrap(), names(&["b", "a"]));
}

#[test]
fn select_without_names() {
    assert_eq!(
        project(&["prod"], &[]).select(&[], false).unwrap(),
        names(&["prod"])
    );
    let err = project(&["prod", "staging"], &[])
        .select(&[], false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "name environments with --env NAME or use --all (known: prod, staging)"
    );
    let err = project(&[], &[]).select(&[], true).unwrap_err();
    assert!(matches!(err, ConfigError::NoEnvironments { .. }), "{err}");
}

// --- loading from disk -------------------------------------------------------------------

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn load_project_lists_environments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "environments/staging.toml", MINIMAL);
    write(dir, "environments/prod.toml", MINIMAL);
    write(dir, "environments/README.md", "not an environment");
    write(dir, "environments/.#prod.toml", "editor lock");
    write(dir, "environments/prod.toml~", "backup");
    std::fs::create_dir(dir.join("environments/dir.toml")).unwrap();
    write(dir, "perses-oci.toml", "order = [\"staging\", \"prod\"]\n");
    let p = load_project(dir).unwrap();
    assert_eq!(p.dir, dir);
    assert_eq!(p.envs, names(&["prod", "staging"]));
    assert_eq!(p.settings.order, names(&["staging", "prod"]));
    assert_eq!(p.select(&[], true).unwrap(), names(&["staging", "prod"]));

    let d = load_env(&p, "prod").unwrap();
    assert_eq!(d.env, "prod");
    assert_eq!(d.file, dir.join("environments").join("prod.toml"));
    assert_eq!(d.file_sha256, sha256_hex(MINIMAL.as_bytes()));

    let err = load_env(&p, "qa").unwrap_err();
    assert!(
        matches!(err, ConfigError::UnknownEnvironment { .. }),
        "{err}"
    );
}

#[test]
fn load_project_refuses_bad_names_and_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "environments/Prod_EU.toml", MINIMAL);
    let err = load_project(dir).unwrap_err();
    let ConfigError::Invalid { diagnostics } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        diagnostics[0].file,
        dir.join("environments").join("Prod_EU.toml")
    );
    assert!(
        diagnostics[0]
            .message
            .starts_with("environment name \"Prod_EU\" (the file name)")
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "environments/prod.toml", MINIMAL);
    write(dir, "perses-oci.toml", "order = [\"staging\"]\n");
    let err = load_project(dir).unwrap_err();
    assert!(
        err.to_string()
            .contains("order[0]: no environment named \"staging\""),
        "{err}"
    );
}

#[test]
fn load_project_without_environments() {
    let tmp = tempfile::tempdir().unwrap();
    let p = load_project(tmp.path()).unwrap();
    assert!(p.envs.is_empty());
    let err = p.select(&names(&["prod"]), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no environments in {}: create {} with a [target] and an [artifact] table",
            tmp.path().join("environments").display(),
            tmp.path().join("environments").join("NAME.toml").display()
        )
    );

    let missing = tmp.path().join("nope");
    let err = load_project(&missing).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Io { path, .. } if *path == missing),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display()))
    );
}

#[test]
fn load_env_checks_the_ca_file_and_encoding() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let text = format!("{MINIMAL}\n[registry]\nca_file = \"certs/ca.pem\"\n");
    write(dir, "environments/prod.toml", &text);
    write(
        dir,
        "environments/dev.toml",
        "[target]\nnamespace = \"\u{e9}\"\n",
    );
    let p = load_project(dir).unwrap();
    let err = load_env(&p, "prod").unwrap_err();
    let ConfigError::Invalid { diagnostics } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        (
            diagnostics[0].line,
            diagnostics[0].column,
            diagnostics[0].key.as_str()
        ),
        (11, 11, "registry.ca_file")
    );
    write(dir, "certs/ca.pem", "-----BEGIN CERTIFICATE-----\n");
    let d = load_env(&p, "prod").unwrap();
    assert_eq!(d.registry.ca_file, Some(dir.join("certs/ca.pem")));

    let mut bytes = b"[target]\nnamespace = \"m".to_vec();
    bytes.push(0xff);
    std::fs::write(dir.join("environments/dev.toml"), bytes).unwrap();
    let err = load_env(&p, "dev").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:15: not valid UTF-8 (TOML files must be UTF-8)",
            dir.join("environments").join("dev.toml").display()
        )
    );
}

#[test]
fn the_repository_environments_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = load_project(dir).unwrap();
    for name in ["prod", "staging"] {
        assert!(p.envs.iter().any(|e| e == name), "{:?}", p.envs);
        let d = load_env(&p, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.target.context.as_deref(), Some(name));
        assert_eq!(d.target.namespace, "monitoring");
        assert_eq!(d.target.workload.to_string(), "statefulset/perses");
        assert_eq!(d.artifacts.len(), 1);
        let a = &d.artifacts[0];
        assert_eq!(a.name, "perses-resources");
        assert_eq!(a.image, "registry.company.com/perses-resources");
        assert_eq!(a.mount_path, "/etc/perses/provisioning");
        assert_eq!(a.sub_path.as_deref(), Some(name));
    }
    let prod = load_env(&p, "prod").unwrap();
    assert_eq!(prod.artifacts[0].tag, "prod-v1.2.0");
    let staging = load_env(&p, "staging").unwrap();
    assert_eq!(staging.artifacts[0].tag, "staging-v1.3.0-rc.1");
}

#[test]
fn the_examples_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/environments");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        parse_env(name, &path, &text, &dir).unwrap_or_else(|e| panic!("{e}"));
        seen += 1;
    }
    assert!(seen > 0);
}

#[test]
fn a_manifest_target_needs_no_namespace_and_excludes_context() {
    let text = MINIMAL.replace(
        "namespace = \"monitoring\"",
        "manifest = \"deploy/perses.yaml\"",
    );
    let d = parse(&text).unwrap();
    assert_eq!(
        d.target.manifest,
        Some(PathBuf::from("proj/deploy/perses.yaml"))
    );
    assert_eq!(d.target.namespace, "");
    let both = text.replace("[target]\n", "[target]\ncontext = \"prod\"\n");
    assert_eq!(
        single(&both),
        "environments/prod.toml:2:11: target.context: `context` and `manifest` exclude each other: a target is a cluster or a manifest file"
    );
}

#[test]
fn an_oci_layout_image_is_accepted_with_a_path_only() {
    let ok = MINIMAL.replace("registry.company.com/perses-resources", "oci:build/layout");
    assert_eq!(parse(&ok).unwrap().artifacts[0].image, "oci:build/layout");
    let bad = MINIMAL.replace(
        "registry.company.com/perses-resources",
        "oci:build/layout:v1",
    );
    assert!(
        single(&bad).contains("an OCI layout is written `oci:PATH`"),
        "{}",
        single(&bad)
    );
}

#[test]
fn a_layout_source_beside_a_registry_image() {
    let ok = format!("{MINIMAL}source = \"oci:build/layout\"\n");
    let a = &parse(&ok).unwrap().artifacts[0];
    assert_eq!(a.image, "registry.company.com/perses-resources");
    assert_eq!(a.source.as_deref(), Some("oci:build/layout"));
    assert_eq!(
        single(&format!("{MINIMAL}source = \"build/layout\"\n")),
        "environments/prod.toml:9:10: artifact.source: must be an OCI layout, `oci:PATH`; a registry is named by `image` (got \"build/layout\")"
    );
    assert!(
        single(&format!("{MINIMAL}source = \"oci:build/layout:v1\"\n")).starts_with(
            "environments/prod.toml:9:10: artifact.source: an OCI layout is written `oci:PATH`"
        ),
    );
    let both = ok.replace("registry.company.com/perses-resources", "oci:build/other");
    assert_eq!(
        single(&both),
        "environments/prod.toml:9:10: artifact.source: `image` is already an OCI layout: `source` is for an `image` that names the registry repository the workload pulls"
    );
}
