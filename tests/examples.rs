//! The deployable examples stay true: the GitHub workflows and Kubernetes manifests parse, every
//! `perses-oci` command line in them uses subcommands and flags the real binary has (checked
//! against its `--help`), and the Containerfile is a sequence of known instructions. No bed: the
//! server-side dry run of the Kubernetes objects is in tests/bed/drift.rs.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    out.sort();
    out
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn one_doc(path: &Path) -> Value {
    let mut d = docs(path);
    assert_eq!(d.len(), 1, "{}: one document", path.display());
    d.remove(0)
}

/// Shell words and operators of a script, with quotes removed. Enough shell for the examples:
/// quotes, backslash-newline, comments, `| || && ; ( ) $(` (not inside double quotes) and
/// redirections.
fn shell_tokens(script: &str) -> Vec<Vec<String>> {
    let script = script.replace("\\\n", " ");
    let mut commands: Vec<Vec<String>> = vec![vec![]];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let push_word = |word: &mut String, in_word: &mut bool, cmds: &mut Vec<Vec<String>>| {
        if *in_word {
            cmds.last_mut().unwrap().push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                commands.push(vec![]);
            }
            '\n' | '|' | '&' | ';' | '(' | ')' => {
                push_word(&mut word, &mut in_word, &mut commands);
                commands.push(vec![]);
            }
            '$' if chars.peek() == Some(&'(') => {
                push_word(&mut word, &mut in_word, &mut commands);
                chars.next();
                commands.push(vec![]);
            }
            '>' | '<' => {
                // A redirection ends the words of the command: drop its target.
                push_word(&mut word, &mut in_word, &mut commands);
                commands.last_mut().unwrap().push(">".into());
            }
            c if c.is_whitespace() => push_word(&mut word, &mut in_word, &mut commands),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    push_word(&mut word, &mut in_word, &mut commands);
    commands
        .into_iter()
        .map(|mut words| {
            // `2>file`: the `2` is the redirected descriptor, not an argument.
            if let Some(i) = words.iter().position(|w| w == ">") {
                words.truncate(i);
                if words.last().is_some_and(|w| w == "2" || w == "1") {
                    words.pop();
                }
            }
            words
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// `NAME=value` before a command: an environment assignment, not the command.
fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Every `perses-oci ...` command of a script (leading `VAR=value` assignments skipped).
fn perses_oci_commands(script: &str) -> Vec<Vec<String>> {
    shell_tokens(script)
        .into_iter()
        .filter_map(|words| {
            let start = words.iter().position(|w| !is_assignment(w))?;
            (words[start] == "perses-oci").then(|| words[start..].to_vec())
        })
        .collect()
}

fn help(args: &[&str]) -> Option<String> {
    let out = assert_cmd::Command::cargo_bin("perses-oci")
        .unwrap()
        .args(args)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Whether `flag` (e.g. `--format`) is listed in a help text as a whole flag.
fn lists_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let before = help[..i].chars().last();
        let after = help[i + flag.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

/// Checks one command line against the real binary; returns its subcommand.
fn check_command(words: &[String], origin: &str) -> String {
    assert_eq!(words[0], "perses-oci");
    let mut i = 1;
    // Global flags may come before the subcommand.
    while i < words.len() && words[i].starts_with('-') {
        let takes_value = ["--dir", "--kubeconfig"].contains(&words[i].as_str());
        i += if takes_value { 2 } else { 1 };
    }
    let sub = words
        .get(i)
        .unwrap_or_else(|| panic!("{origin}: no subcommand in {words:?}"));
    let text = help(&[sub])
        .unwrap_or_else(|| panic!("{origin}: `perses-oci {sub}` is not a subcommand ({words:?})"));
    let mut j = 1;
    while j < words.len() {
        let w = &words[j];
        if let Some(flag) = w.strip_prefix("--").map(|_| w.split('=').next().unwrap()) {
            assert!(
                lists_flag(&text, flag),
                "{origin}: `perses-oci {sub}` has no flag {flag} ({words:?})"
            );
            if flag == "--format" {
                let value = match w.split_once('=') {
                    Some((_, v)) => v.to_string(),
                    None => words.get(j + 1).cloned().unwrap_or_default(),
                };
                assert!(
                    text.contains("possible values") && lists_flag(&text, &value),
                    "{origin}: --format {value} is not a possible value"
                );
            }
        }
        j += 1;
    }
    sub.clone()
}

fn workflow(name: &str) -> (PathBuf, Value) {
    let path = root().join("examples/github").join(name);
    let v = one_doc(&path);
    (path, v)
}

/// (job name, job, its `run` scripts).
fn jobs(v: &Value) -> Vec<(String, Value, Vec<String>)> {
    v["jobs"]
        .as_object()
        .expect("jobs")
        .iter()
        .map(|(name, job)| {
            let runs = job["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .filter_map(|s| s["run"].as_str().map(str::to_string))
                .collect();
            (name.clone(), job.clone(), runs)
        })
        .collect()
}

#[test]
fn shell_tokenizer_finds_perses_oci_commands() {
    let script = "set -o pipefail\nX=1 perses-oci drift --all --format markdown | tee -a \"$F\"\n\
                  cargo install --git https://x/perses-oci perses-oci # not a perses-oci command\n\
                  perses-oci plan --all \\\n  --out 'plan.json' > plan.md 2>err\n\
                  v=$(perses-oci --dir . history --env prod)";
    let cmds = perses_oci_commands(script);
    let want: Vec<Vec<&str>> = vec![
        vec!["perses-oci", "drift", "--all", "--format", "markdown"],
        vec!["perses-oci", "plan", "--all", "--out", "plan.json"],
        vec!["perses-oci", "--dir", ".", "history", "--env", "prod"],
    ];
    assert_eq!(cmds, want);
    assert!(lists_flag("  --out <FILE>  x", "--out"));
    assert!(!lists_flag("  --output <FILE>", "--out"));
    assert!(!lists_flag("  --no-wait", "--wait"));
}

#[test]
fn checker_rejects_unknown_subcommands_flags_and_formats() {
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(
        check_command(
            &words("perses-oci --dir . drift --all --metrics-file m.prom"),
            "t"
        ),
        "drift"
    );
    for bad in [
        "perses-oci drift --al",
        "perses-oci drfit --all",
        "perses-oci drift --format yaml",
        "perses-oci apply --env prod --yes",
    ] {
        let w = words(bad);
        let caught = std::panic::catch_unwind(|| check_command(&w, "t"));
        assert!(caught.is_err(), "{bad} passed the check");
    }
}

#[test]
fn every_workflow_parses_and_uses_real_flags() {
    let files = yaml_files("examples/github");
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        ["apply.yml", "drift.yml", "plan.yml"]
            .map(String::from)
            .into()
    );
    for path in files {
        let origin = path.display().to_string();
        let v = one_doc(&path);
        assert!(v["name"].is_string(), "{origin}: name");
        assert!(
            v["on"].is_object(),
            "{origin}: `on` (YAML 1.2 keeps it a string key)"
        );
        let mut checked = 0;
        for (job, j, runs) in jobs(&v) {
            assert!(j["runs-on"].is_string(), "{origin}: {job}: runs-on");
            for script in runs {
                for cmd in perses_oci_commands(&script) {
                    check_command(&cmd, &format!("{origin}: job {job}"));
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "{origin}: no perses-oci command found");
    }
}

#[test]
fn plan_workflow_comments_once_and_updates() {
    let (_, v) = workflow("plan.yml");
    assert!(v["on"]["pull_request"].is_object());
    assert_eq!(v["permissions"]["pull-requests"], "write");
    let (_, job, runs) = jobs(&v).remove(0);
    let cmds: Vec<Vec<String>> = runs.iter().flat_map(|r| perses_oci_commands(r)).collect();
    assert_eq!(
        cmds,
        vec![
            [
                "perses-oci",
                "plan",
                "--all",
                "--format",
                "markdown",
                "--out",
                "plan.json"
            ]
            .map(String::from)
            .to_vec()
        ]
    );
    let script = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/github-script@"))
        })
        .expect("a github-script step")["with"]["script"]
        .as_str()
        .unwrap()
        .to_string();
    for needle in [
        "<!-- perses-oci-plan -->",
        "listComments",
        "updateComment",
        "createComment",
        "65536",
    ] {
        assert!(script.contains(needle), "{needle} in:\n{script}");
    }
}

#[test]
fn apply_workflow_has_one_job_per_environment_and_protects_prod() {
    let (_, v) = workflow("apply.yml");
    assert_eq!(v["on"]["push"]["branches"], serde_json::json!(["main"]));
    assert_eq!(v["concurrency"]["cancel-in-progress"], false);
    let jobs = jobs(&v);
    let mut envs = Vec::new();
    for (name, job, runs) in &jobs {
        let cmds: Vec<Vec<String>> = runs.iter().flat_map(|r| perses_oci_commands(r)).collect();
        assert_eq!(cmds.len(), 1, "{name}: one apply");
        let c = &cmds[0];
        assert_eq!(c[1], "apply", "{name}: {c:?}");
        assert!(c.contains(&"--auto-approve".to_string()), "{c:?}");
        let env = &c[c.iter().position(|w| w == "--env").expect("--env") + 1];
        let protected = job["environment"]
            .as_str()
            .or_else(|| job["environment"]["name"].as_str());
        assert_eq!(protected, Some(env.as_str()), "{name}: GitHub environment");
        envs.push(env.clone());
    }
    assert!(envs.contains(&"prod".to_string()), "{envs:?}");
    let (_, prod, _) = jobs
        .iter()
        .find(|(_, j, _)| j["environment"] == "prod")
        .unwrap();
    assert!(
        !prod["needs"].is_null(),
        "prod runs after the other environments"
    );
}

#[test]
fn drift_workflow_runs_on_a_schedule_and_fails_on_drift() {
    let (_, v) = workflow("drift.yml");
    assert!(v["on"]["schedule"][0]["cron"].is_string());
    let (_, _, runs) = jobs(&v).remove(0);
    let script = runs
        .iter()
        .find(|r| !perses_oci_commands(r).is_empty())
        .unwrap();
    let cmd = &perses_oci_commands(script)[0];
    assert_eq!(cmd[..3], ["perses-oci", "drift", "--all"]);
    // Piped into tee: without pipefail the step would take tee's status, and exit 2 would be
    // lost.
    if script.contains('|') {
        assert!(script.contains("set -o pipefail"), "{script}");
    }
}

fn kubernetes_docs() -> Vec<Value> {
    yaml_files("examples/kubernetes")
        .iter()
        .flat_map(|p| docs(p))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in examples/kubernetes"))
}

#[test]
fn kubernetes_cronjob_runs_drift_as_its_read_only_service_account() {
    let docs = kubernetes_docs();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "CronJob",
            "Role",
            "RoleBinding",
            "ServiceAccount"
        ]
        .into()
    );
    let sa = find(&docs, "ServiceAccount")["metadata"]["name"].clone();
    let cron = find(&docs, "CronJob");
    assert_eq!(cron["spec"]["schedule"], "*/15 * * * *");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa);
    let binding = find(&docs, "RoleBinding");
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], sa);
    let role = find(&docs, "Role");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    // Read-only, exactly as perses-oci-plan in examples/rbac.yaml.
    let plan_role = docs_of_rbac()
        .into_iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "perses-oci-plan")
        .unwrap();
    assert_eq!(role["rules"], plan_role["rules"]);

    let c = &pod["containers"][0];
    let mut words = vec!["perses-oci".to_string()];
    words.extend(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    assert_eq!(check_command(&words, "cronjob.yaml"), "drift");
    assert!(words.contains(&"--all".to_string()));
    let dir = &words[words.iter().position(|w| w == "--dir").unwrap() + 1];
    let cm_name = find(&docs, "ConfigMap")["metadata"]["name"].clone();
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == cm_name)
        .expect("the ConfigMap is a volume");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == vol["name"])
        .expect("and mounted");
    assert_eq!(mount["mountPath"], format!("{dir}/environments"));
}

