//! The README's first command, run exactly as written from a fresh clone in a temporary
//! directory: the whole main job on the embedded defaults, with no cluster and no registry.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first command of the README's opening code block.
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("a sh code block at the top");
    let line = block.lines().next().unwrap();
    line.split(" #").next().unwrap().trim().to_string()
}

#[test]
fn readme_main_command_runs_from_a_fresh_clone() {
    let cmd = readme_first_command();
    assert_eq!(
        cmd, "scripts/quickstart",
        "the README's first command changed: update this test"
    );
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("perses-oci");
    let st = Command::new("git")
        .args([
            "clone",
            "--quiet",
            repo().to_str().unwrap(),
            clone.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&cmd)
        .current_dir(&clone)
        // Its own target directory: built once, then cached across runs (a fresh clone would
        // otherwise compile every dependency again each time).
        .env("CARGO_TARGET_DIR", repo().join("target/quickstart"))
        .env("QUICKSTART_DIR", tmp.path().join("work"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let expect_in_order = [
        "$ perses-oci push resources --to oci:build/layout:v1",
        "pushed oci:build/layout:v1@sha256:",
        "$ perses-oci plan --all",
        "Environment staging (manifest deploy/staging/perses.yaml",
        "+ Dashboard shop/checkout (added, checkout.json)",
        "Warning: artifact \"perses-resources\": the nodes will pull registry.example.com/perses-resources:v1@sha256:",
        "skopeo copy --all oci:build/layout:v1 docker://registry.example.com/perses-resources:v1",
        "Plan: 2 to add, 0 to change, 0 to remove.",
        "$ perses-oci apply --all --auto-approve",
        "staging: wrote deploy/staging/perses.yaml",
        "prod: wrote deploy/prod/perses.yaml",
        "Apply complete! 2 added, 0 changed, 0 removed. Applied: staging, prod.",
        "+            - name: perses-resources",
        "+            reference: registry.example.com/perses-resources:v1@sha256:",
        "$ skopeo copy --all oci:build/layout:v1 docker://registry.example.com/perses-resources:v1",
        "$ perses-oci plan --all --detailed-exitcode",
        "No changes.",
        "$ perses-oci plan --env prod",
        "tag changed (v1 -> v2)",
        "Content: 0 added, 1 changed, 0 removed (3 unchanged)",
        "~ Dashboard shop/latency (changed, latency.yaml)",
        "-    name: Checkout latency",
        "+    name: Checkout latency (SLO 300 ms)",
        "Plan: 0 to add, 1 to change, 0 to remove.",
    ];
    let mut at = 0;
    for e in expect_in_order {
        match stdout[at..].find(e) {
            Some(i) => at += i + e.len(),
            None => panic!("missing (in order) {e:?} in:\n{stdout}"),
        }
    }
    // No machine path leaks into what a user reads, and the repository copy is untouched.
    assert!(!stdout.contains(repo().to_str().unwrap()), "{stdout}");
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&clone)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "the clone was modified"
    );
}
