//! OCI image layout directories (`oci:PATH:TAG`, as skopeo and umoci name them): the
//! `oci-layout` marker, `index.json` whose entries carry the tag in
//! `org.opencontainers.image.ref.name`, and content-addressed `blobs/sha256/HEX`.
//!
//! Writes never leave a half-written file under a final name: blobs and index.json are written
//! to a temporary file in the same directory and renamed, blobs before the index that names
//! them. Digests read from an index are checked before they become paths, so a hostile
//! index.json cannot point outside `blobs/`.

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const LAYOUT_FILE: &str = "oci-layout";
pub const INDEX_FILE: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid OCI layout reference {reference:?}: {message} (expected oci:PATH:TAG)")]
    BadRef { reference: String, message: String },
    #[error(
        "{} is not an OCI image layout (no oci-layout file) and is not empty; choose another directory",
        path.display()
    )]
    NotALayout { path: PathBuf },
    #[error("{} has no oci-layout file: not an OCI image layout", path.display())]
    Missing { path: PathBuf },
    #[error("{}: {message}", path.display())]
    BadIndex { path: PathBuf, message: String },
    #[error("unsupported or malformed digest {digest:?} (expected sha256: and 64 hex digits)")]
    BadDigest { digest: String },
    #[error("tag {tag:?} not found in the OCI layout {}{}", path.display(), known_tags(known))]
    TagNotFound {
        path: PathBuf,
        tag: String,
        known: Vec<String>,
    },
}

fn known_tags(known: &[String]) -> String {
    if known.is_empty() {
        " (it has no tags)".into()
    } else {
        format!(" (tags: {})", known.join(", "))
    }
}

/// `oci:PATH:TAG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    pub path: PathBuf,
    pub tag: String,
}

impl LayoutRef {
    /// Parses `oci:PATH:TAG`; `None` when `s` does not start with `oci:`. The tag follows the
    /// last `:`, so a path may hold colons; the tag may not hold a `/`.
    pub fn parse(s: &str) -> Option<Result<LayoutRef, LayoutError>> {
        let rest = s.strip_prefix("oci:")?;
        let bad = |message: &str| LayoutError::BadRef {
            reference: s.to_string(),
            message: message.to_string(),
        };
        Some(match rest.rsplit_once(':') {
            None => Err(bad("the tag is missing")),
            Some((_, tag)) if tag.is_empty() || tag.contains('/') => Err(bad("the tag is missing")),
            Some(("", _)) => Err(bad("the path is empty")),
            Some((path, tag)) if valid_tag(tag) => Ok(LayoutRef {
                path: PathBuf::from(path),
                tag: tag.to_string(),
            }),
            Some(_) => Err(bad(
                "a tag is at most 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'",
            )),
        })
    }
}

impl std::fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci:{}:{}", self.path.display(), self.tag)
    }
}