fn docs_of_rbac() -> Vec<Value> {
    docs(&root().join("examples/rbac.yaml"))
}

/// The ConfigMap as the kubelet lays it out (`..data` links to a hidden timestamped directory,
/// each key links into `..data`) is a valid project, and its files have no `context`.
#[test]
#[cfg(unix)]
fn kubernetes_environments_configmap_is_a_valid_project() {
    let docs = kubernetes_docs();
    let cm = find(&docs, "ConfigMap");
    let project = tempfile::tempdir().unwrap();
    let envs = project.path().join("environments");
    let stamp = envs.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir_all(&stamp).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", envs.join("..data")).unwrap();
    let data = cm["data"].as_object().unwrap();
    for (key, text) in data {
        let text = text.as_str().unwrap();
        assert!(key.ends_with(".toml"), "{key}");
        assert!(!text.contains("context"), "{key}: no context in a pod");
        std::fs::write(stamp.join(key), text).unwrap();
        std::os::unix::fs::symlink(format!("..data/{key}"), envs.join(key)).unwrap();
    }
    let out = assert_cmd::Command::cargo_bin("perses-oci")
        .unwrap()
        .arg("--dir")
        .arg(project.path())
        .arg("validate")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": ok (").count(), data.len(), "{stdout}");
}

