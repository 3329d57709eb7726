//! Command-line definitions: each subcommand turns flags into an options struct and calls `ops`.
//! Exit codes: see `crate::ops::exit` and docs/exit-codes.md.

mod diff;
mod drift;
mod generate;
mod inspect;
mod lint;
mod push;

use crate::config;
use crate::model::{Target, WorkloadKind, WorkloadRef};
use crate::ops::{self, exit};
use crate::render::{self, Format, Style};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

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
    /// Make the cluster match the environment files (or apply a saved plan).
    Apply(ApplyArgs),
    /// List the revisions perses-oci applied to an environment's workload.
    History(EnvArg),
    /// Re-apply a previously applied revision.
    Rollback(RollbackArgs),
    /// Remove the apply lock of an environment's workload (after a killed apply).
    ForceUnlock(EnvArg),
    /// Report drift per environment: in_sync, pending, cluster_edited, tag_moved, missing or
    /// error (exit 0 in sync, 2 drift, 1 error).
    Drift(drift::DriftArgs),
    /// Check Perses resource files offline: which files Perses' provisioning would load or skip.
    Lint(lint::LintArgs),
    /// Which Perses resources differ between two artifacts (directories or images).
    Diff(diff::DiffArgs),
    /// Package a directory as a reproducible OCI image and push it (or write an OCI layout).
    Push(push::PushArgs),
    /// Show an artifact: digest, platforms, annotations, folders, resource kinds, files.
    Inspect(inspect::InspectArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the manual page (or write one per command with --out-dir).
    Man(generate::ManArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub select: Select,
    /// A plan saved with `plan --out FILE`: applied exactly, without a prompt, unless stale.
    #[arg(value_name = "PLAN_FILE", conflicts_with_all = ["envs", "all"])]
    pub plan_file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Flags shared by the commands that write.
#[derive(Debug, Args, Clone)]
pub struct WriteArgs {
    /// Take over fields owned by another field manager (e.g. helm).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Do not wait for the rollout.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the rollout (e.g. 90s, 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long to wait for another apply's lock (0: fail at once).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct EnvArg {
    /// The environment.
    #[arg(long, value_name = "NAME")]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The environment.
    #[arg(long, value_name = "NAME")]
    pub env: String,
    /// The revision to go back to (see `history`); default: the one before the current.
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
    /// Also change the environment file to the rolled-back tags.
    #[arg(long)]
    pub write_config: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// `90s`, `5m`, `1h`, `500ms`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 30s, 5m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
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
    /// Namespace of the live workload.
    #[arg(long)]
    pub namespace: String,
    /// statefulset/NAME or deployment/NAME.
    #[arg(long, default_value = "statefulset/perses", value_parser = parse_workload)]
    pub workload: WorkloadRef,
    /// The container that mounts the artifacts.
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
        other => {
            return Err(format!(
                "unknown workload kind {other:?}: use statefulset or deployment"
            ));
        }
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
    if std::io::stderr().is_terminal()
        && crate::progress::wanted_by_environment()
        && !machine_output(&cli.command)
    {
        let color =
            !cli.global.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        crate::progress::enable(color);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(dispatch(cli))
}

/// Whether the command prints for a program (JSON): then nothing else is drawn, not even on
/// stderr.
fn machine_output(command: &Command) -> bool {
    match command {
        Command::Plan(a) => a.format == Format::Json,
        Command::Drift(a) => a.format == Format::Json,
        Command::Lint(a) => a.format == lint::LintFormat::Json,
        Command::Diff(a) => a.format == diff::DiffFormat::Json,
        _ => false,
    }
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
                    manifest: None,
                },
                kubeconfig: g.kubeconfig.clone(),
                force: a.force,
            };
            let imported = ops::import::import(&opts).await?;
            println!("wrote {}", imported.path.display());
            for w in &imported.warnings {
                eprintln!("warning: {w}");
            }
            Ok(exit::OK)
        }
        Command::Plan(a) => plan(g, a).await,
        Command::Apply(a) => apply(g, a).await,
        Command::History(a) => history(g, a).await,
        Command::Rollback(a) => rollback(g, a).await,
        Command::ForceUnlock(a) => force_unlock(g, a).await,
        Command::Drift(a) => drift::run(g, a).await,
        Command::Lint(a) => lint::run(a).await,
        Command::Diff(a) => diff::run(a).await,
        Command::Push(a) => push::run(g, a).await,
        Command::Inspect(a) => inspect::run(g, a).await,
        Command::Completions(a) => generate::completions(a),
        Command::Man(a) => generate::man(a),
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
            Ok(d) => println!(
                "{}: ok ({} artifact{})",
                d.file.display(),
                d.artifacts.len(),
                if d.artifacts.len() == 1 { "" } else { "s" }
            ),
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
    let planning = planning_spinner();
    let (_project, plan, _) = ops::plan::plan(&opts).await?;
    drop(planning);
    let text = render::render(&plan, a.format, style(g));
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if let Some(path) = &a.out {
        ops::planfile::write(path, &plan)?;
        eprintln!(
            "Saved the plan to {}; apply it with: perses-oci apply {}",
            path.display(),
            path.display()
        );
    }
    if plan.has_errors() {
        return Ok(exit::ERROR);
    }
    if a.detailed_exitcode && !plan.summary().is_empty() {
        return Ok(exit::CHANGES);
    }
    Ok(exit::OK)
}

