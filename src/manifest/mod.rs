//! Manifest files as targets (GitOps: the workload's YAML lives in Git). Reads the workload from
//! a multi-document YAML file and rewrites only the managed image volumes and their mounts,
//! keeping every other byte (comments, order, quoting, other documents). Pure: text in, text out.

use crate::model::{ArtifactState, WorkloadKind, WorkloadRef};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: document {doc}: invalid YAML: {message}")]
    Yaml {
        file: String,
        doc: usize,
        message: String,
    },
    #[error("{file}: no {wanted} among its documents (found: {found})")]
    NotFound {
        file: String,
        wanted: String,
        found: String,
    },
    #[error(
        "{file}: several StatefulSets/Deployments ({found}); name one with `workload` in [target]"
    )]
    Ambiguous { file: String, found: String },
    #[error(
        "{file}: {what} is written in flow style ({line}); perses-oci edits block-style YAML only, so it can keep every other byte as it is"
    )]
    FlowStyle {
        file: String,
        what: String,
        line: usize,
    },
    #[error("{file}: cannot find {what} in the {workload} document")]
    Shape {
        file: String,
        what: String,
        workload: String,
    },
}

/// One YAML document of a file: its line range and parsed value.
#[derive(Debug, Clone)]
pub struct Doc {
    pub index: usize,
    /// Line indexes [start, end) in the file.
    pub start: usize,
    pub end: usize,
    pub value: Value,
}

fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn is_separator(line: &str) -> bool {
    let t = line.trim_end();
    t == "---" || t.starts_with("--- ") || t.starts_with("---#") || t == "..."
}

/// Splits a file into documents and parses each one.
pub fn documents(file: &str, text: &str) -> Result<Vec<Doc>, ManifestError> {
    let ls = lines(text);
    let mut docs = Vec::new();
    let mut start = 0;
    let push = |start: usize, end: usize, docs: &mut Vec<Doc>| -> Result<(), ManifestError> {
        let body: String = ls[start..end].concat();
        if body.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        }) {
            return Ok(());
        }
        let value: Value = serde_saphyr::from_str(&body).map_err(|e| ManifestError::Yaml {
            file: file.to_string(),
            doc: docs.len() + 1,
            message: e.to_string(),
        })?;
        docs.push(Doc {
            index: docs.len(),
            start,
            end,
            value,
        });
        Ok(())
    };
    for (i, l) in ls.iter().enumerate() {
        if is_separator(l) {
            push(start, i, &mut docs)?;
            start = i + 1;
        }
    }
    push(start, ls.len(), &mut docs)?;
    Ok(docs)
}

fn kind_of(v: &Value) -> Option<WorkloadKind> {
    match (v["apiVersion"].as_str(), v["kind"].as_str()) {
        (Some("apps/v1"), Some("StatefulSet")) => Some(WorkloadKind::StatefulSet),
        (Some("apps/v1"), Some("Deployment")) => Some(WorkloadKind::Deployment),
        _ => None,
    }
}

/// Finds the workload document: the one named by `workload`, or the only StatefulSet or
/// Deployment of the file when `workload` is `None`.
pub fn find_workload<'a>(
    file: &str,
    docs: &'a [Doc],
    workload: Option<&WorkloadRef>,
) -> Result<&'a Doc, ManifestError> {
    let workloads: Vec<&Doc> = docs
        .iter()
        .filter(|d| kind_of(&d.value).is_some())
        .collect();
    let describe = |ds: &[&Doc]| {
        let names: Vec<String> = ds
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    kind_of(&d.value).map(|k| k.as_str()).unwrap_or("?"),
                    d.value["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match workload {
        Some(w) => workloads
            .iter()
            .find(|d| {
                kind_of(&d.value) == Some(w.kind) && d.value["metadata"]["name"] == w.name.as_str()
            })
            .copied()
            .ok_or_else(|| ManifestError::NotFound {
                file: file.to_string(),
                wanted: w.to_string(),
                found: describe(&workloads),
            }),
        None => match workloads.as_slice() {
            [one] => Ok(one),
            [] => Err(ManifestError::NotFound {
                file: file.to_string(),
                wanted: "StatefulSet or Deployment".into(),
                found: "none".into(),
            }),
            many => Err(ManifestError::Ambiguous {
                file: file.to_string(),
                found: describe(many),
            }),
        },
    }
}

