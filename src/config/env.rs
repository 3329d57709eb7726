//! One environment file (`environments/NAME.toml`) into a validated `Desired`. Pure: the text
//! comes in, a value or every diagnostic goes out.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use super::doc::{Doc, Field, Span};
use super::error::ConfigError;
use super::validate;
use crate::model::{
    ArtifactSpec, Desired, Pin, RegistrySettings, Target, WorkloadKind, WorkloadRef,
};

const ROOT_KEYS: &[&str] = &["target", "artifact", "registry"];
const TARGET_KEYS: &[&str] = &["context", "namespace", "workload", "container", "manifest"];
const ARTIFACT_KEYS: &[&str] = &[
    "name",
    "image",
    "tag",
    "pull_policy",
    "mount_path",
    "sub_path",
    "pin",
    "source",
];
const REGISTRY_KEYS: &[&str] = &["insecure", "ca_file"];

const DEFAULT_WORKLOAD_NAME: &str = "perses";
const DEFAULT_CONTAINER: &str = "perses";

/// What `load_env` needs beyond the value, to check the file system afterwards.
pub(super) struct Parsed {
    pub desired: Desired,
    /// Where `ca_file` was written, to position a "no such file" diagnostic.
    pub ca_file_at: Option<(usize, usize)>,
}

/// Parses and validates the environment `name` from `text`, the contents of `file`.
///
/// `file` is only used to name the file in diagnostics and in the result; `project_dir` to
/// resolve a relative `ca_file`. No I/O.
pub fn parse_env(
    name: &str,
    file: &Path,
    text: &str,
    project_dir: &Path,
) -> Result<Desired, ConfigError> {
    parse(name, file, text, project_dir).map(|p| p.desired)
}

pub(super) fn parse(
    name: &str,
    file: &Path,
    text: &str,
    project_dir: &Path,
) -> Result<Parsed, ConfigError> {
    let mut doc = Doc::new(file, text);
    if let Err(e) = validate::dns_label(name) {
        doc.error(
            &(0..0),
            "",
            format!("environment name {name:?} (the file name) {e}"),
        );
    }
    let Some(root) = doc.parse() else {
        return Err(invalid(doc));
    };
    doc.check_keys(&root, "", ROOT_KEYS);
    let target = target(&mut doc, &root, project_dir);
    let artifacts = artifacts(&mut doc, &root);
    let (registry, ca_file_at) = registry(&mut doc, &root, project_dir);
    match (target, artifacts, registry) {
        (Some(target), Some(artifacts), Some(registry)) if !doc.has_errors() => Ok(Parsed {
            desired: Desired {
                env: name.to_string(),
                file: file.to_path_buf(),
                file_sha256: sha256(text.as_bytes()),
                target,
                artifacts,
                registry,
            },
            ca_file_at: ca_file_at.map(|span| doc.position(span.start)),
        }),
        _ => Err(invalid(doc)),
    }
}

fn invalid(doc: Doc<'_>) -> ConfigError {
    ConfigError::Invalid {
        diagnostics: doc.into_diagnostics(),
    }
}

