//! `perses-oci diff A B`: which Perses resources are added, removed and changed between two
//! artifacts (directories, `REPO:TAG`, `REPO@sha256:...`, `oci:PATH:TAG`). Exit 0 equal, 2
//! different, 1 error.

use super::lint::RegistryArgs;
use crate::artifact::diff::{ChangeKind, scanned_diff};
use crate::artifact::scan::Scan;
use crate::ops::exit;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DiffFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Resources are keyed by (kind, project, name) and compared after normalising JSON/YAML (key \
order, whitespace), so a reformat is not a change. Secret and GlobalSecret specs are masked.

Exit codes:
  0  no difference
  1  error
  2  differences")]
pub struct DiffArgs {
    /// The old artifact: a directory or an image reference.
    #[arg(value_name = "A")]
    pub a: String,
    /// The new artifact.
    #[arg(value_name = "B")]
    pub b: String,
    /// Compare only this folder of both, as the volume mount's subPath exposes it.
    #[arg(long, value_name = "P")]
    pub sub_path: Option<String>,
    /// Output format (json: `format_version` 1.1, each change with its `diff_format`).
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    pub format: DiffFormat,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub async fn run(args: &DiffArgs) -> anyhow::Result<i32> {
    let sub = args.sub_path.as_deref();
    let registry = args.registry.registry();
    // Each side is read one file at a time (twice for the files that differ), so that two
    // large artifacts never sit in memory.
    // Joined rather than raced, so that when both fail the error named is always A's.
    let (a, b) = tokio::join!(
        Scan::open(&args.a, sub, &registry),
        Scan::open(&args.b, sub, &registry)
    );
    let (a, b) = (a?, b?);
    let d = tokio::task::spawn_blocking(move || scanned_diff(&a, &b)).await??;
    let text = match args.format {
        DiffFormat::Json => {
            let mut v = serde_json::to_value(&d)?;
            v["format_version"] = serde_json::json!("1.1");
            v["a"] = serde_json::json!(args.a);
            v["b"] = serde_json::json!(args.b);
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        DiffFormat::Human => {
            let mut out = String::new();
            for c in &d.changes {
                let sym = match c.change {
                    ChangeKind::Added => '+',
                    ChangeKind::Removed => '-',
                    ChangeKind::Changed => '~',
                };
                out.push_str(&format!("{sym} {} ({})\n", c.key(), c.path));
                for l in c.diff.lines() {
                    out.push_str(&format!("    {l}\n"));
                }
            }
            out.push_str(&format!("{}\n", d.summary()));
            out
        }
    };
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(if d.is_empty() {
        exit::OK
    } else {
        exit::CHANGES
    })
}