/// Finds a ConfigMap document by name (the Perses config, when it is in the same file).
pub fn find_config_map<'a>(docs: &'a [Doc], name: &str) -> Option<&'a Doc> {
    docs.iter()
        .find(|d| d.value["kind"] == "ConfigMap" && d.value["metadata"]["name"] == name)
}

// ---- the editor: block-style YAML, by indentation ----

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The key of a `key: value` or `- key: value` line, with its indentation (of the key itself).
fn key_of(line: &str) -> Option<(usize, &str)> {
    let ind = indent(line);
    let rest = &line[ind..];
    let (ind, rest) = match rest.strip_prefix("- ") {
        Some(r) => (
            ind + 2 + (r.len() - r.trim_start_matches(' ').len()),
            r.trim_start_matches(' '),
        ),
        None => (ind, rest),
    };
    let colon = rest.find(':')?;
    let key = rest[..colon].trim_matches(|c| c == '"' || c == '\'');
    let after = &rest[colon + 1..];
    if !(after.is_empty() || after.starts_with([' ', '\n', '\r'])) {
        return None;
    }
    if key.is_empty() || key.contains(' ') && !rest.starts_with(['"', '\'']) {
        return None;
    }
    Some((ind, key))
}

/// Where a key's block ends: the first later non-blank line indented less than the key, or as
/// much but not a `- ` item (YAML lets a sequence's items sit at its key's indentation).
fn block_end(ls: &[&str], from: usize, end: usize, ind: usize) -> usize {
    let mut i = from + 1;
    while i < end {
        let l = ls[i];
        let li = indent(l);
        if !blank_or_comment(l) && (li < ind || (li == ind && !l[li..].starts_with("- "))) {
            return trim_trailing(ls, from + 1, i);
        }
        i += 1;
    }
    trim_trailing(ls, from + 1, end)
}

/// Blank and comment lines at the end of a block belong to what follows.
fn trim_trailing(ls: &[&str], start: usize, mut end: usize) -> usize {
    while end > start && blank_or_comment(ls[end - 1]) {
        end -= 1;
    }
    end
}

/// Finds `key` as a direct child of the mapping spanning lines (start, end) at child indent.
fn find_key(ls: &[&str], start: usize, end: usize, key: &str) -> Option<usize> {
    let child = (start..end)
        .find(|&i| !blank_or_comment(ls[i]))
        .map(|i| key_of(ls[i]).map(|(ind, _)| ind))??;
    (start..end).find(|&i| key_of(ls[i]) == Some((child, key)) && !blank_or_comment(ls[i]))
}

/// The value text after `key:` on a line, if any (flow collections start with `[` or `{`).
fn inline_value(line: &str) -> &str {
    let colon = line.find(':').map(|c| c + 1).unwrap_or(line.len());
    let v = line[colon..].trim();
    match v.find(" #") {
        Some(i) if !v.starts_with(['"', '\'']) => v[..i].trim(),
        _ => v,
    }
}

/// The items of a block sequence under the key on line `k`: (first line, end line) each.
fn seq_items(ls: &[&str], k: usize, end: usize) -> Vec<(usize, usize)> {
    let kind = indent(ls[k]);
    let mut items = Vec::new();
    let mut i = k + 1;
    let mut item_ind = None;
    while i < end {
        let l = ls[i];
        if blank_or_comment(l) {
            i += 1;
            continue;
        }
        let ind = indent(l);
        let is_item = l[ind..].starts_with("- ") || l[ind..].trim_end() == "-";
        if ind < kind || (ind == kind && !is_item) {
            break;
        }
        if is_item && item_ind.is_none_or(|ii| ii == ind) {
            item_ind = Some(ind);
            if let Some(last) = items.last_mut() {
                let (s, _): (usize, usize) = *last;
                *last = (s, trim_trailing(ls, s + 1, i));
            }
            items.push((i, end));
        }
        i += 1;
    }
    if let Some(last) = items.last_mut() {
        let (s, _) = *last;
        *last = (s, trim_trailing(ls, s + 1, i));
    }
    items
}

