//! Reads a project's TOML files (`perses-oci.toml`, `environments/NAME.toml`) and turns them
//! into the validated `model::Desired`, reporting every mistake with file, line, column and key.
//!
//! Parsing and validation are pure functions over text (`parse_env`, `parse_settings`); only
//! `load_project` and `load_env` touch the file system.

mod doc;
mod env;
mod error;
mod project;
mod render;
mod settings;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;

pub use env::parse_env;
pub use error::{ConfigError, Diagnostic};
pub use project::{ENVIRONMENTS_DIR, Project, load_env, load_project};
pub use render::{render_env_toml, render_env_toml_in};
pub use settings::{ProjectSettings, SETTINGS_FILE, parse_settings};
