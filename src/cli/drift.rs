//! `perses-oci drift`: the flags, and the exit code that a cron job or a scheduled CI job acts on
//! (0 in sync, 2 drift, 1 error; docs/drift.md).

use super::{Global, Select, style};
use crate::ops;
use crate::render::{self, Format};
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub select: Select,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write Prometheus metrics (text format, replaced atomically) to FILE, e.g. for
    /// node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

pub async fn run(g: &Global, a: &DriftArgs) -> anyhow::Result<i32> {
    let opts = ops::drift::DriftOptions {
        dir: g.dir.clone(),
        envs: a.select.envs.clone(),
        all: a.select.all,
        kubeconfig: g.kubeconfig.clone(),
    };
    let report = ops::drift::drift(&opts).await?;
    let text = match a.format {
        Format::Human => render::drift::human(&report, style(g)),
        Format::Json => render::drift::json(&report),
        Format::Markdown => render::drift::markdown(&report),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if let Some(path) = &a.metrics_file {
        ops::drift::write_metrics(path, &report)
            .with_context(|| format!("cannot write the metrics file {}", path.display()))?;
    }
    Ok(report.exit_code())
}
