//! `push`: package a directory as a reproducible image and send it to a registry or an OCI
//! layout. The same files always give the same digest, so a second push finds the tag already
//! there and uploads nothing; blobs the destination has are never sent again; a tag that points
//! at other files is not moved without `--force`.

use crate::artifact::build::{self, BuildError, Built, Filter, Image};
use crate::artifact::layout::{Layout, LayoutError, LayoutRef};
use crate::artifact::stamp;
use crate::model::RegistrySettings;
use crate::registry::push::{UploadError, Uploader};
use crate::registry::{Registry, RegistryError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Checks the files that are about to be packaged (`dir`, and the relative paths kept after
/// hidden files and excludes); an `Err` holds the report to show, and stops the push.
pub type Linter = fn(dir: &Path, files: &[String]) -> Result<(), String>;

/// Where the image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `host/repository` and tag.
    Registry {
        image: String,
        tag: String,
    },
    Layout(LayoutRef),
}

impl Destination {
    /// `REPO:TAG`; a tag is required (a digest cannot be pushed to, and `latest` by default
    /// would make the tag that moves under everyone's feet the silent choice).
    pub fn image(s: &str) -> Result<Destination, PushError> {
        let bad = |message: &str| PushError::BadImage {
            image: s.to_string(),
            message: message.to_string(),
        };
        if s.starts_with("oci:") {
            return Err(bad("an OCI layout is written with --to oci:PATH:TAG"));
        }
        if s.contains('@') {
            return Err(bad("push to a tag (REPO:TAG), not to a digest"));
        }
        let last = s.rsplit('/').next().unwrap_or(s);
        let Some((_, tag)) = last.rsplit_once(':') else {
            return Err(bad("the tag is missing: use REPO:TAG"));
        };
        if !crate::artifact::layout::valid_tag(tag) {
            return Err(bad(
                "invalid tag: at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
            ));
        }
        let image = &s[..s.len() - tag.len() - 1];
        crate::registry::parse_reference(s)?;
        Ok(Destination::Registry {
            image: image.to_string(),
            tag: tag.to_string(),
        })
    }

    /// `oci:PATH:TAG`.
    pub fn layout(s: &str) -> Result<Destination, PushError> {
        match LayoutRef::parse(s) {
            Some(r) => Ok(Destination::Layout(r?)),
            None => Err(PushError::BadImage {
                image: s.to_string(),
                message: "--to takes oci:PATH:TAG; a registry is --image REPO:TAG".into(),
            }),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Registry { image, tag } => write!(f, "{image}:{tag}"),
            Destination::Layout(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub dir: PathBuf,
    pub to: Destination,
    /// Move the tag even when it points at other files.
    pub force: bool,
    pub filter: Filter,
    pub registry: RegistrySettings,
    /// SOURCE_DATE_EPOCH, for `created`.
    pub source_date_epoch: Option<String>,
    /// Lint the files before anything is built or sent (skipped while no linter is wired).
    pub lint: bool,
    pub linter: Option<Linter>,
    /// Where tree stamps are recorded (`None`: always build).
    pub stamps: Option<stamp::Store>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tag now points at the new image.
    Pushed,
    /// The tag already pointed at this exact image.
    UpToDate,
    /// The tag points at an image with the same files and platforms; only annotations (say the
    /// git revision) differ. Left as it is: `--force` moves it.
    SameFiles { annotations: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// `host/repo:tag` or `oci:PATH:TAG`.
    pub reference: String,
    /// What the tag points at after the run.
    pub digest: String,
    pub outcome: Outcome,
    /// What the tag pointed at before, when this run moved it.
    pub previous: Option<String>,
    pub files: usize,
    pub file_bytes: u64,
    pub layer_size: u64,
    pub platforms: Vec<String>,
    /// Blobs (layer and configs) sent, of those the image has.
    pub blobs_uploaded: usize,
    pub blobs_total: usize,
    pub bytes_uploaded: u64,
    /// Up to date from the tree's stamp alone: nothing was built or linted.
    pub unchanged_tree: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("invalid destination {image:?}: {message}")]
    BadImage { image: String, message: String },
    #[error(
        "{reference} points at {current}, which holds other files than {dir} ({new}); pass --force to move the tag"
    )]
    TagMoved {
        reference: String,
        current: String,
        new: String,
        dir: String,
    },
    #[error(
        "{reference}: after the push the tag points at {actual}, not at {expected}: another push raced this one?"
    )]
    Raced {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("lint found problems; nothing was pushed\n{0}")]
    Lint(String),
}