/// A YAML scalar for a value perses-oci writes: plain when unambiguous, else double-quoted.
fn scalar(v: &str, like: Option<&str>) -> String {
    match like.map(|l| l.chars().next()) {
        Some(Some('"')) => return format!("{v:?}"),
        Some(Some('\'')) => return format!("'{}'", v.replace('\'', "''")),
        _ => {}
    }
    let plain_ok = !v.is_empty()
        && !v.contains(": ")
        && !v.contains(" #")
        && !v.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`', ' ',
        ])
        && !v.ends_with(' ')
        && !matches!(v, "true" | "false" | "null" | "~" | "yes" | "no")
        && v.parse::<f64>().is_err();
    if plain_ok {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Replaces the value on a `key: value  # comment` line, keeping key, spacing and comment.
fn replace_value(line: &str, new: &str) -> String {
    let colon = line.find(':').expect("a key line");
    let head = &line[..colon + 1];
    let rest = &line[colon + 1..];
    let nl = if rest.ends_with("\r\n") {
        "\r\n"
    } else if rest.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    let rest = &rest[..rest.len() - nl.len()];
    let lead = &rest[..rest.len() - rest.trim_start().len()];
    let body = rest.trim_start();
    // The old value ends at a closing quote, or before ` #`.
    let (old, tail) = if let Some(q) = body.strip_prefix('"') {
        let mut end = 0;
        let mut esc = false;
        for (i, c) in q.char_indices() {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                end = i + 2;
                break;
            }
        }
        body.split_at(end.min(body.len()))
    } else if let Some(q) = body.strip_prefix('\'') {
        let end = q.find('\'').map(|i| i + 2).unwrap_or(body.len());
        body.split_at(end)
    } else {
        match body.find(" #") {
            Some(i) => (body[..i].trim_end(), &body[body[..i].trim_end().len()..]),
            None => (body, ""),
        }
    };
    let lead = if lead.is_empty() { " " } else { lead };
    format!(
        "{head}{lead}{}{tail}{nl}",
        scalar(new, Some(old).filter(|o| !o.is_empty()))
    )
}

struct Editor<'a> {
    file: &'a str,
    workload: String,
    ls: Vec<String>,
}

/// What one artifact becomes in the file: `Some(state)` to add or update, `None` to remove.
pub type Edit = (String, Option<ArtifactState>);

/// Rewrites the managed volumes and mounts of the workload document `doc` of `text`.
pub fn apply_edits(
    file: &str,
    text: &str,
    doc: &Doc,
    container: &str,
    edits: &[Edit],
) -> Result<String, ManifestError> {
    let mut ed = Editor {
        file,
        workload: format!(
            "{}/{}",
            doc.value["kind"].as_str().unwrap_or("?"),
            doc.value["metadata"]["name"].as_str().unwrap_or("?")
        ),
        ls: lines(text).into_iter().map(str::to_string).collect(),
    };
    let mut end = doc.end;
    for (name, state) in edits {
        end = ed.edit_volume(doc.start, end, name, state.as_ref())?;
        end = ed.edit_mount(doc.start, end, container, name, state.as_ref())?;
    }
    Ok(ed.ls.concat())
}

