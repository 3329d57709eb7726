//! From the top manifest to the layers: an index followed to its linux image, then the config
//! and layer descriptors checked (media types, counts, diff_ids) before any layer is read.

use super::blobs::Source;
use super::layer::LayerInfo;
use super::{
    CONFIG_TYPES, DOCKER_LIST, DOCKER_MANIFEST, GZIP_LAYERS, MAX_LAYERS, OCI_INDEX, OCI_MANIFEST,
    ReadError, TAR_LAYERS, Tree,
};
use oci_client::manifest::OciDescriptor;
use serde_json::Value;
use std::collections::BTreeMap;

/// A descriptor, parsed from untrusted JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Desc {
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) size: u64,
    platform: Option<String>,
}

impl Desc {
    pub(super) fn parse(v: &Value) -> Option<Desc> {
        let p = &v["platform"];
        let platform = p["os"].as_str().map(|os| {
            let mut s = format!("{os}/{}", p["architecture"].as_str().unwrap_or("?"));
            if let Some(var) = p["variant"].as_str() {
                s.push('/');
                s.push_str(var);
            }
            s
        });
        Some(Desc {
            media_type: v["mediaType"].as_str()?.to_string(),
            digest: v["digest"].as_str()?.to_string(),
            size: v["size"].as_u64()?,
            platform,
        })
    }

    pub(super) fn oci(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size as i64,
            ..Default::default()
        }
    }
}

fn parse_json(
    name: &str,
    what: &'static str,
    digest: &str,
    bytes: &[u8],
) -> Result<Value, ReadError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ReadError::BadJson {
        reference: name.to_string(),
        what,
        digest: digest.to_string(),
        message: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(ReadError::BadJson {
            reference: name.to_string(),
            what,
            digest: digest.to_string(),
            message: "not a JSON object".into(),
        });
    }
    Ok(v)
}

fn kind_of(v: &Value, hint: Option<&str>) -> Option<&'static str> {
    let mt = v["mediaType"].as_str().or(hint);
    match mt {
        Some(OCI_INDEX) | Some(DOCKER_LIST) => Some("index"),
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => Some("manifest"),
        Some(_) => None,
        None if v["manifests"].is_array() => Some("index"),
        None if v["layers"].is_array() => Some("manifest"),
        None => None,
    }
}

