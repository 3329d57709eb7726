//! `perses-oci push DIR (--image REPO:TAG | --to oci:PATH:TAG)`: flags to `ops::push`.

use super::Global;
use crate::artifact::build::{Filter, Glob};
use crate::model::RegistrySettings;
use crate::ops::push::{Destination, Outcome, PushOptions, human_bytes};
use crate::ops::{self, exit};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("destination").required(true).args(["image", "to"]))]
pub struct PushArgs {
    /// The directory to package: its content becomes the root of the image (a mount with
    /// `subPath: prod` then shows DIR/prod).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Push to a registry, e.g. registry.example.com/team/perses-resources:v1.
    #[arg(long, value_name = "REPO:TAG")]
    pub image: Option<String>,
    /// Write into an OCI image layout directory instead (created if missing; other tags kept).
    #[arg(long, value_name = "oci:PATH:TAG")]
    pub to: Option<String>,
    /// Move the tag even when it already points at other files.
    #[arg(long)]
    pub force: bool,
    /// Leave out matching paths (relative to DIR; `*`, `?`, `**`; no `/`: any depth; trailing
    /// `/`: directories only). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Also package paths with a component starting with `.` (left out by default).
    #[arg(long)]
    pub include_hidden: bool,
    /// A registry (HOST[:PORT]) reached over plain HTTP; loopback registries are detected.
    /// Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Extra CA certificates (PEM) to trust for the registry.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Push even when lint finds files Perses would skip.
    #[arg(long)]
    pub no_lint: bool,
    /// Build (and lint) even when the tree is unchanged since a push of the same image: by
    /// default the paths, sizes, times and inodes of the files are recorded in the cache
    /// directory, and an unchanged tree whose image the tag already points at is not rebuilt.
    #[arg(long)]
    pub no_cache: bool,
}

pub async fn run(_g: &Global, a: &PushArgs) -> anyhow::Result<i32> {
    let to = match (&a.image, &a.to) {
        (Some(i), _) => Destination::image(i)?,
        (None, Some(t)) => Destination::layout(t)?,
        (None, None) => unreachable!("clap requires --image or --to"),
    };
    let exclude = a
        .exclude
        .iter()
        .map(|p| Glob::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = PushOptions {
        dir: a.dir.clone(),
        to,
        force: a.force,
        filter: Filter {
            include_hidden: a.include_hidden,
            exclude,
        },
        registry: RegistrySettings {
            insecure: a.insecure_registry.clone(),
            ca_file: a.ca_file.clone(),
        },
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
        lint: !a.no_lint,
        linter: Some(lint_before_push),
        stamps: if a.no_cache {
            None
        } else {
            crate::artifact::stamp::Store::default_location()
        },
    };
    let tty = std::io::stderr().is_terminal();
    crate::progress::PACKED.reset();
    let watch = crate::progress::Spinner::watch(
        |(files, bytes)| format!("packing: {files} files ({})", crate::progress::bytes(bytes)),
        &crate::progress::PACKED,
    );
    let mut progress = |line: String| {
        if tty {
            watch.suspend(|| eprintln!("{line}"));
        }
    };
    let r = ops::push::push(&opts, &mut progress).await;
    drop(watch);
    let r = r?;
    let files = format!(
        "{} files, {}; layer {} gzip; {}",
        r.files,
        human_bytes(r.file_bytes),
        human_bytes(r.layer_size),
        r.platforms.join(", ")
    );
    match &r.outcome {
        Outcome::Pushed => {
            println!("pushed {}@{} ({files})", r.reference, r.digest);
            println!(
                "uploaded {} of {} blobs ({})",
                r.blobs_uploaded,
                r.blobs_total,
                human_bytes(r.bytes_uploaded)
            );
            if let Some(prev) = &r.previous {
                println!("moved the tag from {prev}");
            }
        }
        Outcome::UpToDate if r.unchanged_tree => println!(
            "up to date {}@{} ({files}); the tree is unchanged since that push, not rebuilt",
            r.reference, r.digest
        ),
        Outcome::UpToDate => println!("up to date {}@{} ({files})", r.reference, r.digest),
        Outcome::SameFiles { annotations } => {
            println!(
                "up to date {}@{} ({files}): same files; only annotations differ ({}); --force moves the tag",
                r.reference,
                r.digest,
                annotations.join(", ")
            );
        }
    }
    Ok(exit::OK)
}

/// Lint runs before anything is built: a file Perses would skip fails the push. An artifact
/// that carries one folder per environment (no resource file at its root, several top-level
/// folders) is linted folder by folder, as each is mounted alone with its subPath: the same
/// dashboard in `prod/` and `staging/` is not a duplicate, and a project defined in `prod/`
/// does not exist for `staging/`.
fn lint_before_push(dir: &std::path::Path, files: &[String]) -> Result<(), String> {
    use crate::perses as lint;
    let at_root = files
        .iter()
        .any(|p| lint::is_resource_file(p) && !p.contains('/'));
    // Files are read here and parsed on every core, a few in memory at a time, each into its
    // folder's lint.
    let pool = lint::LintPool::new();
    let mut feed = pool.feeder_for();
    for (n, f) in files
        .iter()
        .filter(|f| lint::is_resource_file(f))
        .enumerate()
    {
        let bytes = std::fs::read(dir.join(f)).map_err(|e| format!("cannot read {f}: {e}"))?;
        let (group, rest) = match f.split_once('/') {
            Some((top, rest)) if !at_root => (top, rest),
            _ => ("", f.as_str()),
        };
        feed(group, (0, n), rest, bytes);
    }
    drop(feed);
    let groups = pool.finish_groups();
    let mut failed = Vec::new();
    for (group, linter) in groups {
        let mut report = linter.finish(&[]);
        report.root = if group.is_empty() {
            dir.display().to_string()
        } else {
            dir.join(&group).display().to_string()
        };
        if report.has_errors() {
            let prefix = if group.is_empty() {
                String::new()
            } else {
                format!("{group}/: ")
            };
            failed.push(format!("{prefix}{}", report.human().trim_end()));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n(--no-lint pushes anyway)", failed.join("\n")))
    }
}
