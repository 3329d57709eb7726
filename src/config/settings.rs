//! Project-wide settings (`perses-oci.toml` at the project root). Pure: the caller reads the
//! file and lists the environments.

use std::collections::HashMap;
use std::path::Path;

use super::doc::Doc;
use super::error::ConfigError;
use super::suggest::did_you_mean;

/// The name of the settings file at the project root.
pub const SETTINGS_FILE: &str = "perses-oci.toml";

const KEYS: &[&str] = &["order"];

/// What `perses-oci.toml` says; every field has a default, as the file itself is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectSettings {
    /// Environments `--all` applies first, in this order (e.g. staging before prod); the rest
    /// follow by name.
    pub order: Vec<String>,
}

/// Parses the settings in `text` (the contents of `file`); `envs` are the environments that
/// exist, which `order` may name.
pub fn parse_settings(
    file: &Path,
    text: &str,
    envs: &[String],
) -> Result<ProjectSettings, ConfigError> {
    let mut doc = Doc::new(file, text);
    let Some(root) = doc.parse() else {
        return Err(ConfigError::Invalid {
            diagnostics: doc.into_diagnostics(),
        });
    };
    doc.check_keys(&root, "", KEYS);
    let known: Vec<&str> = envs.iter().map(String::as_str).collect();
    let mut order = Vec::new();
    if let Some(names) = doc.string_array(&root, "", "order") {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, name) in names.into_iter().enumerate() {
            let Some(name) = name else { continue };
            if let Some(first) = seen.get(&name.value) {
                let message = format!("{:?} is listed twice (first as order[{first}])", name.value);
                doc.error(&name.span, name.key, message);
            } else if !known.contains(&name.value.as_str()) {
                let message = format!(
                    "no environment named {:?} (known: {}){}",
                    name.value,
                    known.join(", "),
                    did_you_mean(&name.value, &known)
                );
                doc.error(&name.span, name.key, message);
            } else {
                seen.insert(name.value.clone(), i);
                order.push(name.value);
            }
        }
    }
    if doc.has_errors() {
        return Err(ConfigError::Invalid {
            diagnostics: doc.into_diagnostics(),
        });
    }
    Ok(ProjectSettings { order })
}
