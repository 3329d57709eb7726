//! What the configs and manifests say besides the layer: `created` from SOURCE_DATE_EPOCH, and
//! the annotations (title, and source and revision from git).

use super::{
    ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE, ANNOTATION_TITLE, BuildError,
    DEFAULT_CREATED,
};
use std::collections::BTreeMap;
use std::path::Path;

/// What goes into the configs and manifests besides the layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// RFC 3339, UTC.
    pub created: String,
    /// Manifest and index annotations (`created` included).
    pub annotations: BTreeMap<String, String>,
}

/// `created` from SOURCE_DATE_EPOCH (reproducible-builds.org), or 1970-01-01T00:00:00Z.
pub fn created_from_epoch(source_date_epoch: Option<&str>) -> Result<String, BuildError> {
    let Some(v) = source_date_epoch.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_CREATED.to_string());
    };
    let bad = || BuildError::BadEpoch {
        value: v.to_string(),
    };
    let secs: i64 = v.parse().map_err(|_| bad())?;
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or_else(bad)?;
    Ok(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The metadata for `dir`: title from its name, created from SOURCE_DATE_EPOCH, source and
/// revision from git when `dir` is in a repository (left out when git or the repository is
/// missing, or has no `origin`).
pub fn metadata(dir: &Path, source_date_epoch: Option<&str>) -> Result<Metadata, BuildError> {
    let created = created_from_epoch(source_date_epoch)?;
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_CREATED.to_string(), created.clone());
    let title = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(t) = title {
        annotations.insert(ANNOTATION_TITLE.to_string(), t);
    }
    if let Some(rev) = git(dir, &["rev-parse", "HEAD"]) {
        annotations.insert(ANNOTATION_REVISION.to_string(), rev);
        if let Some(url) = git(dir, &["config", "--get", "remote.origin.url"]) {
            annotations.insert(ANNOTATION_SOURCE.to_string(), strip_userinfo(&url));
        }
    }
    Ok(Metadata {
        created,
        annotations,
    })
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// A remote URL may carry a token (`https://user:token@host/...`): it would end up in every
/// pull's annotations.
pub fn strip_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    url.to_string()
}
