//! `perses-oci lint (DIR | REF)`: check Perses resource files, in a directory before they ship
//! or in a pushed artifact (`REPO:TAG`, `REPO@sha256:...`, `oci:PATH:TAG`).

use crate::ops::exit;
use crate::perses as lint;
use std::io::Write;
use std::path::PathBuf;

/// Output format of `lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LintFormat {
    /// `path:line: severity: message` lines, then a summary line.
    #[default]
    Human,
    /// One JSON document (`format_version` 2.0).
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks what Perses v0.54's provisioning would do with the files: which it reads (accepted) and \
which it skips whole because it cannot decode them, then, in the files it reads, which resources \
it loads, which it refuses one by one (missing project, EphemeralDashboard, variable names, a \
second default datasource) and which it stores outside any project (no metadata.project).

Exit codes:
  0  no errors (warnings allowed)
  1  errors found (a file skipped, a resource refused, stored outside any project or defined \
twice), or bad input (DIR or --sub-path missing)")]
pub struct LintArgs {
    /// Directory holding the resource files, or an image reference (REPO:TAG, REPO@DIGEST,
    /// oci:PATH:TAG).
    // Not `dir`: that id belongs to the global `--dir` flag.
    #[arg(value_name = "DIR|REF")]
    pub tree: PathBuf,
    /// Lint only DIR/P, as the volume mount's subPath would expose it.
    #[arg(long, value_name = "P")]
    pub sub_path: Option<String>,
    /// A project that already exists on the Perses server; repeatable.
    #[arg(long = "known-project", value_name = "NAME")]
    pub known_projects: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How to reach a registry, for commands that read images.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// A registry (host[:port]) reached over plain HTTP (loopback registries are detected).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// An extra CA bundle (PEM) for the registry.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl RegistryArgs {
    pub fn registry(&self) -> crate::registry::Registry {
        crate::registry::Registry::new(crate::model::RegistrySettings {
            insecure: self.insecure.clone(),
            ca_file: self.ca_file.clone(),
        })
    }
}

/// Lints, prints the report on stdout and returns the exit code.
pub async fn run(args: &LintArgs) -> anyhow::Result<i32> {
    let mut report = if args.tree.is_dir() || !looks_like_ref(&args.tree) {
        lint::lint_dir(&args.tree, args.sub_path.as_deref(), &args.known_projects)?
    } else {
        let what = args.tree.to_string_lossy();
        let registry = args.registry.registry();
        let (_, report) = crate::artifact::scan::Scan::open_linted(
            &what,
            args.sub_path.as_deref(),
            &registry,
            &args.known_projects,
        )
        .await?;
        report
    };
    report.root = match &args.sub_path {
        Some(sub) => args.tree.join(sub).display().to_string(),
        None => args.tree.display().to_string(),
    };
    let text = match args.format {
        LintFormat::Human => report.human(),
        LintFormat::Json => report.to_json_string(),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(if report.has_errors() {
        exit::ERROR
    } else {
        exit::OK
    })
}

/// An image reference rather than a missing directory: `oci:...`, or a name with a tag or
/// digest after its last `/`.
fn looks_like_ref(p: &std::path::Path) -> bool {
    let s = p.to_string_lossy();
    s.starts_with("oci:")
        || s.rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':') || last.contains('@'))
}