impl Editor<'_> {
    fn refs(&self) -> Vec<&str> {
        self.ls.iter().map(String::as_str).collect()
    }

    fn shape(&self, what: &str) -> ManifestError {
        ManifestError::Shape {
            file: self.file.to_string(),
            what: what.to_string(),
            workload: self.workload.clone(),
        }
    }

    fn flow_check(&self, k: usize, what: &str) -> Result<(), ManifestError> {
        let v = inline_value(&self.ls[k]);
        if v.starts_with('[') || v.starts_with('{') {
            return Err(ManifestError::FlowStyle {
                file: self.file.to_string(),
                what: what.to_string(),
                line: k + 1,
            });
        }
        Ok(())
    }

    /// The pod spec block: spec -> template -> spec. Returns (key line, block end).
    fn pod_spec(&self, start: usize, end: usize) -> Result<(usize, usize), ManifestError> {
        let ls = self.refs();
        let spec = find_key(&ls, start, end, "spec").ok_or_else(|| self.shape("spec"))?;
        let spec_end = block_end(&ls, spec, end, indent(ls[spec]));
        let tpl = find_key(&ls, spec + 1, spec_end, "template")
            .ok_or_else(|| self.shape("spec.template"))?;
        let tpl_end = block_end(&ls, tpl, spec_end, indent(ls[tpl]));
        let pspec = find_key(&ls, tpl + 1, tpl_end, "spec")
            .ok_or_else(|| self.shape("spec.template.spec"))?;
        Ok((pspec, block_end(&ls, pspec, tpl_end, indent(ls[pspec]))))
    }

    /// Item (start, end) of a block sequence whose item has `name: <name>` (or `key: value`).
    fn find_item(&self, k: usize, end: usize, key: &str, value: &str) -> Option<(usize, usize)> {
        let ls = self.refs();
        seq_items(&ls, k, end).into_iter().find(|&(s, e)| {
            (s..e).any(|i| {
                key_of(ls[i]).is_some_and(|(_, kk)| kk == key)
                    && unquote(inline_value(ls[i])) == value
                    && (i == s || indent(ls[i]) > indent(ls[s]))
            })
        })
    }

    fn splice(&mut self, at: usize, remove: usize, insert: Vec<String>) -> isize {
        let added = insert.len() as isize - remove as isize;
        self.ls.splice(at..at + remove, insert);
        added
    }

    fn edit_volume(
        &mut self,
        start: usize,
        end: usize,
        name: &str,
        state: Option<&ArtifactState>,
    ) -> Result<usize, ManifestError> {
        let (pspec, pend) = self.pod_spec(start, end)?;
        let ls = self.refs();
        let vols = find_key(&ls, pspec + 1, pend, "volumes");
        let mut end = end as isize;
        match (vols, state) {
            (None, None) => {}
            (None, Some(s)) => {
                // No volumes yet: add the key at the end of the pod spec.
                let ind = child_indent(&ls, pspec, pend);
                let mut new = vec![format!("{}volumes:\n", " ".repeat(ind))];
                new.extend(volume_item(ind, name, s));
                let at = pend;
                end += self.splice(at, 0, new);
            }
            (Some(k), _) => {
                self.flow_check(k, "spec.template.spec.volumes")?;
                let vend = block_end(&ls, k, pend, indent(ls[k]));
                let item = self.find_item(k, vend, "name", name);
                let item_ind = seq_items(&ls, k, vend)
                    .first()
                    .map(|&(s, _)| indent(ls[s]))
                    .unwrap_or(indent(ls[k]));
                match (item, state) {
                    (None, None) => {}
                    (None, Some(s)) => end += self.splice(vend, 0, volume_item(item_ind, name, s)),
                    (Some((s, e)), None) => end += self.splice(s, e - s, vec![]),
                    (Some((s, e)), Some(st)) => {
                        end += self.update_fields(
                            s,
                            e,
                            "image",
                            &[
                                ("reference", Some(st.reference.as_str())),
                                ("pullPolicy", st.pull_policy.as_deref()),
                            ],
                        )?;
                    }
                }
            }
        }
        Ok(end as usize)
    }

    fn edit_mount(
        &mut self,
        start: usize,
        end: usize,
        container: &str,
        name: &str,
        state: Option<&ArtifactState>,
    ) -> Result<usize, ManifestError> {
        let (pspec, pend) = self.pod_spec(start, end)?;
        let ls = self.refs();
        let cs = find_key(&ls, pspec + 1, pend, "containers")
            .ok_or_else(|| self.shape("spec.template.spec.containers"))?;
        self.flow_check(cs, "spec.template.spec.containers")?;
        let cend = block_end(&ls, cs, pend, indent(ls[cs]));
        let (c0, c1) = self
            .find_item(cs, cend, "name", container)
            .ok_or_else(|| self.shape(&format!("container {container:?}")))?;
        let mounts = (c0..c1).find(|&i| {
            key_of(ls[i]).is_some_and(|(_, k)| k == "volumeMounts")
                && indent(ls[i]) > indent(ls[c0])
                || (i == c0 && key_of(ls[i]).is_some_and(|(_, k)| k == "volumeMounts"))
        });
        let mut end = end as isize;
        let want_mount =
            state.and_then(|s| s.mount_path.as_deref().map(|m| (m, s.sub_path.as_deref())));
        match (mounts, want_mount) {
            (None, None) => {}
            (None, Some((mp, sp))) => {
                let ind = key_of(ls[c0]).map(|(i, _)| i).unwrap_or(indent(ls[c0]) + 2);
                let mut new = vec![format!("{}volumeMounts:\n", " ".repeat(ind))];
                new.extend(mount_item(ind, name, mp, sp));
                end += self.splice(c1, 0, new);
            }
            (Some(k), _) => {
                self.flow_check(k, "volumeMounts")?;
                let mend = block_end(&ls, k, c1, indent(ls[k]));
                let item = self.find_item(k, mend, "name", name);
                let item_ind = seq_items(&ls, k, mend)
                    .first()
                    .map(|&(s, _)| indent(ls[s]))
                    .unwrap_or(indent(ls[k]));
                match (item, want_mount) {
                    (None, None) => {}
                    (None, Some((mp, sp))) => {
                        end += self.splice(mend, 0, mount_item(item_ind, name, mp, sp))
                    }
                    (Some((s, e)), None) => end += self.splice(s, e - s, vec![]),
                    (Some((s, e)), Some((mp, sp))) => {
                        end += self.update_fields(
                            s,
                            e,
                            "",
                            &[("mountPath", Some(mp)), ("subPath", sp)],
                        )?;
                    }
                }
            }
        }
        Ok(end as usize)
    }

    /// Sets `fields` inside an item (under `parent:` when not empty): replaces values in
    /// place, inserts missing keys, deletes keys set to `None`. Returns the line count change.
    fn update_fields(
        &mut self,
        s: usize,
        e: usize,
        parent: &str,
        fields: &[(&str, Option<&str>)],
    ) -> Result<isize, ManifestError> {
        let mut delta: isize = 0;
        let (mut bs, mut be) = (s, e);
        if !parent.is_empty() {
            let ls = self.refs();
            let p = (s..e)
                .find(|&i| key_of(ls[i]).is_some_and(|(_, k)| k == parent))
                .ok_or_else(|| self.shape(parent))?;
            self.flow_check(p, parent)?;
            bs = p;
            be = block_end(&ls, p, e, key_of(ls[p]).map(|(i, _)| i).unwrap_or(0));
        }
        for (key, value) in fields {
            let ls = self.refs();
            let field_ind = if parent.is_empty() {
                key_of(ls[bs]).map(|(i, _)| i).unwrap_or(0)
            } else {
                child_indent(&ls, bs, be)
            };
            let found = (bs..be)
                .find(|&i| key_of(ls[i]) == Some((field_ind, key)) && !blank_or_comment(ls[i]));
            match (found, value) {
                (Some(i), Some(v)) => {
                    if unquote(inline_value(ls[i])) != *v {
                        self.ls[i] = replace_value(&self.ls[i], v);
                    }
                }
                (Some(i), None) => {
                    self.ls.remove(i);
                    delta -= 1;
                    be -= 1;
                }
                (None, Some(v)) => {
                    let line = format!("{}{key}: {}\n", " ".repeat(field_ind), scalar(v, None));
                    self.ls.insert(be, line);
                    delta += 1;
                    be += 1;
                }
                (None, None) => {}
            }
        }
        Ok(delta)
    }
}