const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// `(INSTRUCTION, arguments)` of a Containerfile: comments dropped, continuations joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        // A comment line inside a continued instruction is skipped, as the builders do.
        if t.starts_with('#') {
            continue;
        }
        current.push_str(t);
        let (word, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((word.to_string(), rest.trim().to_string()));
        current.clear();
    }
    assert!(current.is_empty(), "a continuation runs past the end");
    out
}

#[test]
fn containerfile_is_a_multi_stage_build_of_known_instructions() {
    let text = std::fs::read_to_string(root().join("Containerfile")).unwrap();
    let ins = instructions(&text);
    for (word, _) in &ins {
        assert!(
            INSTRUCTIONS.contains(&word.as_str()),
            "unknown instruction {word}"
        );
    }
    assert_eq!(ins[0].0, "FROM");
    let stages: Vec<&str> = ins
        .iter()
        .filter(|(w, _)| w == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let names: Vec<&str> = stages
        .iter()
        .filter_map(|a| {
            let parts: Vec<&str> = a.split_whitespace().collect();
            (parts.len() == 3 && parts[1].eq_ignore_ascii_case("AS")).then(|| parts[2])
        })
        .collect();
    let last = stages.last().unwrap();
    assert!(
        last.contains("distroless/static") || *last == "scratch",
        "a static final image: {last}"
    );
    let mut after_last_from = false;
    let mut entrypoint = false;
    for (word, args) in &ins {
        if word == "FROM" {
            after_last_from = std::ptr::eq(args.as_str(), *last);
        }
        if word == "COPY" {
            let parts: Vec<&str> = args.split_whitespace().collect();
            match parts.iter().find_map(|p| p.strip_prefix("--from=")) {
                Some(stage) => {
                    assert!(names.contains(&stage), "COPY --from={stage}: no such stage")
                }
                None => {
                    // Build context sources exist in the repository.
                    let sources: Vec<&str> = parts
                        .iter()
                        .filter(|p| !p.starts_with("--"))
                        .copied()
                        .collect();
                    for s in &sources[..sources.len() - 1] {
                        assert!(root().join(s).exists(), "COPY {s}: not in the repository");
                    }
                }
            }
        }
        if word == "ENTRYPOINT" && after_last_from {
            let v: Vec<String> = serde_json::from_str(args).expect("exec-form ENTRYPOINT");
            assert!(v[0].ends_with("/perses-oci"), "{v:?}");
            entrypoint = true;
        }
        if word == "RUN" && args.contains("cargo build") {
            assert!(args.contains("--locked") && args.contains("musl"), "{args}");
        }
    }
    assert!(entrypoint, "the final stage has an ENTRYPOINT");
    assert!(
        ins.iter()
            .any(|(w, a)| w == "USER" && !a.starts_with("0") && !a.starts_with("root")),
        "runs as non-root"
    );
}

/// Builds the image for real. Opt-in (PERSES_OCI_TEST_CONTAINER_BUILD=1) because it needs a
/// container registry (base images) and the Rust crate registry, which these test machines do not reach.
#[test]
fn containerfile_builds_with_buildah() {
    if std::env::var_os("PERSES_OCI_TEST_CONTAINER_BUILD").is_none() {
        eprintln!("skipped: set PERSES_OCI_TEST_CONTAINER_BUILD=1 (needs buildah and network)");
        return;
    }
    let status = std::process::Command::new("buildah")
        .args([
            "build",
            "-f",
            "Containerfile",
            "-t",
            "localhost/perses-oci:test",
            ".",
        ])
        .current_dir(root())
        .status()
        .expect("buildah is installed");
    assert!(status.success(), "buildah build failed");
    let out = std::process::Command::new("buildah")
        .args([
            "inspect",
            "--format",
            "{{.OCIv1.Config.Entrypoint}}",
            "localhost/perses-oci:test",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("/usr/local/bin/perses-oci"));
}
