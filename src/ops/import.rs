//! `import`: write `environments/NAME.toml` from the image volumes a workload already has (the
//! Helm chart's `ociArtifacts`), so a team adopts perses-oci in one step.

use crate::cluster::{self, observe};
use crate::config;
use crate::model::{ArtifactSpec, Desired, Pin, PullPolicy, RegistrySettings, Target};
use crate::plan::parse_ref;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub dir: PathBuf,
    pub env: String,
    pub target: Target,
    pub kubeconfig: Option<PathBuf>,
    /// Overwrite an existing environment file.
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("{} already exists; use --force to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("{workload} has no image volume mounted in container {container:?}: nothing to import")]
    Nothing { workload: String, container: String },
    #[error(
        "image volume {name:?} has reference {reference:?} without a tag; perses-oci needs a tag"
    )]
    NoTag { name: String, reference: String },
    #[error("the imported environment does not validate: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `import` wrote, and what the user must know before the first apply.
#[derive(Debug, Clone)]
pub struct Imported {
    pub path: PathBuf,
    /// Warnings: a Helm release whose chart renders the imported volumes (see `plan::helm`).
    pub warnings: Vec<String>,
}

pub async fn import(opts: &ImportOptions) -> Result<Imported, ImportError> {
    let path = opts
        .dir
        .join(config::ENVIRONMENTS_DIR)
        .join(format!("{}.toml", opts.env));
    if path.exists() && !opts.force {
        return Err(ImportError::Exists { path });
    }
    let c = cluster::connect(opts.kubeconfig.as_deref(), opts.target.context.as_deref()).await?;
    let obj = c.get_workload(&opts.target).await?;
    let ex =
        observe::extract(&obj, &opts.target).map_err(|e| c.container_not_found(&opts.target, e))?;
    let mut artifacts = Vec::new();
    for a in ex.artifacts.iter().filter(|a| a.state.mount_path.is_some()) {
        let r = parse_ref(&a.state.reference);
        let tag = r.tag.clone().ok_or_else(|| ImportError::NoTag {
            name: a.name.clone(),
            reference: a.state.reference.clone(),
        })?;
        artifacts.push(ArtifactSpec {
            name: a.name.clone(),
            image: r.repository,
            tag,
            pull_policy: a.state.pull_policy.as_deref().and_then(PullPolicy::parse),
            mount_path: a.state.mount_path.clone().unwrap_or_default(),
            sub_path: a.state.sub_path.clone(),
            // Keep what is live: a digest-pinned reference stays pinned, a bare tag stays a tag.
            pin: if r.digest.is_some() {
                Pin::Digest
            } else {
                Pin::Tag
            },
            source: None,
        });
    }
    if artifacts.is_empty() {
        return Err(ImportError::Nothing {
            workload: opts.target.workload.to_string(),
            container: opts.target.container.clone(),
        });
    }
    let desired = Desired {
        env: opts.env.clone(),
        file: path.clone(),
        file_sha256: String::new(),
        target: opts.target.clone(),
        artifacts,
        registry: RegistrySettings::default(),
    };
    let text = config::render_env_toml(&desired);
    // What we write must load: check it before touching the file.
    config::parse_env(&opts.env, &path, &text, &opts.dir)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ImportError::Write {
            path: path.clone(),
            source,
        })?;
    }
    std::fs::write(&path, text).map_err(|source| ImportError::Write {
        path: path.clone(),
        source,
    })?;
    // The first apply that moves a tag is where Helm and perses-oci start to disagree: say it
    // now, with the same words plan will use.
    let observed = crate::model::Observed {
        resource_version: ex.resource_version.clone(),
        generation: ex.generation,
        server_version: (0, 0),
        artifacts: ex.artifacts.clone(),
        mounts: ex.mounts.clone(),
        provisioning_folders: None,
        history: vec![],
        pull: Default::default(),
        helm: ex.helm.clone(),
    };
    let changes: Vec<crate::model::Change> = desired
        .artifacts
        .iter()
        .map(|a| crate::model::Change {
            action: crate::model::Action::Update,
            reasons: vec![],
            artifact: a.name.clone(),
            before: None,
            after: None,
            conflicts_with: vec![],
            content: None,
        })
        .collect();
    let warnings =
        crate::plan::helm::helm_checks(&observed, &changes, &opts.target.workload.to_string())
            .into_iter()
            .map(|c| {
                format!(
                    "{} Once the tag changes in {}, apply needs --force-conflicts.",
                    c.message,
                    path.display()
                )
            })
            .collect();
    Ok(Imported { path, warnings })
}