/// Packages and sends; `progress` gets one line per step (the CLI shows them on a terminal).
///
/// An unchanged tree (same stamp: paths, sizes, times, inodes, metadata; see `artifact::stamp`)
/// whose recorded image is what the tag already points at is reported up to date after one
/// request, without building or linting. Otherwise lint and the build run side by side (lint is
/// parsing, the build is compressing: one core each), and nothing is sent unless lint passes.
pub async fn push(
    opts: &PushOptions,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<PushReport, PushError> {
    let entries = build::collect(&opts.dir, &opts.filter)?;
    let meta = build::metadata(&opts.dir, opts.source_date_epoch.as_deref())?;
    let linter = opts.linter.filter(|_| opts.lint);
    let store = opts.stamps.clone();
    let stamp = store
        .as_ref()
        .map(|_| stamp::tree_stamp(&opts.dir, &entries, &meta, linter.is_some()));
    let recorded = store
        .as_ref()
        .zip(stamp.as_deref())
        .and_then(|(s, k)| s.get(k));
    match &opts.to {
        Destination::Registry { image, tag } => {
            let reference = format!("{image}:{tag}");
            let registry = Registry::new(opts.registry.clone());
            if let Some(rec) = &recorded {
                let up = registry.uploader(image, tag).await?;
                if up.current().await?.as_deref() == Some(rec.digest.as_str()) {
                    return Ok(up_to_date(&reference, rec));
                }
            }
            let built = lint_and_build(opts, entries, meta, linter, std::env::temp_dir()).await?;
            progress(packed(&built.image));
            let record = record_of(&built.image);
            let up = registry.uploader(image, tag).await?;
            let rep = to_registry(opts, &up, &reference, built, progress).await?;
            remember(opts, &store, stamp.as_deref(), &rep, record);
            Ok(rep)
        }
        Destination::Layout(r) => {
            let layout = Layout::create(&r.path)?;
            if let Some(rec) = &recorded {
                let current = layout
                    .find(&r.tag)?
                    .and_then(|d| d["digest"].as_str().map(str::to_string));
                if current.as_deref() == Some(rec.digest.as_str())
                    && layout.has_blob(&rec.digest)?
                {
                    return Ok(up_to_date(&r.to_string(), rec));
                }
            }
            let built = lint_and_build(opts, entries, meta, linter, layout.blobs_dir()).await?;
            progress(packed(&built.image));
            let record = record_of(&built.image);
            let rep = to_layout(opts, &layout, r, built)?;
            remember(opts, &store, stamp.as_deref(), &rep, record);
            Ok(rep)
        }
    }
}

/// Lint (when asked) and the build, concurrently; lint's verdict wins over the build's result,
/// so a tree with problems fails as a lint failure even if it also fails to build.
async fn lint_and_build(
    opts: &PushOptions,
    entries: Vec<build::Entry>,
    meta: build::Metadata,
    linter: Option<Linter>,
    temp_dir: PathBuf,
) -> Result<Built, PushError> {
    let lint = linter.map(|lint| {
        let dir = opts.dir.clone();
        let files: Vec<String> = entries
            .iter()
            .filter(|e| !e.is_dir())
            .map(|e| e.path.clone())
            .collect();
        tokio::task::spawn_blocking(move || lint(&dir, &files))
    });
    let built = build_in(&opts.dir, entries, meta, temp_dir).await;
    if let Some(lint) = lint {
        lint.await
            .expect("lint does not panic")
            .map_err(PushError::Lint)?;
    }
    Ok(built?)
}

fn record_of(img: &Image) -> stamp::Record {
    stamp::Record {
        digest: img.index.digest.clone(),
        files: img.layer.files,
        file_bytes: img.layer.file_bytes,
        layer_size: img.layer.size,
        platforms: img
            .platforms
            .iter()
            .map(|p| p.platform.to_string())
            .collect(),
    }
}

/// Records what this tree built once the tag points at it, unless a file is so recent that it
/// may still change within the same timestamp (then the next push builds again).
fn remember(
    opts: &PushOptions,
    store: &Option<stamp::Store>,
    stamp: Option<&str>,
    rep: &PushReport,
    record: stamp::Record,
) {
    let (Some(store), Some(stamp)) = (store, stamp) else {
        return;
    };
    if rep.digest != record.digest {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    // Re-read the times: a file written during the build must not be recorded as unchanged.
    match build::collect(&opts.dir, &opts.filter) {
        Ok(after) if !stamp::is_racy(&after, now) => {
            let meta = build::metadata(&opts.dir, opts.source_date_epoch.as_deref());
            let again = meta.map(|m| {
                stamp::tree_stamp(&opts.dir, &after, &m, opts.linter.is_some() && opts.lint)
            });
            if again.as_deref().ok() == Some(stamp) {
                store.put(stamp, &record);
            }
        }
        _ => {}
    }
}

fn up_to_date(reference: &str, rec: &stamp::Record) -> PushReport {
    PushReport {
        reference: reference.to_string(),
        digest: rec.digest.clone(),
        outcome: Outcome::UpToDate,
        previous: None,
        files: rec.files,
        file_bytes: rec.file_bytes,
        layer_size: rec.layer_size,
        platforms: rec.platforms.clone(),
        blobs_uploaded: 0,
        blobs_total: 1 + rec.platforms.len(),
        bytes_uploaded: 0,
        unchanged_tree: true,
    }
}

async fn build_in(
    dir: &Path,
    entries: Vec<build::Entry>,
    meta: build::Metadata,
    temp_dir: PathBuf,
) -> Result<Built, BuildError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || build::build(&dir, &entries, &meta, &temp_dir))
        .await
        .expect("the build does not panic")
}

