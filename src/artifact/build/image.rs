//! The configs, manifests and index around one layer: the JSON blobs, with their digests, that
//! make the layer a multi-platform image.

use super::{
    CONFIG_MEDIA_TYPE, INDEX_MEDIA_TYPE, LAYER_MEDIA_TYPE, Layer, MANIFEST_MEDIA_TYPE, Metadata,
    PLATFORMS, Platform,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A blob held in memory (configs, manifests, the index), with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: &'static str,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn json(media_type: &'static str, v: &Value) -> Blob {
        // serde_json's map keeps keys sorted: the same value always gives the same bytes.
        let bytes = serde_json::to_vec(v).expect("JSON values serialize");
        Blob {
            media_type,
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// An OCI descriptor of this blob.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One platform's config and manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformImage {
    pub platform: Platform,
    pub config: Blob,
    pub manifest: Blob,
}

/// Everything but the layer's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub layer: Layer,
    pub platforms: Vec<PlatformImage>,
    /// What a tag points at; its digest is the one to pin.
    pub index: Blob,
}

impl Image {
    /// The small blobs, in upload order: configs before the manifests that name them.
    pub fn configs(&self) -> impl Iterator<Item = &Blob> {
        self.platforms.iter().map(|p| &p.config)
    }
}

/// Builds the configs, manifests and index for a layer (pure).
pub fn image(layer: &Layer, meta: &Metadata) -> Image {
    let layer_desc =
        json!({"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size});
    let platforms: Vec<PlatformImage> = PLATFORMS
        .iter()
        .map(|p| {
            let config = Blob::json(
                CONFIG_MEDIA_TYPE,
                &json!({
                    "architecture": p.architecture,
                    "os": p.os,
                    "created": meta.created,
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
                }),
            );
            let manifest = Blob::json(
                MANIFEST_MEDIA_TYPE,
                &json!({
                    "schemaVersion": 2,
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "config": config.descriptor(),
                    "layers": [layer_desc],
                    "annotations": meta.annotations,
                }),
            );
            PlatformImage {
                platform: *p,
                config,
                manifest,
            }
        })
        .collect();
    let manifests: Vec<Value> = platforms
        .iter()
        .map(|p| {
            let mut d = p.manifest.descriptor();
            d["platform"] = json!({"architecture": p.platform.architecture, "os": p.platform.os});
            d
        })
        .collect();
    let index = Blob::json(
        INDEX_MEDIA_TYPE,
        &json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
            "annotations": meta.annotations,
        }),
    );
    Image {
        layer: layer.clone(),
        platforms,
        index,
    }
}
