//! Progress is drawn for a person at a terminal only: the real binary run under a
//! pseudo-terminal (util-linux `script`) draws its spinner on stderr, in colour unless NO_COLOR
//! or --no-color; in a pipe, with CI set, or with JSON output it draws nothing.

use std::path::Path;
use std::process::Command;

/// A tree of `n` dashboards (the quickstart's latency dashboard, renamed), JSON and YAML.
fn tree(root: &Path, n: usize) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/resources/prod");
    let dir = root.join("tree/prod");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("project.json"), dir.join("project.json")).unwrap();
    let yaml = std::fs::read_to_string(src.join("latency.yaml")).unwrap();
    for i in 0..n {
        let text = yaml.replace("name: latency", &format!("name: latency-{i}"));
        std::fs::write(dir.join(format!("latency-{i}.yaml")), text).unwrap();
    }
}

/// Runs `perses-oci ARGS` in `dir` under a pseudo-terminal; returns everything it drew.
fn under_pty(dir: &Path, args: &str, env: &[(&str, &str)]) -> String {
    let bin = env!("CARGO_BIN_EXE_perses-oci");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .env_remove("CI")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("util-linux script runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CYAN: &str = "\x1b[36m";

#[test]
fn push_draws_files_and_bytes_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path(), 1500);
    let drawn = under_pty(tmp.path(), "push tree --to oci:a:v1 --no-cache", &[]);
    assert!(drawn.contains("packing: "), "{drawn}");
    assert!(drawn.contains(" files ("), "{drawn}");
    assert!(drawn.contains(CYAN), "coloured on a terminal: {drawn:?}");
    assert!(drawn.contains("pushed oci:a:v1@sha256:"), "{drawn}");

    let plain = under_pty(
        tmp.path(),
        "push tree --to oci:b:v1 --no-cache",
        &[("NO_COLOR", "1")],
    );
    assert!(plain.contains("packing: "), "{plain}");
    assert!(!plain.contains(CYAN), "NO_COLOR: {plain:?}");
    let flag = under_pty(
        tmp.path(),
        "--no-color push tree --to oci:c:v1 --no-cache",
        &[],
    );
    assert!(!flag.contains(CYAN), "--no-color: {flag:?}");

    let ci = under_pty(
        tmp.path(),
        "push tree --to oci:d:v1 --no-cache",
        &[("CI", "true")],
    );
    assert!(!ci.contains("packing: "), "CI: {ci}");
    assert!(ci.contains("pushed oci:d:v1@sha256:"), "{ci}");

    // A pipe: neither stdout nor stderr is a terminal.
    let bin = env!("CARGO_BIN_EXE_perses-oci");
    let out = Command::new(bin)
        .args(["push", "tree", "--to", "oci:e:v1", "--no-cache"])
        .current_dir(tmp.path())
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = [out.stdout, out.stderr].concat();
    let all = String::from_utf8_lossy(&all);
    assert!(!all.contains("packing: ") && !all.contains('\x1b'), "{all}");
}

#[test]
fn json_output_draws_nothing_even_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path(), 10);
    let drawn = under_pty(tmp.path(), "lint tree --format json", &[]);
    assert!(drawn.trim_start().starts_with('{'), "{drawn:?}");
    assert!(!drawn.contains('\x1b'), "{drawn:?}");
}