fn packed(img: &Image) -> String {
    format!(
        "packed {} files ({}) into a {} layer {}",
        img.layer.files,
        human_bytes(img.layer.file_bytes),
        human_bytes(img.layer.size),
        short(&img.layer.digest)
    )
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// `1.5 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn report(reference: &str, img: &Image, digest: String, outcome: Outcome) -> PushReport {
    PushReport {
        digest,
        outcome,
        unchanged_tree: false,
        ..up_to_date(reference, &record_of(img))
    }
}

/// `(platform, manifest digest)` per index entry, and the index's annotations.
type IndexEntries = (Vec<(String, String)>, BTreeMap<String, String>);

fn index_entries(bytes: &[u8]) -> Option<IndexEntries> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let entries = v["manifests"]
        .as_array()?
        .iter()
        .map(|m| {
            let p = &m["platform"];
            Some((
                format!("{}/{}", p["os"].as_str()?, p["architecture"].as_str()?),
                m["digest"].as_str()?.to_string(),
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    let ann = v["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    Some((entries, ann))
}

fn manifest_layers(bytes: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v["layers"]
        .as_array()?
        .iter()
        .map(|l| l["digest"].as_str().map(str::to_string))
        .collect()
}

/// Whether the current index has our platforms, each with exactly our layer; if so, the
/// annotations that differ. `fetch` reads a manifest by digest.
async fn same_files<F, Fut>(img: &Image, current_index: &[u8], fetch: F) -> Option<Vec<String>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Option<Vec<u8>>>,
{
    let (entries, theirs) = index_entries(current_index)?;
    let ours: Vec<String> = img
        .platforms
        .iter()
        .map(|p| p.platform.to_string())
        .collect();
    let mut plats: Vec<String> = entries.iter().map(|(p, _)| p.clone()).collect();
    plats.sort();
    let mut want = ours.clone();
    want.sort();
    if plats != want {
        return None;
    }
    for (_, digest) in &entries {
        let m = fetch(digest.clone()).await?;
        if manifest_layers(&m)? != vec![img.layer.digest.clone()] {
            return None;
        }
    }
    let (_, mine) = index_entries(&img.index.bytes)?;
    let keys: std::collections::BTreeSet<&String> = mine.keys().chain(theirs.keys()).collect();
    Some(
        keys.into_iter()
            .filter(|k| mine.get(*k) != theirs.get(*k))
            .cloned()
            .collect(),
    )
}

const ACCEPT: &[&str] = &[
    build::INDEX_MEDIA_TYPE,
    build::MANIFEST_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

async fn to_registry(
    opts: &PushOptions,
    up: &Uploader,
    reference: &str,
    built: Built,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<PushReport, PushError> {
    let img = &built.image;
    let current = up.current().await?;
    if current.as_deref() == Some(img.index.digest.as_str()) {
        return Ok(report(
            reference,
            img,
            img.index.digest.clone(),
            Outcome::UpToDate,
        ));
    }
    if let Some(cur) = &current
        && !opts.force
    {
        let idx = up.manifest(cur, ACCEPT).await?;
        let same = same_files(
            img,
            &idx,
            |d| async move { up.manifest(&d, ACCEPT).await.ok() },
        )
        .await;
        return match same {
            Some(annotations) => Ok(report(
                reference,
                img,
                cur.clone(),
                Outcome::SameFiles { annotations },
            )),
            None => Err(PushError::TagMoved {
                reference: reference.to_string(),
                current: cur.clone(),
                new: img.index.digest.clone(),
                dir: opts.dir.display().to_string(),
            }),
        };
    }
    let mut rep = report(reference, img, img.index.digest.clone(), Outcome::Pushed);
    rep.previous = current;
    if up.has_blob(&img.layer.digest).await? {
        progress(format!(
            "layer {} already in {}",
            short(&img.layer.digest),
            up.registry()
        ));
    } else {
        progress(format!(
            "uploading layer {} ({})",
            short(&img.layer.digest),
            human_bytes(img.layer.size)
        ));
        up.put_blob_file(&img.layer.digest, built.layer_file.path(), img.layer.size)
            .await?;
        rep.blobs_uploaded += 1;
        rep.bytes_uploaded += img.layer.size;
    }
    for config in img.configs() {
        if !up.has_blob(&config.digest).await? {
            up.put_blob(&config.digest, config.bytes.clone()).await?;
            rep.blobs_uploaded += 1;
            rep.bytes_uploaded += config.size();
        }
    }
    for p in &img.platforms {
        if !up.has_manifest(&p.manifest.digest).await? {
            up.put_manifest(
                Some(&p.manifest.digest),
                p.manifest.bytes.clone(),
                p.manifest.media_type,
            )
            .await?;
        }
    }
    progress(format!("tagging {reference}"));
    up.put_manifest(None, img.index.bytes.clone(), img.index.media_type)
        .await?;
    match up.current().await? {
        Some(d) if d == img.index.digest => Ok(rep),
        other => Err(PushError::Raced {
            reference: reference.to_string(),
            expected: img.index.digest.clone(),
            actual: other.unwrap_or_else(|| "nothing".into()),
        }),
    }
}

fn to_layout(
    opts: &PushOptions,
    layout: &Layout,
    r: &LayoutRef,
    built: Built,
) -> Result<PushReport, PushError> {
    let img = &built.image;
    let reference = r.to_string();
    let current = layout
        .find(&r.tag)?
        .and_then(|d| d["digest"].as_str().map(str::to_string));
    if current.as_deref() == Some(img.index.digest.as_str())
        && layout.has_blob(&img.index.digest)?
    {
        return Ok(report(
            &reference,
            img,
            img.index.digest.clone(),
            Outcome::UpToDate,
        ));
    }
    if let Some(cur) = &current
        && !opts.force
    {
        let read = |d: &str| -> Option<Vec<u8>> {
            let p = layout.blob_path(d).ok()?;
            let b = std::fs::read(p).ok()?;
            (build::sha256_digest(&b) == d).then_some(b)
        };
        let same = match read(cur) {
            Some(idx) => {
                futures::executor::block_on(same_files(img, &idx, |d| std::future::ready(read(&d))))
            }
            None => None,
        };
        return match same {
            Some(annotations) => Ok(report(
                &reference,
                img,
                cur.clone(),
                Outcome::SameFiles { annotations },
            )),
            None => Err(PushError::TagMoved {
                reference,
                current: cur.clone(),
                new: img.index.digest.clone(),
                dir: opts.dir.display().to_string(),
            }),
        };
    }
    let mut rep = report(&reference, img, img.index.digest.clone(), Outcome::Pushed);
    rep.previous = current;
    let layer_size = img.layer.size;
    let layer_digest = img.layer.digest.clone();
    let Built { image, layer_file } = built;
    if layout.put_blob_file(&layer_digest, layer_file)? {
        rep.blobs_uploaded += 1;
        rep.bytes_uploaded += layer_size;
    }
    for config in image.configs() {
        if layout.write_blob(&config.digest, &config.bytes)? {
            rep.blobs_uploaded += 1;
            rep.bytes_uploaded += config.size();
        }
    }
    for p in &image.platforms {
        layout.write_blob(&p.manifest.digest, &p.manifest.bytes)?;
    }
    layout.write_blob(&image.index.digest, &image.index.bytes)?;
    layout.set_tag(&r.tag, &image.index.descriptor())?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_destinations() {
        assert_eq!(
            Destination::image("127.0.0.1:5000/team/perses:v1").unwrap(),
            Destination::Registry {
                image: "127.0.0.1:5000/team/perses".into(),
                tag: "v1".into()
            }
        );
        assert_eq!(
            Destination::image("registry.example.com/p:prod-1.2.0").unwrap(),
            Destination::Registry {
                image: "registry.example.com/p".into(),
                tag: "prod-1.2.0".into()
            }
        );
        for bad in [
            "127.0.0.1:5000/team/perses",
            "registry.example.com/p",
            "r.example/p@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "oci:out:v1",
            "r.example/p:-bad",
        ] {
            assert!(Destination::image(bad).is_err(), "{bad}");
        }
        assert!(Destination::layout("oci:out:v1").is_ok());
        assert!(Destination::layout("r.example/p:v1").is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    fn image(layer: &str, rev: &str) -> Image {
        let mut meta = build::Metadata {
            created: build::DEFAULT_CREATED.into(),
            annotations: BTreeMap::new(),
        };
        meta.annotations
            .insert(build::ANNOTATION_REVISION.into(), rev.into());
        build::image(
            &build::Layer {
                digest: layer.into(),
                diff_id: "sha256:d".into(),
                size: 1,
                tar_size: 2,
                files: 1,
                file_bytes: 1,
            },
            &meta,
        )
    }

    fn same(ours: &Image, theirs: &Image) -> Option<Vec<String>> {
        let by_digest: BTreeMap<String, Vec<u8>> = theirs
            .platforms
            .iter()
            .map(|p| (p.manifest.digest.clone(), p.manifest.bytes.clone()))
            .collect();
        futures::executor::block_on(same_files(ours, &theirs.index.bytes, |d| {
            std::future::ready(by_digest.get(&d).cloned())
        }))
    }

    #[test]
    fn same_files_with_other_annotations_is_told_apart_from_other_files() {
        let a = image("sha256:l1", "rev1");
        assert_eq!(
            same(&a, &image("sha256:l1", "rev2")),
            Some(vec![build::ANNOTATION_REVISION.to_string()])
        );
        assert_eq!(same(&a, &a), Some(vec![]));
        assert_eq!(same(&a, &image("sha256:l2", "rev1")), None);
        assert_eq!(same(&a, &image("sha256:l2", "rev1")), None);
    }
}
