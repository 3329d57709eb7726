//! Tests of the build: exclude globs, metadata, reproducible layers (whatever the mtimes, order,
//! modes or number of threads), refused entries, and the index over both platforms.

use super::layer::write_layer_with;
use super::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

fn glob(p: &str) -> Glob {
    Glob::new(p).unwrap()
}

#[test]
fn globs() {
    assert!(glob("*.md").matches("README.md", false));
    assert!(glob("*.md").matches("a/b/README.md", false));
    assert!(!glob("*.md").matches("README.mdx", false));
    assert!(glob("prod/*.json").matches("prod/a.json", false));
    assert!(!glob("prod/*.json").matches("x/prod/a.json", false));
    assert!(!glob("prod/*.json").matches("prod/sub/a.json", false));
    assert!(glob("prod/**/*.json").matches("prod/a.json", false));
    assert!(glob("prod/**/*.json").matches("prod/x/y/a.json", false));
    assert!(glob("**/tmp").matches("a/tmp", true));
    assert!(glob("/tmp").matches("tmp", true));
    assert!(!glob("/tmp").matches("a/tmp", true));
    assert!(glob("da?h*.json").matches("dash-1.json", false));
    assert!(!glob("da?h*.json").matches("dsh.json", false));
    assert!(glob("drafts/").matches("x/drafts", true));
    assert!(!glob("drafts/").matches("x/drafts", false));
    assert!(glob("*").matches("anything", false));
    assert!(glob("a*b*c").matches("aXbYbc", false));
    assert!(!glob("a*b*c").matches("aXbYbd", false));
    assert!(Glob::new("").is_err());
    assert!(Glob::new("a/../b").is_err());
    assert!(Glob::new("a**").is_err());
}

#[test]
fn epochs() {
    assert_eq!(created_from_epoch(None).unwrap(), DEFAULT_CREATED);
    assert_eq!(created_from_epoch(Some("")).unwrap(), DEFAULT_CREATED);
    assert_eq!(
        created_from_epoch(Some("1700000000")).unwrap(),
        "2023-11-14T22:13:20Z"
    );
    assert!(created_from_epoch(Some("yesterday")).is_err());
}

#[test]
fn git_revision_and_source_when_in_a_repository() {
    let d = tempfile::tempdir().unwrap();
    let res = d.path().join("resources");
    std::fs::create_dir(&res).unwrap();
    let meta = metadata(&res, None).unwrap();
    assert_eq!(
        meta.annotations.get(ANNOTATION_TITLE).map(String::as_str),
        Some("resources")
    );
    assert!(!meta.annotations.contains_key(ANNOTATION_REVISION));
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(d.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "x"]);
    let meta = metadata(&res, Some("0")).unwrap();
    let rev = meta.annotations.get(ANNOTATION_REVISION).expect("revision");
    assert_eq!(rev.len(), 40);
    assert!(
        !meta.annotations.contains_key(ANNOTATION_SOURCE),
        "no origin yet"
    );
    git(&[
        "remote",
        "add",
        "origin",
        "https://bot:s3cret@git.example.com/team/res.git",
    ]);
    let meta = metadata(&res, None).unwrap();
    assert_eq!(
        meta.annotations.get(ANNOTATION_SOURCE).map(String::as_str),
        Some("https://git.example.com/team/res.git")
    );
}