fn child_indent(ls: &[&str], k: usize, end: usize) -> usize {
    (k + 1..end)
        .find(|&i| !blank_or_comment(ls[i]))
        .map(|i| indent(ls[i]))
        .unwrap_or(indent(ls[k]) + 2)
}

fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        serde_json::from_str::<String>(&format!("\"{inner}\""))
            .unwrap_or_else(|_| inner.to_string())
    } else if let Some(inner) = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        inner.replace("''", "'")
    } else {
        v.to_string()
    }
}

fn volume_item(ind: usize, name: &str, s: &ArtifactState) -> Vec<String> {
    let p = " ".repeat(ind);
    let mut out = vec![
        format!("{p}- name: {}\n", scalar(name, None)),
        format!("{p}  image:\n"),
        format!("{p}    reference: {}\n", scalar(&s.reference, None)),
    ];
    if let Some(pp) = &s.pull_policy {
        out.push(format!("{p}    pullPolicy: {}\n", scalar(pp, None)));
    }
    out
}

fn mount_item(ind: usize, name: &str, mount_path: &str, sub_path: Option<&str>) -> Vec<String> {
    let p = " ".repeat(ind);
    let mut out = vec![
        format!("{p}- name: {}\n", scalar(name, None)),
        format!("{p}  mountPath: {}\n", scalar(mount_path, None)),
    ];
    if let Some(sp) = sub_path {
        out.push(format!("{p}  subPath: {}\n", scalar(sp, None)));
    }
    out
}

#[cfg(test)]
mod tests;
