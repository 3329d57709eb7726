//! The project directory on disk: which environments exist, the settings file, and reading one
//! environment file. The only part of `config` that does I/O.

use std::io;
use std::path::{Path, PathBuf};

use super::doc::Doc;
use super::env;
use super::error::{ConfigError, Diagnostic};
use super::settings::{ProjectSettings, SETTINGS_FILE, parse_settings};
use super::validate;
use crate::model::Desired;

/// The directory, under the project directory, that holds one `NAME.toml` per environment.
pub const ENVIRONMENTS_DIR: &str = "environments";

/// A project directory: its settings and the environments it defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// As the caller passed it; file names in messages are built from it.
    pub dir: PathBuf,
    pub settings: ProjectSettings,
    /// Names of `environments/*.toml`, sorted.
    pub envs: Vec<String>,
}

impl Project {
    /// The file that defines environment `name`.
    pub fn env_file(&self, name: &str) -> PathBuf {
        env_file(&self.dir, name)
    }

    /// The environments a command works on, in the order it should visit them.
    ///
    /// `names`, when given, win (in the order given, repeats dropped; `all` is then ignored,
    /// the command line is expected to make the two exclusive). `all` takes every environment:
    /// those of `settings.order` first, then the rest by name. With neither, a project with
    /// exactly one environment selects it; with several the caller must choose.
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<String>, ConfigError> {
        if self.envs.is_empty() {
            return Err(ConfigError::NoEnvironments {
                dir: self.dir.clone(),
            });
        }
        if !names.is_empty() {
            let mut selected: Vec<String> = Vec::new();
            for name in names {
                if !self.envs.contains(name) {
                    return Err(self.unknown(name));
                }
                if !selected.contains(name) {
                    selected.push(name.clone());
                }
            }
            return Ok(selected);
        }
        if all {
            let mut selected: Vec<String> = (self.settings.order.iter())
                .filter(|n| self.envs.contains(n))
                .cloned()
                .collect();
            let rest: Vec<String> = (self.envs.iter())
                .filter(|e| !selected.contains(e))
                .cloned()
                .collect();
            selected.extend(rest);
            return Ok(selected);
        }
        match self.envs.as_slice() {
            [only] => Ok(vec![only.clone()]),
            _ => Err(ConfigError::NoSelection {
                known: self.envs.clone(),
            }),
        }
    }

    fn unknown(&self, name: &str) -> ConfigError {
        ConfigError::UnknownEnvironment {
            name: name.to_string(),
            dir: self.dir.clone(),
            known: self.envs.clone(),
        }
    }
}

fn env_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(ENVIRONMENTS_DIR).join(format!("{name}.toml"))
}

/// Reads the project at `dir`: the optional `perses-oci.toml` and the list of environments.
///
/// A project without environments loads (so that `import` can write the first one);
/// `Project::select` refuses it.
pub fn load_project(dir: &Path) -> Result<Project, ConfigError> {
    let source = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )),
        Err(e) => Some(e),
    };
    if let Some(source) = source {
        return Err(ConfigError::Io {
            path: dir.to_path_buf(),
            source,
        });
    }
    let envs = list_envs(dir)?;
    let settings_file = dir.join(SETTINGS_FILE);
    let settings = match read_text(&settings_file) {
        Ok(text) => parse_settings(&settings_file, &text, &envs)?,
        Err(ConfigError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            ProjectSettings::default()
        }
        Err(e) => return Err(e),
    };
    Ok(Project {
        dir: dir.to_path_buf(),
        settings,
        envs,
    })
}

/// Reads and validates environment `name` of `project`.
///
/// Beyond `parse_env`, checks that `registry.ca_file` exists, since only here may we look.
pub fn load_env(project: &Project, name: &str) -> Result<Desired, ConfigError> {
    if !project.envs.iter().any(|e| e == name) {
        return Err(project.unknown(name));
    }
    let file = project.env_file(name);
    let text = read_text(&file)?;
    let parsed = env::parse(name, &file, &text, &project.dir)?;
    if let (Some(ca), Some((line, column))) = (&parsed.desired.registry.ca_file, parsed.ca_file_at)
    {
        let problem = match std::fs::metadata(ca) {
            Ok(m) if m.is_file() => None,
            Ok(_) => Some(format!("{} is not a file", ca.display())),
            Err(e) => Some(format!("cannot read {}: {e}", ca.display())),
        };
        if let Some(message) = problem {
            return Err(ConfigError::Invalid {
                diagnostics: vec![Diagnostic {
                    file,
                    line,
                    column,
                    key: "registry.ca_file".to_string(),
                    message,
                }],
            });
        }
    }
    Ok(parsed.desired)
}

/// `environments/*.toml`, sorted. Hidden files (editor locks and swap files) are not
/// environments; a file name that is not a valid environment name is refused rather than
/// skipped, as its author surely meant it to be one.
fn list_envs(dir: &Path) -> Result<Vec<String>, ConfigError> {
    let env_dir = dir.join(ENVIRONMENTS_DIR);
    let entries = match std::fs::read_dir(&env_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Io {
                path: env_dir,
                source,
            });
        }
    };
    let mut envs = Vec::new();
    let mut diagnostics = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Io {
            path: env_dir.clone(),
            source,
        })?;
        let path = entry.path();
        let file_name = entry.file_name();
        let hidden = file_name.as_encoded_bytes().starts_with(b".");
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        // Follows symlinks: a linked environment file counts, a directory does not.
        if hidden || !is_toml || !path.is_file() {
            continue;
        }
        let at_file = |message: String| Diagnostic {
            file: path.clone(),
            line: 1,
            column: 1,
            key: String::new(),
            message,
        };
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            diagnostics.push(at_file("environment file names must be valid UTF-8".into()));
            continue;
        };
        match validate::dns_label(stem) {
            Ok(()) => envs.push(stem.to_string()),
            Err(e) => diagnostics.push(at_file(format!(
                "environment name {stem:?} (the file name) {e}"
            ))),
        }
    }
    if !diagnostics.is_empty() {
        diagnostics.sort_by(|a, b| a.file.cmp(&b.file));
        return Err(ConfigError::Invalid { diagnostics });
    }
    envs.sort();
    Ok(envs)
}

/// The file as UTF-8 text; invalid UTF-8 is a diagnostic at the first bad byte.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let prefix = std::str::from_utf8(valid).unwrap_or_default();
        let (line, column) = Doc::new(path, prefix).position(prefix.len());
        ConfigError::Invalid {
            diagnostics: vec![Diagnostic {
                file: path.to_path_buf(),
                line,
                column,
                key: String::new(),
                message: "not valid UTF-8 (TOML files must be UTF-8)".to_string(),
            }],
        }
    })
}
