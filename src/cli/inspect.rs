//! `perses-oci inspect REF [--tree]`: flags to `ops::inspect`, and the text it prints.

use super::Global;
use crate::artifact::read::{DEFAULT_MAX_BYTES, Limits, MAX_BYTES_ENV, parse_size};
use crate::model::RegistrySettings;
use crate::ops::inspect::{InspectOptions, Inspection};
use crate::ops::push::human_bytes;
use crate::ops::{self, exit};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// REPO:TAG, REPO@sha256:... or oci:PATH:TAG.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Also list every file with its size.
    #[arg(long)]
    pub tree: bool,
    /// Refuse artifacts whose layers decompress to more than SIZE (bytes, or with K, M, G).
    #[arg(long, value_name = "SIZE", env = MAX_BYTES_ENV, value_parser = size_arg)]
    pub max_size: Option<u64>,
    /// A registry (HOST[:PORT]) reached over plain HTTP. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Extra CA certificates (PEM) to trust for the registry.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).ok_or_else(|| format!("invalid size {s:?}: use bytes or e.g. 512M, 4G"))
}

pub async fn run(_g: &Global, a: &InspectArgs) -> anyhow::Result<i32> {
    let opts = InspectOptions {
        reference: a.reference.clone(),
        registry: RegistrySettings {
            insecure: a.insecure_registry.clone(),
            ca_file: a.ca_file.clone(),
        },
        limits: Limits {
            max_bytes: a.max_size.unwrap_or(DEFAULT_MAX_BYTES),
        },
    };
    let i = ops::inspect::inspect(&opts).await?;
    print!("{}", human(&i, a.tree));
    Ok(exit::OK)
}

fn plural(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

/// The text `inspect` prints.
pub fn human(i: &Inspection, tree: bool) -> String {
    let t = &i.tree;
    let mut s = String::new();
    let _ = writeln!(s, "reference:   {}", t.reference);
    let _ = writeln!(s, "digest:      {}", t.digest);
    let _ = writeln!(s, "media type:  {}", t.media_type);
    if t.manifest_digest != t.digest {
        let _ = writeln!(s, "manifest:    {} (read for linux)", t.manifest_digest);
    }
    let _ = writeln!(s, "platforms:   {}", t.platforms.join(", "));
    let _ = writeln!(s, "created:     {}", t.created.as_deref().unwrap_or("-"));
    let _ = writeln!(
        s,
        "size:        {}, {} ({} compressed)",
        plural(i.files.len(), "file"),
        human_bytes(t.size),
        human_bytes(t.layers_size)
    );
    if !t.annotations.is_empty() {
        let _ = writeln!(s, "annotations:");
        for (k, v) in &t.annotations {
            let _ = writeln!(s, "  {k}: {v}");
        }
    }
    let _ = writeln!(s, "folders (subPath candidates):");
    let width = i
        .folders
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    for f in &i.folders {
        let name = if f.name.is_empty() { "(root)" } else { &f.name };
        let _ = writeln!(
            s,
            "  {name:<width$}  {:>9}  {}",
            plural(f.files, "file"),
            human_bytes(f.bytes)
        );
    }
    if i.resource_files > 0 {
        let _ = writeln!(
            s,
            "resources ({} read by Perses):",
            plural(i.resource_files, "file")
        );
        for (k, n) in &i.kinds {
            let _ = writeln!(s, "  {k}: {n}");
        }
        if !i.unreadable.is_empty() {
            let _ = writeln!(
                s,
                "  undecodable (Perses skips them): {}",
                i.unreadable.join(", ")
            );
        }
    }
    if tree {
        let _ = writeln!(s, "tree:");
        let mut paths: Vec<(&str, Option<u64>)> = t
            .dirs
            .iter()
            .map(|d| (d.as_str(), None))
            .chain(i.files.iter().map(|(p, n)| (p.as_str(), Some(*n))))
            .collect();
        paths.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
        for (p, size) in paths {
            let depth = p.matches('/').count();
            let name = p.rsplit('/').next().unwrap_or(p);
            match size {
                None => {
                    let _ = writeln!(s, "  {}{name}/", "  ".repeat(depth));
                }
                Some(n) => {
                    let _ = writeln!(s, "  {}{name}  {}", "  ".repeat(depth), human_bytes(n));
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::read::Tree;

    #[test]
    fn human_output() {
        let mut t = Tree {
            reference: "r.example/p:v1".into(),
            digest: "sha256:index".into(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            manifest_digest: "sha256:amd".into(),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            created: Some("1970-01-01T00:00:00Z".into()),
            layers_size: 100,
            size: 5,
            ..Default::default()
        };
        t.annotations
            .insert("org.opencontainers.image.title".into(), "res".into());
        let mut files = std::collections::BTreeMap::new();
        files.insert("prod/a.json".to_string(), 18u64);
        files.insert("top.txt".to_string(), 1u64);
        let mut decoded = std::collections::BTreeMap::new();
        decoded.insert("prod/a.json".to_string(), Ok(vec!["Project".to_string()]));
        t.dirs.insert("prod".into());
        let out = human(&ops::inspect::summarize(t, files, &decoded), true);
        assert_eq!(
            out,
            "\
reference:   r.example/p:v1
digest:      sha256:index
media type:  application/vnd.oci.image.index.v1+json
manifest:    sha256:amd (read for linux)
platforms:   linux/amd64, linux/arm64
created:     1970-01-01T00:00:00Z
size:        2 files, 5 B (100 B compressed)
annotations:
  org.opencontainers.image.title: res
folders (subPath candidates):
  (root)     1 file  1 B
  prod       1 file  18 B
resources (1 file read by Perses):
  Project: 1
tree:
  prod/
    a.json  18 B
  top.txt  1 B
"
        );
    }
}