#[test]
fn userinfo_is_dropped() {
    assert_eq!(
        strip_userinfo("https://bot:ghp_secret@github.com/org/repo.git"),
        "https://github.com/org/repo.git"
    );
    assert_eq!(
        strip_userinfo("git@github.com:org/repo.git"),
        "git@github.com:org/repo.git"
    );
    assert_eq!(
        strip_userinfo("https://github.com/org/repo"),
        "https://github.com/org/repo"
    );
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn layer_of(root: &Path, filter: &Filter) -> (Layer, Vec<u8>) {
    let entries = collect(root, filter).unwrap();
    write_layer(root, &entries, Vec::new()).unwrap()
}

#[test]
fn same_content_same_digest_whatever_mtime_order_and_mode() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let files = [
        ("prod/dash.json", &b"{\"kind\":\"Dashboard\"}"[..]),
        ("prod/sub/ds.yaml", b"kind: Datasource\n"),
        ("staging/x.json", b"{}"),
        ("top.json", b"[]"),
    ];
    for (p, d) in files {
        write(a.path(), p, d);
    }
    for (p, d) in files.iter().rev() {
        write(b.path(), p, d);
    }
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let f = std::fs::File::options()
        .write(true)
        .open(b.path().join("top.json"))
        .unwrap();
    f.set_modified(old).unwrap();
    std::fs::set_permissions(
        b.path().join("prod/dash.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (la, ba) = layer_of(a.path(), &Filter::default());
    let (lb, bb) = layer_of(b.path(), &Filter::default());
    assert_eq!(la, lb);
    assert_eq!(ba, bb);
    assert_eq!(la.files, 4);
    assert_eq!(la.digest, sha256_digest(&ba));
    let meta = Metadata {
        created: DEFAULT_CREATED.into(),
        annotations: BTreeMap::new(),
    };
    assert_eq!(image(&la, &meta), image(&lb, &meta));
}

#[test]
fn layer_entries_are_normalized_and_sorted() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "b/x.json", b"1");
    write(d.path(), "a-b.json", b"22");
    write(d.path(), "a/y.json", b"333");
    write(d.path(), ".git/config", b"secret");
    write(d.path(), "a/.hidden.json", b"h");
    let (layer, bytes) = layer_of(d.path(), &Filter::default());
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(sha256_digest(&raw), layer.diff_id);
    assert_eq!(raw.len() as u64, layer.tar_size);
    let mut ar = tar::Archive::new(&raw[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.gid().unwrap(), 0);
        assert_eq!(h.mtime().unwrap(), ENTRY_MTIME);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        let mode = h.mode().unwrap();
        let kind = h.entry_type();
        seen.push((
            String::from_utf8(e.path_bytes().to_vec()).unwrap(),
            kind.is_dir(),
            mode,
        ));
    }
    assert_eq!(
        seen,
        vec![
            // Path bytes: '-' sorts before '/'; a directory still precedes its content.
            ("a/".to_string(), true, 0o755),
            ("a-b.json".to_string(), false, 0o644),
            ("a/y.json".to_string(), false, 0o644),
            ("b/".to_string(), true, 0o755),
            ("b/x.json".to_string(), false, 0o644),
        ]
    );
}

/// A tree of `files` JSON-ish files of ~67 KiB: compressible, with a pseudo-random part so
/// that not everything is a match, and matches that cross the block boundaries.
fn blocky_tree(files: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut x = 1u64;
    for i in 0..files {
        let mut s = String::new();
        for j in 0..1500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push_str(&format!(
                "{{\"panel\":{j},\"query\":\"rate(x[{}m])\"}}\n",
                x >> 58
            ));
        }
        write(d.path(), &format!("d/{i:03}.json"), s.as_bytes());
    }
    d
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    // GzDecoder reads the first member only: getting the whole tar from it shows that the
    // blocks make one member.
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut raw)
        .unwrap();
    raw
}

#[test]
fn blocks_make_one_gzip_stream_whatever_the_number_of_threads() {
    let d = blocky_tree(40);
    let entries = collect(d.path(), &Filter::default()).unwrap();
    let (one, bytes) = write_layer_with(d.path(), &entries, Vec::new(), 1).unwrap();
    assert!(one.tar_size > 2 * GZIP_BLOCK as u64, "{}", one.tar_size);
    for n in [2, 3, 8] {
        let (l, b) = write_layer_with(d.path(), &entries, Vec::new(), n).unwrap();
        assert_eq!(l, one, "{n} threads");
        assert!(b == bytes, "{n} threads: other bytes");
    }
    assert_eq!(one.digest, sha256_digest(&bytes));
    assert_eq!(one.size, bytes.len() as u64);
    assert_eq!(bytes[..10], GZIP_HEADER);
    let raw = gunzip(&bytes);
    assert_eq!(raw.len() as u64, one.tar_size);
    assert_eq!(sha256_digest(&raw), one.diff_id);
    // Blocks with preset dictionaries compress about as well as one stream.
    let mut whole = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    whole.write_all(&raw).unwrap();
    let whole = whole.finish().unwrap();
    assert!(
        bytes.len() <= whole.len() + whole.len() / 100 + 64,
        "{} vs {}",
        bytes.len(),
        whole.len()
    );
}