fn annotations(v: &Value) -> BTreeMap<String, String> {
    v["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

/// Picks linux/amd64, else the first linux image, else the first without a platform.
fn pick(manifests: &[Desc]) -> Option<&Desc> {
    manifests
        .iter()
        .find(|d| d.platform.as_deref() == Some("linux/amd64"))
        .or_else(|| {
            manifests.iter().find(|d| {
                d.platform
                    .as_deref()
                    .is_some_and(|p| p.starts_with("linux/"))
            })
        })
        .or_else(|| manifests.iter().find(|d| d.platform.is_none()))
}

/// The manifest, config and layer descriptors a reference leads to, checked; no layer is read.
pub(super) async fn resolve(
    src: &Source,
    top: Vec<u8>,
    top_digest: String,
    top_hint: Option<String>,
) -> Result<(Tree, Vec<LayerInfo>), ReadError> {
    let name = src.name().to_string();
    let bad_type =
        |what: &'static str, digest: &str, mt: &str, message: &'static str| ReadError::MediaType {
            reference: name.clone(),
            what,
            digest: digest.to_string(),
            media_type: mt.to_string(),
            message,
        };
    let mut tree = Tree {
        reference: name.clone(),
        digest: top_digest.clone(),
        ..Default::default()
    };
    let mut v = parse_json(&name, "manifest", &top_digest, &top)?;
    let mut digest = top_digest.clone();
    let mut hint = top_hint;
    let mut index_annotations = BTreeMap::new();
    tree.media_type = v["mediaType"]
        .as_str()
        .or(hint.as_deref())
        .unwrap_or("")
        .to_string();
    // An index may name another index (as some layouts do); two levels are enough.
    for depth in 0.. {
        match kind_of(&v, hint.as_deref()) {
            Some("manifest") => break,
            Some("index") if depth < 2 => {
                let manifests: Vec<Desc> = v["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        Desc::parse(m).ok_or_else(|| ReadError::BadJson {
                            reference: name.clone(),
                            what: "index",
                            digest: digest.clone(),
                            message: "an entry needs mediaType, digest and size".into(),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                if depth == 0 {
                    tree.platforms = manifests
                        .iter()
                        .filter_map(|d| d.platform.clone())
                        .collect();
                }
                index_annotations.extend(annotations(&v));
                let chosen = pick(&manifests).ok_or_else(|| ReadError::NoPlatform {
                    reference: name.clone(),
                    digest: digest.clone(),
                    platforms: manifests
                        .iter()
                        .map(|d| d.platform.clone().unwrap_or_else(|| "?".into()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
                let bytes = src.small_blob("manifest", chosen).await?;
                v = parse_json(&name, "manifest", &chosen.digest, &bytes)?;
                digest = chosen.digest.clone();
                hint = Some(chosen.media_type.clone());
            }
            _ => {
                let mt = v["mediaType"]
                    .as_str()
                    .or(hint.as_deref())
                    .unwrap_or("(none)");
                return Err(bad_type(
                    "manifest",
                    &digest,
                    mt,
                    "not an image manifest or index",
                ));
            }
        }
    }
    tree.manifest_digest = digest.clone();
    tree.annotations = annotations(&v);
    for (k, val) in index_annotations {
        tree.annotations.entry(k).or_insert(val);
    }

    let config = Desc::parse(&v["config"]).ok_or_else(|| ReadError::BadJson {
        reference: name.clone(),
        what: "manifest",
        digest: digest.clone(),
        message: "no config descriptor".into(),
    })?;
    if !CONFIG_TYPES.contains(&config.media_type.as_str()) {
        return Err(bad_type(
            "config",
            &config.digest,
            &config.media_type,
            "not an image config, so not an image a kubelet can mount as a volume (containerd \
             fails the pod with CreateContainerError: \"failed to unpack image volume: \
             mismatched image rootfs and manifest layers\"); push it as an image instead \
             (perses-oci push, or a `FROM scratch` image built with buildah or docker)",
        ));
    }
    let layer_count = v["layers"].as_array().map_or(0, Vec::len);
    if layer_count > MAX_LAYERS {
        return Err(ReadError::TooManyLayers {
            reference: name.clone(),
            digest: digest.clone(),
            layers: layer_count,
        });
    }
    let cbytes = src.small_blob("config", &config).await?;
    let cfg = parse_json(&name, "config", &config.digest, &cbytes)?;
    if tree.platforms.is_empty()
        && let Some(os) = cfg["os"].as_str()
    {
        tree.platforms.push(format!(
            "{os}/{}",
            cfg["architecture"].as_str().unwrap_or("?")
        ));
    }
    tree.created = tree
        .annotations
        .get(crate::artifact::build::ANNOTATION_CREATED)
        .cloned()
        .or_else(|| cfg["created"].as_str().map(str::to_string));
    let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    let layers: Vec<Desc> = v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            Desc::parse(l).ok_or_else(|| ReadError::BadJson {
                reference: name.clone(),
                what: "manifest",
                digest: digest.clone(),
                message: "a layer needs mediaType, digest and size".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    if diff_ids.len() != layers.len() {
        return Err(ReadError::LayerCount {
            reference: name.clone(),
            diff_ids: diff_ids.len(),
            layers: layers.len(),
        });
    }
    let mut infos = Vec::with_capacity(layers.len());
    for (l, diff_id) in layers.iter().zip(diff_ids) {
        let gzip = if GZIP_LAYERS.contains(&l.media_type.as_str()) {
            true
        } else if TAR_LAYERS.contains(&l.media_type.as_str()) {
            false
        } else {
            return Err(bad_type(
                "layer",
                &l.digest,
                &l.media_type,
                if l.media_type.contains("zstd") {
                    "zstd layers are not supported; use gzip"
                } else {
                    "not a tar or tar+gzip layer"
                },
            ));
        };
        tree.layers_size += l.size;
        infos.push(LayerInfo {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
            gzip,
            diff_id: Some(diff_id),
        });
    }
    Ok((tree, infos))
}