/// `sha256:` and the lowercase hex digest, as plan files record it.
pub(super) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn target(doc: &mut Doc<'_>, root: &DeTable<'_>, project_dir: &Path) -> Option<Target> {
    const P: &str = "target";
    if root.get(P).is_none() {
        doc.missing(
            &(0..0),
            P.to_string(),
            "missing [target] table (at least `namespace` is required)",
        );
        return None;
    }
    let (table, span) = doc.table(root, "", P)?;
    doc.check_keys(table, P, TARGET_KEYS);
    let context = optional(doc, table, P, "context", |s| match s {
        "" => Err("must not be empty (omit `context` to use the current context)".into()),
        _ => Ok(s.to_string()),
    });
    // A manifest file replaces the cluster: no context, and the namespace may come from it.
    let manifest = optional(doc, table, P, "manifest", |s| match s {
        "" => Err("must not be empty".into()),
        s if s.contains('\0') => Err("must not contain NUL".into()),
        // Relative to the project directory; kept as written when that is the working one.
        s if project_dir == Path::new(".") || project_dir.as_os_str().is_empty() => Ok(s.into()),
        s => Ok(project_dir.join(s)),
    });
    let has_manifest = matches!(manifest, Some(Some(_)));
    if has_manifest
        && table.get("context").is_some()
        && let Some(c) = doc.string(table, P, "context")
    {
        doc.error(
            &c.span,
            format!("{P}.context"),
            "`context` and `manifest` exclude each other: a target is a cluster or a manifest file",
        );
    }
    let namespace = if has_manifest && table.get("namespace").is_none() {
        Some(Field {
            value: String::new(),
            span: 0..0,
            key: format!("{P}.namespace"),
        })
    } else {
        doc.required_string(table, &span, P, "namespace")
            .filter(|f| doc.check(f, validate::dns_label))
    };
    let workload = optional(doc, table, P, "workload", validate::workload).map(|w| {
        w.unwrap_or_else(|| WorkloadRef {
            kind: WorkloadKind::StatefulSet,
            name: DEFAULT_WORKLOAD_NAME.to_string(),
        })
    });
    let container = optional(doc, table, P, "container", |s| {
        validate::dns_label(s).map(|()| s.to_string())
    })
    .map(|c| c.unwrap_or_else(|| DEFAULT_CONTAINER.to_string()));
    Some(Target {
        context: context?,
        namespace: namespace?.value,
        workload: workload?,
        container: container?,
        manifest: manifest?,
    })
}

fn artifacts(doc: &mut Doc<'_>, root: &DeTable<'_>) -> Option<Vec<ArtifactSpec>> {
    const P: &str = "artifact";
    let Some(value) = root.get(P) else {
        doc.missing(
            &(0..0),
            P.to_string(),
            "missing [artifact] table: at least one artifact is required",
        );
        return None;
    };
    // `[artifact]` reads as one artifact and keeps the simple key path `artifact.name`;
    // `[[artifact]]` numbers them.
    let tables: Vec<(String, &DeTable<'_>, Span)> = match value.get_ref() {
        DeValue::Table(t) => vec![(P.to_string(), t, value.span())],
        DeValue::Array(items) => {
            if items.is_empty() {
                doc.error(&value.span(), P, "at least one artifact is required");
                return None;
            }
            let mut tables = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let key = format!("{P}[{i}]");
                match item.get_ref() {
                    DeValue::Table(t) => tables.push((key, t, item.span())),
                    _ => doc.type_error(item, &key, "a table"),
                }
            }
            tables
        }
        _ => {
            doc.type_error(
                value,
                P,
                "a table ([artifact]) or an array of tables ([[artifact]])",
            );
            return None;
        }
    };

    let mut specs = Vec::new();
    let mut names = Vec::new();
    let mut mounts = Vec::new();
    // Items that are not tables were reported above and leave the list incomplete.
    let mut complete = tables.len() == value.get_ref().as_array().map_or(1, |a| a.len());
    for (prefix, table, span) in tables {
        let (spec, name, mount) = artifact(doc, table, &span, &prefix);
        names.extend(name);
        mounts.extend(mount);
        match spec {
            Some(s) => specs.push(s),
            None => complete = false,
        }
    }
    // Two volumes with one name is invalid in a pod; two mounts at one path shadow each other.
    duplicates(doc, &names, "artifact name");
    duplicates(doc, &mounts, "mount path");
    complete.then_some(specs)
}