fn apply_options(
    g: &Global,
    select: &Select,
    plan_file: Option<PathBuf>,
    w: &WriteArgs,
) -> ops::apply::ApplyOptions {
    ops::apply::ApplyOptions {
        plan: ops::plan::PlanOptions {
            dir: g.dir.clone(),
            envs: select.envs.clone(),
            all: select.all,
            kubeconfig: g.kubeconfig.clone(),
        },
        plan_file,
        force_conflicts: w.force_conflicts,
        wait: !w.no_wait,
        timeout: w.timeout,
        lock_timeout: w.lock_timeout,
    }
}

/// "planning: N environments done" while the environments are read (clusters, registries).
fn planning_spinner() -> crate::progress::Watch {
    crate::progress::Spinner::watch(
        |(done, _)| {
            format!(
                "planning: {done} environment{} done",
                if done == 1 { "" } else { "s" }
            )
        },
        &crate::progress::PLANNED,
    )
}

/// Asks for `yes` on a terminal; refuses without one.
fn confirm(auto_approve: bool, what: &str) -> anyhow::Result<bool> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to {what} without confirmation: not on a terminal; pass --auto-approve"
        );
    }
    print!("\nDo you want to {what}? Only 'yes' will be accepted.\n  Enter a value: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// Applies the environments of a prepared plan one after another; stops at the first failure.
async fn apply_prepared(prepared: &ops::apply::Prepared, opts: &ops::apply::ApplyOptions) -> i32 {
    let mut applied = Vec::new();
    let mut unchanged = Vec::new();
    let mut say = |line: String| println!("{line}");
    for (i, (env, ctx)) in prepared
        .plan
        .envs
        .iter()
        .zip(&prepared.contexts)
        .enumerate()
    {
        let Some(ctx) = ctx else { continue };
        match ops::apply::apply_env(ctx, env, opts, &mut say).await {
            Ok(true) => applied.push(env.env.clone()),
            Ok(false) => unchanged.push(env.env.clone()),
            Err(e) => {
                eprintln!("error: {e}");
                let rest: Vec<String> = prepared.plan.envs[i + 1..]
                    .iter()
                    .map(|e| e.env.clone())
                    .collect();
                eprintln!(
                    "Applied: {}. Failed: {}{}. Not applied: {}.",
                    if applied.is_empty() {
                        "none".to_string()
                    } else {
                        applied.join(", ")
                    },
                    env.env,
                    if e.written() {
                        " (written; its rollout did not finish)"
                    } else {
                        ""
                    },
                    if rest.is_empty() {
                        "none".to_string()
                    } else {
                        format!("{} (stopped after the failure)", rest.join(", "))
                    }
                );
                return exit::ERROR;
            }
        }
    }
    let s = prepared.plan.summary();
    println!(
        "\nApply complete! {} added, {} changed, {} removed.{}",
        s.add,
        s.change,
        s.remove,
        if applied.is_empty() {
            String::new()
        } else {
            format!(" Applied: {}.", applied.join(", "))
        }
    );
    exit::OK
}

async fn apply(g: &Global, a: &ApplyArgs) -> anyhow::Result<i32> {
    let opts = apply_options(g, &a.select, a.plan_file.clone(), &a.write);
    let planning = planning_spinner();
    let prepared = ops::apply::prepare(&opts).await;
    drop(planning);
    let prepared = prepared?;
    print!("{}", render::human(&prepared.plan, style(g)));
    if prepared.plan.has_errors() {
        eprintln!("error: the plan has errors; nothing was applied");
        return Ok(exit::ERROR);
    }
    if prepared.plan.summary().is_empty() {
        return Ok(exit::OK);
    }
    // A saved plan was reviewed when it was made: no second prompt.
    if a.plan_file.is_none() && !confirm(a.auto_approve, "apply these changes")? {
        eprintln!("Apply cancelled.");
        return Ok(exit::ERROR);
    }
    Ok(apply_prepared(&prepared, &opts).await)
}

/// The live side of one environment (history, rollback): tags are not resolved.
async fn env_context(g: &Global, env: &str) -> anyhow::Result<ops::plan::EnvContext> {
    let project = config::load_project(&g.dir)?;
    let desired = config::load_env(&project, env)?;
    ops::plan::observe_env_live(&desired, g.kubeconfig.clone())
        .await
        .map_err(|m| anyhow::anyhow!("environment {env}: {m}"))
}

async fn history(g: &Global, a: &EnvArg) -> anyhow::Result<i32> {
    let ctx = env_context(g, &a.env).await?;
    if ctx.observed.history.is_empty() {
        println!(
            "{}: perses-oci has not applied anything to {} yet.",
            a.env, ctx.desired.target.workload
        );
        return Ok(exit::OK);
    }
    println!(
        "{:<4} {:<21} {:<24} {:<20} {:<24} DIGEST",
        "REV", "TIME", "BY", "ARTIFACT", "TAG"
    );
    for r in &ctx.observed.history {
        for art in &r.artifacts {
            println!(
                "{:<4} {:<21} {:<24} {:<20} {:<24} {}",
                r.revision,
                r.time,
                r.by,
                art.name,
                art.tag,
                art.digest.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(exit::OK)
}

async fn rollback(g: &Global, a: &RollbackArgs) -> anyhow::Result<i32> {
    let ctx = env_context(g, &a.env).await?;
    let hist = &ctx.observed.history;
    let revision = match a.to {
        Some(n) => hist.iter().find(|r| r.revision == n).ok_or_else(|| {
            anyhow::anyhow!(
                "environment {}: no revision {n} in the history (known: {})",
                a.env,
                hist.iter().map(|r| r.revision.to_string()).collect::<Vec<_>>().join(", ")
            )
        })?,
        None => hist.iter().rev().nth(1).ok_or_else(|| {
            anyhow::anyhow!("environment {}: there is no previous revision to roll back to (see `perses-oci history --env {}`)", a.env, a.env)
        })?,
    };
    let target_ctx = ops::apply::at_revision(&ctx, revision);
    let env_plan = ops::plan::plan_from(&target_ctx).await;
    let plan = crate::model::Plan {
        envs: vec![env_plan],
    };
    println!(
        "Rolling {} back to revision {} ({}, by {}).\n",
        a.env, revision.revision, revision.time, revision.by
    );
    print!("{}", render::human(&plan, style(g)));
    if plan.has_errors() {
        eprintln!("error: the plan has errors; nothing was applied");
        return Ok(exit::ERROR);
    }
    if !plan.summary().is_empty() {
        if !confirm(a.auto_approve, "roll back")? {
            eprintln!("Rollback cancelled.");
            return Ok(exit::ERROR);
        }
        let opts = apply_options(
            g,
            &Select {
                envs: vec![a.env.clone()],
                all: false,
            },
            None,
            &a.write,
        );
        let prepared = ops::apply::Prepared {
            project: config::load_project(&g.dir)?,
            plan,
            contexts: vec![Some(target_ctx)],
        };
        let code = apply_prepared(&prepared, &opts).await;
        if code != exit::OK {
            return Ok(code);
        }
    }
    let file = &ctx.desired.file;
    let text = std::fs::read_to_string(file)?;
    let (new_text, changes) = ops::apply::rewrite_tags(&text, &ctx.desired, revision);
    if changes.is_empty() {
        return Ok(exit::OK);
    }
    if a.write_config {
        std::fs::write(file, new_text)?;
        println!("\nUpdated {} to match the cluster:", file.display());
        for c in &changes {
            println!("  {c}");
        }
    } else {
        eprintln!(
            "\nWarning: {} now disagrees with the cluster; the next apply would undo the rollback. Make this change (or re-run with --write-config):",
            file.display()
        );
        for c in &changes {
            eprintln!("  {c}");
        }
    }
    Ok(exit::OK)
}

async fn force_unlock(g: &Global, a: &EnvArg) -> anyhow::Result<i32> {
    let project = config::load_project(&g.dir)?;
    let desired = config::load_env(&project, &a.env)?;
    if let Some(m) = &desired.target.manifest {
        println!(
            "{}: targets the manifest file {}; manifest targets have no lock",
            a.env,
            m.display()
        );
        return Ok(exit::OK);
    }
    let cluster =
        crate::cluster::connect(g.kubeconfig.as_deref(), desired.target.context.as_deref()).await?;
    match cluster.force_unlock(&desired.target).await? {
        Some(holder) => println!("{}: removed the lock held by {holder}", a.env),
        None => println!("{}: no lock is held", a.env),
    }
    Ok(exit::OK)
}