#[test]
fn a_tar_of_exactly_one_block_ends_with_an_empty_final_block() {
    let d = tempfile::tempdir().unwrap();
    // 512 (header) + 1,047,040 (data, a multiple of 512) + 1024 (end of archive) = 1 MiB.
    write(d.path(), "f.json", &vec![b'x'; 1_047_040]);
    let entries = collect(d.path(), &Filter::default()).unwrap();
    let (layer, bytes) = write_layer_with(d.path(), &entries, Vec::new(), 2).unwrap();
    assert_eq!(layer.tar_size, GZIP_BLOCK as u64);
    let raw = gunzip(&bytes);
    assert_eq!(sha256_digest(&raw), layer.diff_id);
}

#[test]
fn a_file_gone_midway_fails_the_build_without_hanging() {
    let d = blocky_tree(40);
    let entries = collect(d.path(), &Filter::default()).unwrap();
    std::fs::remove_file(d.path().join("d/035.json")).unwrap();
    for n in [1, 2] {
        match write_layer_with(d.path(), &entries, Vec::new(), n) {
            Err(BuildError::Read { path, .. }) => assert!(path.ends_with("d/035.json")),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn hidden_and_excluded_paths_are_left_out() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "prod/a.json", b"1");
    write(d.path(), "prod/README.md", b"doc");
    write(d.path(), "drafts/b.json", b"2");
    write(d.path(), ".git/HEAD", b"ref");
    let filter = Filter {
        include_hidden: false,
        exclude: vec![glob("*.md"), glob("drafts/")],
    };
    let paths: Vec<String> = collect(d.path(), &filter)
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, vec!["prod", "prod/a.json"]);
    let all = Filter {
        include_hidden: true,
        exclude: vec![],
    };
    let paths: Vec<String> = collect(d.path(), &all)
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(paths.contains(&".git/HEAD".to_string()));
}

#[test]
fn symlinks_and_fifos_are_refused_unless_excluded() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "prod/a.json", b"1");
    std::os::unix::fs::symlink("a.json", d.path().join("prod/link.json")).unwrap();
    let e = collect(d.path(), &Filter::default()).unwrap_err();
    assert!(matches!(e, BuildError::Symlink { .. }), "{e}");
    assert!(e.to_string().contains("prod/link.json"), "{e}");
    let filter = Filter {
        include_hidden: false,
        exclude: vec![glob("link.json")],
    };
    assert_eq!(collect(d.path(), &filter).unwrap().len(), 2);
    let st = std::process::Command::new("mkfifo")
        .arg(d.path().join("prod/pipe"))
        .status();
    if st.is_ok_and(|s| s.success()) {
        let e = collect(d.path(), &filter).unwrap_err();
        assert!(e.to_string().contains("fifo"), "{e}");
    }
}

#[test]
fn an_empty_tree_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("empty")).unwrap();
    write(d.path(), ".hidden", b"x");
    let e = collect(d.path(), &Filter::default()).unwrap_err();
    assert!(matches!(e, BuildError::Empty { .. }), "{e}");
}

#[test]
fn long_paths_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let long = format!("{}/{}.json", "d".repeat(120), "f".repeat(150));
    write(d.path(), &long, b"{}");
    let (_, bytes) = layer_of(d.path(), &Filter::default());
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().to_vec()).unwrap())
        .collect();
    assert_eq!(names, vec![format!("{}/", "d".repeat(120)), long]);
}

#[test]
fn the_index_lists_both_platforms_over_one_layer() {
    let layer = Layer {
        digest: "sha256:aa".into(),
        diff_id: "sha256:bb".into(),
        size: 10,
        tar_size: 20,
        files: 1,
        file_bytes: 2,
    };
    let mut meta = Metadata {
        created: DEFAULT_CREATED.into(),
        annotations: BTreeMap::new(),
    };
    meta.annotations
        .insert(ANNOTATION_CREATED.into(), DEFAULT_CREATED.into());
    let img = image(&layer, &meta);
    let index: Value = serde_json::from_slice(&img.index.bytes).unwrap();
    let plats: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(plats, vec!["linux/amd64", "linux/arm64"]);
    for p in &img.platforms {
        let m: Value = serde_json::from_slice(&p.manifest.bytes).unwrap();
        assert_eq!(m["layers"][0]["digest"], "sha256:aa");
        assert_eq!(m["config"]["digest"], p.config.digest);
        let c: Value = serde_json::from_slice(&p.config.bytes).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"][0], "sha256:bb");
        assert_eq!(c["architecture"], p.platform.architecture);
        assert_eq!(c["created"], DEFAULT_CREATED);
    }
    assert_eq!(index["annotations"][ANNOTATION_CREATED], DEFAULT_CREATED);
    assert_eq!(img.index.digest, sha256_digest(&img.index.bytes));
}