/// One artifact table; also returns the name and mount path when they are valid on their own,
/// so that duplicates are found even when another key of the artifact is wrong.
fn artifact(
    doc: &mut Doc<'_>,
    table: &DeTable<'_>,
    span: &Span,
    p: &str,
) -> (Option<ArtifactSpec>, Option<Field>, Option<Field>) {
    doc.check_keys(table, p, ARTIFACT_KEYS);
    let name = doc
        .required_string(table, span, p, "name")
        .filter(|f| doc.check(f, validate::dns_label));
    let image = doc
        .required_string(table, span, p, "image")
        .filter(|f| doc.check(f, validate::repository));
    let tag = doc
        .required_string(table, span, p, "tag")
        .filter(|f| doc.check(f, validate::tag));
    let mount_path = doc
        .required_string(table, span, p, "mount_path")
        .filter(|f| doc.check(f, validate::mount_path));

    let pull_policy = optional(doc, table, p, "pull_policy", validate::pull_policy);
    let sub_path = optional(doc, table, p, "sub_path", |s| {
        validate::sub_path(s).map(|()| s.to_string())
    });
    let pin = optional(doc, table, p, "pin", validate::pin).map(|p| p.unwrap_or(Pin::Digest));
    let source = match table.get("source") {
        None => Some(None),
        Some(_) => doc.string(table, p, "source").and_then(|f| {
            let image_is_layout = image.as_ref().is_some_and(|i| i.value.starts_with("oci:"));
            if image_is_layout {
                doc.error(
                    &f.span,
                    f.key.clone(),
                    "`image` is already an OCI layout: `source` is for an `image` that names the registry repository the workload pulls",
                );
                return None;
            }
            doc.convert(&f, validate::layout_source).map(Some)
        }),
    };

    let spec = (|| {
        Some(ArtifactSpec {
            name: name.clone()?.value,
            image: image?.value,
            tag: tag?.value,
            pull_policy: pull_policy?,
            mount_path: mount_path.clone()?.value,
            sub_path: sub_path?,
            pin: pin?,
            source: source?,
        })
    })();
    (spec, name, mount_path)
}

/// An optional key: `Some(None)` when absent, `None` when present but wrong.
fn optional<T>(
    doc: &mut Doc<'_>,
    table: &DeTable<'_>,
    prefix: &str,
    key: &str,
    convert: impl FnOnce(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    if table.get(key).is_none() {
        return Some(None);
    }
    let field = doc.string(table, prefix, key)?;
    doc.convert(&field, convert).map(Some)
}

fn duplicates(doc: &mut Doc<'_>, fields: &[Field], what: &str) {
    let mut first: HashMap<&str, &Field> = HashMap::new();
    for f in fields {
        match first.get(f.value.as_str()) {
            Some(earlier) => {
                let (line, _) = doc.position(earlier.span.start);
                let message = format!(
                    "duplicate {what} {:?} (also used by {} on line {line})",
                    f.value, earlier.key
                );
                doc.error(&f.span, f.key.clone(), message);
            }
            None => {
                first.insert(&f.value, f);
            }
        }
    }
}

fn registry(
    doc: &mut Doc<'_>,
    root: &DeTable<'_>,
    project_dir: &Path,
) -> (Option<RegistrySettings>, Option<Span>) {
    const P: &str = "registry";
    if root.get(P).is_none() {
        return (Some(RegistrySettings::default()), None);
    }
    let Some((table, _)) = doc.table(root, "", P) else {
        return (None, None);
    };
    doc.check_keys(table, P, REGISTRY_KEYS);

    let insecure = match doc.string_array(table, P, "insecure") {
        Some(hosts) => {
            // Every host is checked, not just up to the first bad one.
            let checked: Vec<Option<String>> = (hosts.into_iter())
                .map(|h| {
                    h.filter(|h| doc.check(h, validate::host_port))
                        .map(|h| h.value)
                })
                .collect();
            checked.into_iter().collect()
        }
        None if table.get("insecure").is_some() => None,
        None => Some(Vec::new()),
    };

    // `join` keeps an absolute path as it is.
    let ca_file = optional(doc, table, P, "ca_file", |s| match s {
        "" => Err("must not be empty (omit `ca_file` to use the system roots)".into()),
        _ => Ok(project_dir.join(s)),
    });
    match (insecure, ca_file) {
        (Some(insecure), Some(ca_file)) => {
            let span = table.get("ca_file").map(|v| v.span());
            (Some(RegistrySettings { insecure, ca_file }), span)
        }
        _ => (None, None),
    }
}
