//! `completions` and `man`: shell completions and manual pages, generated from the clap
//! definitions so that they never disagree with `--help`.

use super::Cli;
use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write perses-oci.1 and one page per command (perses-oci-plan.1, ...) into DIR instead of
    /// printing perses-oci.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the completion script of `shell` for the command as this binary defines it.
pub fn completions(a: &CompletionsArgs) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "perses-oci", &mut buf);
    if a.shell == Shell::Bash {
        // clap_complete spells the state of a hyphenated binary's subcommands two ways
        // (`perses__oci__subcmd__plan` in the loop, `perses__subcmd__oci__subcmd__plan` in the
        // arms, clap-rs/clap#6421): no subcommand flag would ever complete. One spelling here.
        let text = String::from_utf8(buf)?.replace("perses__subcmd__oci", "perses__oci");
        buf = text.into_bytes();
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)?;
    out.flush()?;
    Ok(crate::ops::exit::OK)
}

/// Prints the manual page, or writes every page into a folder (for packagers).
pub fn man(a: &ManArgs) -> anyhow::Result<i32> {
    // `help` is a page of its own in no manual: `--help` is on every page.
    let cmd = Cli::command().disable_help_subcommand(true);
    match &a.out_dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            write_pages(cmd, dir)?;
        }
    }
    Ok(crate::ops::exit::OK)
}

/// `perses-oci.1`, then `perses-oci-SUB.1` for each command, as git and cargo ship theirs.
fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    let mut pages = vec![("perses-oci".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("perses-oci-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag and argument of every command says what it is for (`--help`, the man page
    /// and the completions' descriptions all come from it).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() {
                missing.push(format!("{path}: no about"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "perses-oci", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn man_pages_one_per_command() {
        let dir = tempfile::tempdir().unwrap();
        write_pages(Cli::command().disable_help_subcommand(true), dir.path()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.contains(&"perses-oci.1".to_string()));
        assert!(names.contains(&"perses-oci-plan.1".to_string()));
        assert!(!names.iter().any(|n| n == "perses-oci-help.1"));
        let plan = std::fs::read_to_string(dir.path().join("perses-oci-plan.1")).unwrap();
        assert!(plan.contains("perses\\-oci\\-plan"), "{plan}");
        assert!(plan.contains("detailed\\-exitcode"), "{plan}");
    }
}
