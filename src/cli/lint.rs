//! `perses-oci lint DIR`: check Perses resource files offline, before they ship in an image.

use crate::artifact::lint;
use crate::ops::exit;
use std::io::Write;
use std::path::PathBuf;

/// Output format of `lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LintFormat {
    /// `path:line: severity: message` lines, then a summary line.
    #[default]
    Human,
    /// One JSON document (`format_version` 1.0).
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks what Perses v0.54's provisioning would do with the files: which it loads (accepted) and \
which it skips whole because one object in them is refused.

Exit codes:
  0  no errors (warnings allowed)
  1  errors found (a file would be skipped, a resource defined twice), or bad input \
(DIR or --sub-path missing)")]
pub struct LintArgs {
    /// Directory holding the resource files (the content of the image).
    // Not `dir`: that id belongs to the global `--dir` flag.
    #[arg(value_name = "DIR")]
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
}

/// Lints, prints the report on stdout and returns the exit code.
pub fn run(args: &LintArgs) -> anyhow::Result<i32> {
    let tree = lint::read_tree_at(&args.tree, args.sub_path.as_deref())?;
    let mut report = lint::lint_tree(&tree, &args.known_projects);
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
