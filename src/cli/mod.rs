//! Command-line definitions: each subcommand turns flags into an options struct and calls `ops`.
//! Exit codes: see `crate::ops::exit` and docs/exit-codes.md.

use crate::config;
use crate::model::{Target, WorkloadKind, WorkloadRef};
use crate::ops::{self, exit};
use crate::render::{self, Format, Style};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Declarative reconciler for Perses resources shipped as OCI image volumes.
#[derive(Debug, Parser)]
#[command(name = "perses-oci", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Project directory holding environments/*.toml and perses-oci.toml.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster in a pod).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Never colour the output (NO_COLOR is honoured too).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check environment files offline: keys, values, names, paths.
    Validate(Select),
    /// Write environments/NAME.toml from the image volumes a live workload has.
    Import(ImportArgs),
    /// Show what apply would change, per environment.
    Plan(PlanArgs),
}

/// Which environments a command works on.
#[derive(Debug, Args, Clone)]
pub struct Select {
    /// An environment (file stem of environments/NAME.toml); repeatable.
    #[arg(long = "env", value_name = "NAME")]
    pub envs: Vec<String>,
    /// Every environment, in the order of perses-oci.toml's `order`, then by name.
    #[arg(long, conflicts_with = "envs")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub select: Select,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also save the plan to FILE, for `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes (0: none, 1: error).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Name of the environment to write.
    #[arg(long, value_name = "NAME")]
    pub env: String,
    /// Kubeconfig context of the live workload.
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long)]
    pub namespace: String,
    /// statefulset/NAME or deployment/NAME.
    #[arg(long, default_value = "statefulset/perses", value_parser = parse_workload)]
    pub workload: WorkloadRef,
    #[arg(long, default_value = "perses")]
    pub container: String,
    /// Overwrite an existing environment file.
    #[arg(long)]
    pub force: bool,
}

fn parse_workload(s: &str) -> Result<WorkloadRef, String> {
    let (kind, name) = s
        .split_once('/')
        .ok_or_else(|| format!("expected statefulset/NAME or deployment/NAME, got {s:?}"))?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "statefulset" | "sts" | "statefulsets" => WorkloadKind::StatefulSet,
        "deployment" | "deploy" | "deployments" => WorkloadKind::Deployment,
        other => return Err(format!("unknown workload kind {other:?}: use statefulset or deployment")),
    };
    if name.is_empty() {
        return Err("the workload name is empty".into());
    }
    Ok(WorkloadRef {
        kind,
        name: name.to_string(),
    })
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "perses_oci=info,warn",
        2 => "perses_oci=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn style(global: &Global) -> Style {
    let color = !global.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    Style { color }
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    init_logging(cli.global.verbose);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Validate(sel) => validate(g, sel),
        Command::Import(a) => {
            let opts = ops::import::ImportOptions {
                dir: g.dir.clone(),
                env: a.env.clone(),
                target: Target {
                    context: a.context.clone(),
                    namespace: a.namespace.clone(),
                    workload: a.workload.clone(),
                    container: a.container.clone(),
                },
                kubeconfig: g.kubeconfig.clone(),
                force: a.force,
            };
            let path = ops::import::import(&opts).await?;
            println!("wrote {}", path.display());
            Ok(exit::OK)
        }
        Command::Plan(a) => plan(g, a).await,
    }
}

fn validate(g: &Global, sel: &Select) -> anyhow::Result<i32> {
    let project = config::load_project(&g.dir)?;
    // Validating everything is the useful default: it is offline and cheap.
    let names = if sel.envs.is_empty() {
        project.select(&[], true)?
    } else {
        project.select(&sel.envs, false)?
    };
    let mut failed = 0;
    for name in &names {
        match config::load_env(&project, name) {
            Ok(d) => println!("{}: ok ({} artifact{})", d.file.display(), d.artifacts.len(), if d.artifacts.len() == 1 { "" } else { "s" }),
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} environment files are invalid", names.len());
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}

async fn plan(g: &Global, a: &PlanArgs) -> anyhow::Result<i32> {
    let opts = ops::plan::PlanOptions {
        dir: g.dir.clone(),
        envs: a.select.envs.clone(),
        all: a.select.all,
        kubeconfig: g.kubeconfig.clone(),
    };
    let (_project, plan, _) = ops::plan::plan(&opts).await?;
    let text = render::render(&plan, a.format, style(g));
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if let Some(path) = &a.out {
        ops::planfile::write(path, &plan)?;
        eprintln!("Saved the plan to {}; apply it with: perses-oci apply {}", path.display(), path.display());
    }
    if plan.has_errors() {
        return Ok(exit::ERROR);
    }
    if a.detailed_exitcode && !plan.summary().is_empty() {
        return Ok(exit::CHANGES);
    }
    Ok(exit::OK)
}
