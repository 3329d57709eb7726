//! `perses-oci completions` and `perses-oci man`, run as a user would: the completion scripts
//! loaded into real bash, zsh and fish, the man pages formatted by groff.

use assert_cmd::Command;
use std::process::Command as Proc;

fn perses_oci() -> Command {
    Command::cargo_bin("perses-oci").unwrap()
}

fn script(shell: &str) -> String {
    let out = perses_oci().args(["completions", shell]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn have(tool: &str) -> bool {
    Proc::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What bash offers after `words` (the last one being completed), with the script loaded.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("perses-oci.bash");
    std::fs::write(&file, script("bash")).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\nfn=$(complete -p perses-oci | sed 's/.* -F \\([^ ]*\\) .*/\\1/')\n\"$fn\" perses-oci '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Proc::new("bash").arg("-c").arg(program).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_and_flags() {
    let commands = bash_complete(&["perses-oci", "pl"]);
    assert_eq!(commands, ["plan"], "{commands:?}");
    let flags = bash_complete(&["perses-oci", "plan", "--det"]);
    assert_eq!(flags, ["--detailed-exitcode"], "{flags:?}");
    let formats = bash_complete(&["perses-oci", "plan", "--format", ""]);
    for f in ["human", "json", "markdown"] {
        assert!(formats.iter().any(|x| x == f), "{formats:?}");
    }
    let unlock = bash_complete(&["perses-oci", "force-unlock", "--e"]);
    assert_eq!(unlock, ["--env"], "{unlock:?}");
    let shells = bash_complete(&["perses-oci", "completions", "f"]);
    assert_eq!(shells, ["fish"], "{shells:?}");
}

#[test]
fn fish_completes_commands_and_flags() {
    if !have("fish") {
        panic!("fish is not installed: scripts/testbed install brings it");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("perses-oci.fish");
    std::fs::write(&file, script("fish")).unwrap();
    let run = |line: &str| -> Vec<String> {
        let out = Proc::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(format!("source '{}'; complete -C '{line}'", file.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    let commands = run("perses-oci dr");
    assert!(commands.iter().any(|c| c == "drift"), "{commands:?}");
    let flags = run("perses-oci apply --force-c");
    assert_eq!(flags, ["--force-conflicts"], "{flags:?}");
}

#[test]
fn zsh_loads_the_completion_function() {
    if !have("zsh") {
        panic!("zsh is not installed: scripts/testbed install brings it");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("_perses-oci"), script("zsh")).unwrap();
    // compinit finds `_perses-oci` on fpath and binds it to the command, as a user's .zshrc does.
    let program = format!(
        "fpath=('{}' $fpath); autoload -U compinit; compinit -u -D; print -r -- ${{_comps[perses-oci]}}; autoload -Uz +X _perses-oci && print -r -- loaded",
        dir.path().display()
    );
    let out = Proc::new("zsh")
        .args(["-f", "-c", &program])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["_perses-oci", "loaded"],
        "{stdout}"
    );
    let text = script("zsh");
    assert!(text.contains("--detailed-exitcode"), "{text}");
}

#[test]
fn man_pages_format_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    perses_oci()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .assert()
        .success();
    let page = |name: &str| {
        let out = Proc::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.path().join(name))
            .output()
            .expect("groff is installed: scripts/testbed install brings it");
        assert!(out.status.success(), "{name}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "groff warns on {name}"
        );
        let out = Proc::new("groff")
            .args(["-man", "-Tutf8", "-P-c", "-P-b", "-P-u"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let main = page("perses-oci.1");
    assert!(main.contains("Declarative reconciler"), "{main}");
    assert!(
        main.contains("perses-oci-plan(1)") || main.contains("plan"),
        "{main}"
    );
    let plan = page("perses-oci-plan.1");
    assert!(plan.contains("--detailed-exitcode"), "{plan}");
    assert!(plan.contains("Exit 2 when there are changes"), "{plan}");
    // The page printed to stdout is the main one.
    let out = perses_oci().arg("man").output().unwrap();
    let written = std::fs::read(dir.path().join("perses-oci.1")).unwrap();
    assert!(out.stdout == written, "`man` and `man --out-dir` differ");
}