/// The distribution spec's tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The hex part of a `sha256:` digest, checked.
pub fn digest_hex(digest: &str) -> Result<&str, LayoutError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(LayoutError::BadDigest {
            digest: digest.to_string(),
        }),
    }
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Layout {
    /// Opens an existing layout.
    pub fn open(path: &Path) -> Result<Layout, LayoutError> {
        let marker = path.join(LAYOUT_FILE);
        if !marker.is_file() {
            return Err(LayoutError::Missing {
                path: path.to_path_buf(),
            });
        }
        Ok(Layout {
            root: path.to_path_buf(),
        })
    }

    /// Opens a layout, or creates one in a missing or empty directory.
    pub fn create(path: &Path) -> Result<Layout, LayoutError> {
        if path.join(LAYOUT_FILE).is_file() {
            let l = Layout::open(path)?;
            std::fs::create_dir_all(l.blobs_dir()).map_err(io_err(&l.blobs_dir()))?;
            return Ok(l);
        }
        if path.exists() {
            let mut it = std::fs::read_dir(path).map_err(io_err(path))?;
            if it.next().is_some() {
                return Err(LayoutError::NotALayout {
                    path: path.to_path_buf(),
                });
            }
        }
        let l = Layout {
            root: path.to_path_buf(),
        };
        std::fs::create_dir_all(l.blobs_dir()).map_err(io_err(&l.blobs_dir()))?;
        let marker = json!({"imageLayoutVersion": LAYOUT_VERSION});
        l.write_atomic(
            &path.join(LAYOUT_FILE),
            &serde_json::to_vec(&marker).unwrap(),
        )?;
        Ok(l)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where sha256 blobs live; temporary files meant to become blobs go here too, so that
    /// the final rename stays on one file system.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, LayoutError> {
        Ok(self.blobs_dir().join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> Result<bool, LayoutError> {
        Ok(self.blob_path(digest)?.is_file())
    }

    /// Opens a blob for reading (its digest is the reader's to check).
    pub fn open_blob(&self, digest: &str) -> Result<std::fs::File, LayoutError> {
        let p = self.blob_path(digest)?;
        std::fs::File::open(&p).map_err(io_err(&p))
    }

    /// Writes a blob unless present; returns whether it was written.
    pub fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<bool, LayoutError> {
        let p = self.blob_path(digest)?;
        if p.is_file() {
            return Ok(false);
        }
        self.write_atomic(&p, bytes)?;
        Ok(true)
    }

    /// Moves a finished temporary file (made in `blobs_dir`) into place unless the blob is
    /// present; returns whether it was moved.
    pub fn put_blob_file(
        &self,
        digest: &str,
        tmp: tempfile::NamedTempFile,
    ) -> Result<bool, LayoutError> {
        let p = self.blob_path(digest)?;
        if p.is_file() {
            return Ok(false);
        }
        tmp.persist(&p).map_err(|e| LayoutError::Io {
            path: p.clone(),
            source: e.error,
        })?;
        Ok(true)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
        let dir = path.parent().unwrap_or(&self.root);
        let mut tmp = tempfile::Builder::new()
            .prefix(".perses-oci-")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        tmp.write_all(bytes).map_err(io_err(path))?;
        tmp.as_file().sync_all().map_err(io_err(path))?;
        tmp.persist(path).map_err(|e| LayoutError::Io {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }

    /// index.json (an empty index when the file does not exist yet).
    pub fn index(&self) -> Result<Value, LayoutError> {
        let p = self.root.join(INDEX_FILE);
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(json!({
                    "schemaVersion": 2,
                    "mediaType": crate::artifact::build::INDEX_MEDIA_TYPE,
                    "manifests": [],
                }));
            }
            Err(e) => return Err(io_err(&p)(e)),
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadIndex {
            path: p.clone(),
            message: format!("not valid JSON: {e}"),
        })?;
        if !v["manifests"].is_array() {
            return Err(LayoutError::BadIndex {
                path: p,
                message: "no `manifests` list".into(),
            });
        }
        Ok(v)
    }

    /// Tags, in index order.
    pub fn tags(&self) -> Result<Vec<String>, LayoutError> {
        Ok(self.index()?["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["annotations"][REF_NAME].as_str().map(str::to_string))
            .collect())
    }

    /// The descriptor a tag names, if any (the last one, should a tool have written several).
    /// A digest (`sha256:...`, which no tag can be) finds the entry of that digest, or else
    /// the manifest blob itself: a tag moved since keeps its old image readable by digest.
    pub fn find(&self, tag: &str) -> Result<Option<Value>, LayoutError> {
        let index = self.index()?;
        let mut entries = index["manifests"].as_array().into_iter().flatten();
        if tag.starts_with("sha256:") {
            if let Some(m) = entries.clone().rfind(|m| m["digest"].as_str() == Some(tag)) {
                return Ok(Some(m.clone()));
            }
            return self.blob_descriptor(tag);
        }
        Ok(entries
            .rfind(|m| m["annotations"][REF_NAME].as_str() == Some(tag))
            .cloned())
    }

    /// The descriptor of a manifest or index blob found by digest alone.
    fn blob_descriptor(&self, digest: &str) -> Result<Option<Value>, LayoutError> {
        let Ok(path) = self.blob_path(digest) else {
            return Ok(None);
        };
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(None);
        };
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string));
        Ok(media_type.map(
            |media_type| json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}),
        ))
    }

    /// Like `find`, but a missing tag is an error that lists the known ones.
    pub fn resolve(&self, tag: &str) -> Result<Value, LayoutError> {
        match self.find(tag)? {
            Some(d) => Ok(d),
            None => Err(LayoutError::TagNotFound {
                path: self.root.clone(),
                tag: tag.to_string(),
                known: self.tags()?,
            }),
        }
    }

    /// Points `tag` at `descriptor` (its blobs must be written already), keeping every other
    /// entry. Returns the digest the tag named before, if any.
    pub fn set_tag(&self, tag: &str, descriptor: &Value) -> Result<Option<String>, LayoutError> {
        let mut index = self.index()?;
        let mut desc = descriptor.clone();
        desc["annotations"][REF_NAME] = json!(tag);
        let manifests = index["manifests"]
            .as_array_mut()
            .expect("checked by index()");
        let before = manifests
            .iter()
            .rfind(|m| m["annotations"][REF_NAME].as_str() == Some(tag))
            .and_then(|m| m["digest"].as_str().map(str::to_string));
        manifests.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag));
        manifests.push(desc);
        if index.get("schemaVersion").is_none() {
            index["schemaVersion"] = json!(2);
        }
        let bytes = serde_json::to_vec(&index).expect("JSON values serialize");
        self.write_atomic(&self.root.join(INDEX_FILE), &bytes)?;
        Ok(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = LayoutRef::parse("oci:out/layout:v1").unwrap().unwrap();
        assert_eq!(r.path, PathBuf::from("out/layout"));
        assert_eq!(r.tag, "v1");
        assert_eq!(r.to_string(), "oci:out/layout:v1");
        let r = LayoutRef::parse("oci:a:b:c").unwrap().unwrap();
        assert_eq!((r.path.to_str().unwrap(), r.tag.as_str()), ("a:b", "c"));
        assert!(LayoutRef::parse("127.0.0.1:5000/x:v1").is_none());
        assert!(LayoutRef::parse("oci:out").unwrap().is_err());
        assert!(LayoutRef::parse("oci:out:").unwrap().is_err());
        assert!(LayoutRef::parse("oci::v1").unwrap().is_err());
        assert!(LayoutRef::parse("oci:out:-bad").unwrap().is_err());
        assert!(LayoutRef::parse("oci:a:b/c").unwrap().is_err());
    }

    #[test]
    fn digests_never_become_paths_outside_blobs() {
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn tags_are_added_and_moved_keeping_others() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("layout");
        let l = Layout::create(&root).unwrap();
        assert!(root.join(LAYOUT_FILE).is_file());
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let desc = |c: char| json!({"mediaType": "m", "digest": digest(c), "size": 1});
        assert_eq!(l.set_tag("v1", &desc('a')).unwrap(), None);
        assert_eq!(l.set_tag("v2", &desc('b')).unwrap(), None);
        assert_eq!(l.set_tag("v1", &desc('c')).unwrap(), Some(digest('a')));
        assert_eq!(l.tags().unwrap(), vec!["v2", "v1"]);
        assert_eq!(l.find("v1").unwrap().unwrap()["digest"], json!(digest('c')));
        let e = l.resolve("v3").unwrap_err().to_string();
        assert!(e.contains("tags: v2, v1"), "{e}");
        assert!(l.write_blob(&digest('d'), b"x").unwrap());
        assert!(!l.write_blob(&digest('d'), b"x").unwrap());
        // Reopening keeps everything.
        let l2 = Layout::create(&root).unwrap();
        assert_eq!(l2.tags().unwrap().len(), 2);
    }

    #[test]
    fn a_non_empty_directory_is_not_taken_over() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        assert!(matches!(
            Layout::create(d.path()),
            Err(LayoutError::NotALayout { .. })
        ));
        assert!(matches!(
            Layout::open(d.path()),
            Err(LayoutError::Missing { .. })
        ));
    }
}
