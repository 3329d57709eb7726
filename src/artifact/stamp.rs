//! A fingerprint of a tree from its file metadata only, and a small on-disk record of which image
//! each fingerprint built, so that re-pushing an unchanged tree needs neither a build nor a lint.

use super::build::{Entry, GZIP_LEVEL, Metadata, PLATFORMS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bump when anything that goes into an image changes without showing in the inputs below.
const STAMP_FORMAT: &str = "perses-oci tree stamp 1";

/// A file changed this recently may still change within the same timestamp tick: such a tree is
/// not recorded (git's "racily clean" rule).
const RACY_NS: i64 = 2_000_000_000;

/// Hashes everything a build reads besides file contents: the entries (path, size, times, inode,
/// mode), the metadata (created, annotations), the build settings and whether lint ran. Two
/// trees with one stamp give one image, unless a file was rewritten with the same size while
/// keeping both its mtime and ctime, which the kernel does not allow.
pub fn tree_stamp(dir: &Path, entries: &[Entry], meta: &Metadata, linted: bool) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(STAMP_FORMAT.as_bytes());
    field(env!("CARGO_PKG_VERSION").as_bytes());
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    field(abs.as_os_str().as_encoded_bytes());
    field(&[u8::from(linted)]);
    field(&GZIP_LEVEL.to_le_bytes());
    for p in PLATFORMS {
        field(p.to_string().as_bytes());
    }
    field(meta.created.as_bytes());
    for (k, v) in &meta.annotations {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    for e in entries {
        field(e.path.as_bytes());
        field(&e.size.map_or(u64::MAX, |s| s).to_le_bytes());
        for c in e.changed {
            field(&c.to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Whether a file of the tree changed within the last two seconds of `now_ns` (or is dated in
/// the future): its next change may keep the same times.
pub fn is_racy(entries: &[Entry], now_ns: i64) -> bool {
    entries
        .iter()
        .filter(|e| !e.is_dir())
        .any(|e| e.changed[0].max(e.changed[1]) > now_ns - RACY_NS)
}

/// What a stamp built, enough to report an up-to-date push without building.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The index digest.
    pub digest: String,
    pub files: usize,
    pub file_bytes: u64,
    pub layer_size: u64,
    pub platforms: Vec<String>,
}

/// Records under one directory, a file per stamp. Failures to read or write are not errors: the
/// cache only saves time.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    /// `$PERSES_OCI_CACHE_DIR`, else `$XDG_CACHE_HOME/perses-oci`, else `~/.cache/perses-oci`;
    /// `None` when none is set (nothing is cached then).
    pub fn default_location() -> Option<Store> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let base = env("PERSES_OCI_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("perses-oci")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("perses-oci")))?;
        Some(Store::new(base.join("push-stamps")))
    }

    fn path(&self, stamp: &str) -> PathBuf {
        self.dir.join(stamp)
    }

    pub fn get(&self, stamp: &str) -> Option<Record> {
        let bytes = std::fs::read(self.path(stamp)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Written atomically (temp file + rename), so a reader never sees half a record.
    pub fn put(&self, stamp: &str, record: &Record) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            std::io::Write::write_all(&mut tmp, &serde_json::to_vec(record)?)?;
            tmp.persist(self.path(stamp)).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::debug!("push cache not written in {}: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(path: &str, size: u64, mtime: i64) -> Entry {
        Entry {
            path: path.into(),
            size: Some(size),
            changed: [mtime, mtime, 7, 0o100644],
        }
    }

    fn meta() -> Metadata {
        Metadata {
            created: "1970-01-01T00:00:00Z".into(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn every_input_changes_the_stamp() {
        let dir = Path::new("/nonexistent/tree");
        let base = vec![entry("a.json", 10, 1), entry("b.json", 20, 2)];
        let s = tree_stamp(dir, &base, &meta(), true);
        assert_eq!(s, tree_stamp(dir, &base, &meta(), true), "deterministic");
        let mut size = base.clone();
        size[1].size = Some(21);
        let mut time = base.clone();
        time[0].changed[1] += 1;
        let mut renamed = base.clone();
        renamed[0].path = "c.json".into();
        let mut annotated = meta();
        annotated
            .annotations
            .insert("org.opencontainers.image.revision".into(), "abc".into());
        let others = [
            tree_stamp(dir, &size, &meta(), true),
            tree_stamp(dir, &time, &meta(), true),
            tree_stamp(dir, &renamed, &meta(), true),
            tree_stamp(dir, &base[..1], &meta(), true),
            tree_stamp(dir, &base, &annotated, true),
            tree_stamp(dir, &base, &meta(), false),
            tree_stamp(Path::new("/nonexistent/other"), &base, &meta(), true),
        ];
        for (i, o) in others.iter().enumerate() {
            assert_ne!(&s, o, "input {i} must change the stamp");
        }
    }

    #[test]
    fn recent_files_are_racy() {
        let now = 100 * 1_000_000_000;
        assert!(!is_racy(&[entry("a", 1, now - 3_000_000_000)], now));
        assert!(is_racy(&[entry("a", 1, now - 1_000_000_000)], now));
        assert!(is_racy(&[entry("a", 1, now + 5)], now), "future times");
    }

    #[test]
    fn records_round_trip_and_a_missing_store_is_quiet() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("stamps"));
        assert_eq!(store.get("x"), None);
        let r = Record {
            digest: "sha256:00".into(),
            files: 3,
            file_bytes: 30,
            layer_size: 9,
            platforms: vec!["linux/amd64".into()],
        };
        store.put("x", &r);
        assert_eq!(store.get("x"), Some(r));
        std::fs::write(tmp.path().join("stamps").join("y"), b"{not json").unwrap();
        assert_eq!(store.get("y"), None, "a damaged record is a miss");
    }
}
