//! `Desired` back into an environment file, for `import`: the inverse of `parse_env`, written
//! the way a person would (defaults left out, comments saying what each key does).

use std::fmt::Write as _;
use std::path::Path;

use crate::model::{ArtifactSpec, Desired, Pin};

/// The environment file for `desired`. `registry.ca_file` is written as it is; use
/// `render_env_toml_in` to write it relative to the project directory, which is what makes
/// `parse_env(render(d))` give back `d` when the path is relative.
pub fn render_env_toml(desired: &Desired) -> String {
    render(desired, None)
}

/// Like `render_env_toml`, but a `ca_file` under `project_dir` is written relative to it.
pub fn render_env_toml_in(desired: &Desired, project_dir: &Path) -> String {
    render(desired, Some(project_dir))
}

fn render(d: &Desired, project_dir: Option<&Path>) -> String {
    let mut out = String::new();
    // `write!` into a String cannot fail; the results are ignored for that reason only.
    let _ = writeln!(out, "# perses-oci environment {:?}.", d.env);
    let _ = writeln!(
        out,
        "# `perses-oci plan --env {}` shows what applying this file would change.",
        d.env
    );

    let t = &d.target;
    out.push_str("\n# The workload perses-oci edits: only its image volumes and their mounts.\n");
    out.push_str("[target]\n");
    match &t.context {
        Some(c) => line(&mut out, "context", c),
        None => {
            out.push_str("# context = \"...\"   # kubeconfig context; the current one when unset\n")
        }
    }
    line(&mut out, "namespace", &t.namespace);
    line(&mut out, "workload", &t.workload.to_string());
    line(&mut out, "container", &t.container);

    let several = d.artifacts.len() > 1;
    for a in &d.artifacts {
        artifact(&mut out, a, several);
    }

    let r = &d.registry;
    if !r.insecure.is_empty() || r.ca_file.is_some() {
        out.push_str("\n[registry]\n");
        if !r.insecure.is_empty() {
            out.push_str("# Registries reached over plain HTTP.\n");
            let hosts: Vec<String> = r.insecure.iter().map(|h| quote(h)).collect();
            let _ = writeln!(out, "insecure = [{}]", hosts.join(", "));
        }
        if let Some(ca) = &r.ca_file {
            let ca = project_dir
                .and_then(|dir| ca.strip_prefix(dir).ok())
                .filter(|rel| !rel.as_os_str().is_empty())
                .unwrap_or(ca);
            out.push_str("# Extra CA bundle, relative to the project directory.\n");
            line(&mut out, "ca_file", &ca.to_string_lossy());
        }
    }
    out
}

fn artifact(out: &mut String, a: &ArtifactSpec, several: bool) {
    out.push_str("\n# An OCI image mounted read-only into the container.\n");
    out.push_str(if several {
        "[[artifact]]\n"
    } else {
        "[artifact]\n"
    });
    line(out, "name", &a.name);
    line(out, "image", &a.image);
    line(out, "tag", &a.tag);
    if let Some(p) = a.pull_policy {
        line(out, "pull_policy", p.as_str());
    }
    line(out, "mount_path", &a.mount_path);
    if let Some(s) = &a.sub_path {
        line(out, "sub_path", s);
    }
    if a.pin == Pin::Tag {
        out.push_str("# Write repo:tag into the workload instead of pinning the digest.\n");
        line(out, "pin", "tag");
    }
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {}", quote(value));
}

/// A TOML string literal; the serializer knows the escaping rules.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
