//! Tests of the layer reader against hostile streams: escaping names, links and devices, gzip
//! bombs, wrong digests and sizes, truncation, and whiteouts.

use super::layer::{Acc, LayerInfo, normalize, read_layer};
use super::*;
use std::io::Write;

/// A raw tar entry, with no checks on the name: how a hostile layer is made.
fn entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    entry(name, tar::EntryType::Regular, "", data)
}

fn tar(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn info_for(blob: &[u8], raw_tar: &[u8]) -> LayerInfo {
    LayerInfo {
        digest: crate::artifact::build::sha256_digest(blob),
        size: blob.len() as u64,
        media_type: GZIP_LAYERS[0].into(),
        gzip: true,
        diff_id: Some(crate::artifact::build::sha256_digest(raw_tar)),
    }
}

fn acc(limit: u64) -> Acc {
    Acc {
        reference: "test".into(),
        limit,
        ..Default::default()
    }
}

fn read(raw: &[u8]) -> Result<Acc, ReadError> {
    let blob = gz(raw);
    let info = info_for(&blob, raw);
    let mut a = acc(DEFAULT_MAX_BYTES);
    read_layer(&blob[..], &info, &mut a).map(|_| a)
}

#[test]
fn a_plain_layer_reads_back() {
    let raw = tar(&[
        entry("./prod/", tar::EntryType::Directory, "", b""),
        file("./prod/a.json", b"{}"),
        file("top.json", b"[]"),
    ]);
    let a = read(&raw).unwrap();
    assert_eq!(
        a.files.keys().collect::<Vec<_>>(),
        vec!["prod/a.json", "top.json"]
    );
    assert!(a.dirs.contains("prod"));
    assert_eq!(a.total, raw.len() as u64);
}

#[test]
fn traversal_absolute_links_and_devices_are_refused() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (file("../x", b"x"), "goes up"),
        (file("a/../../x", b"x"), "goes up"),
        (file("/etc/x", b"x"), "absolute"),
        (
            entry("l", tar::EntryType::Symlink, "../../etc/passwd", b""),
            "symbolic link",
        ),
        (
            entry("h", tar::EntryType::Link, "prod/a.json", b""),
            "hard link",
        ),
        (
            entry("dev", tar::EntryType::Char, "", b""),
            "character device",
        ),
        (entry("p", tar::EntryType::Fifo, "", b""), "fifo"),
    ];
    for (e, want) in cases {
        let err = read(&tar(&[file("ok.json", b"{}"), e]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err} should say {want}");
    }
}

#[test]
fn a_gzip_bomb_stops_at_the_cap() {
    // 256 MiB of zeros as 256 identical gzip members: cheap to build, ~1 KiB each.
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..4].copy_from_slice(b"bomb");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(256 << 20);
    h.set_cksum();
    let mut blob = gz(h.as_bytes());
    let member = gz(&vec![0u8; 1 << 20]);
    for _ in 0..256 {
        blob.extend_from_slice(&member);
    }
    let info = LayerInfo {
        digest: crate::artifact::build::sha256_digest(&blob),
        size: blob.len() as u64,
        media_type: GZIP_LAYERS[0].into(),
        gzip: true,
        diff_id: None,
    };
    let mut rest = &blob[..];
    let err = read_layer(&mut rest, &info, &mut acc(1 << 20)).unwrap_err();
    assert!(matches!(err, ReadError::TooLarge { .. }), "{err}");
    // Stopped within the first buffers, not at the end of the blob.
    let read = blob.len() - rest.len();
    assert!(
        read < 64 << 10,
        "read {read} of {} compressed bytes",
        blob.len()
    );
}

#[test]
fn wrong_digest_size_and_diff_id_are_refused() {
    let raw = tar(&[file("a.json", b"{}")]);
    let blob = gz(&raw);
    let mut info = info_for(&blob, &raw);
    info.digest = crate::artifact::build::sha256_digest(b"other");
    let err = read_layer(&blob[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
    assert!(matches!(err, ReadError::DigestMismatch { .. }), "{err}");

    let mut info = info_for(&blob, &raw);
    info.size -= 1;
    let err = read_layer(&blob[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
    assert!(matches!(err, ReadError::SizeMismatch { .. }), "{err}");

    let mut info = info_for(&blob, &raw);
    info.diff_id = Some(crate::artifact::build::sha256_digest(b"other"));
    let err = read_layer(&blob[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
    assert!(matches!(err, ReadError::DiffIdMismatch { .. }), "{err}");

    // Another blob under this one's name: reported as the wrong blob, not as bad gzip.
    let info = info_for(&blob, &raw);
    let junk = vec![7u8; blob.len()];
    let err = read_layer(&junk[..], &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
    assert!(matches!(err, ReadError::DigestMismatch { .. }), "{err}");
}

#[test]
fn a_truncated_layer_is_corrupt() {
    let raw = tar(&[file("a.json", &vec![b'x'; 100_000])]);
    let blob = gz(&raw);
    let cut = &blob[..blob.len() / 2];
    // The descriptor matches the truncated bytes, as a registry would serve them.
    let info = info_for(cut, &raw);
    let err = read_layer(cut, &info, &mut acc(DEFAULT_MAX_BYTES)).unwrap_err();
    assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
}

#[test]
fn whiteouts_apply_to_lower_layers_only() {
    let mut a = acc(DEFAULT_MAX_BYTES);
    for raw in [
        tar(&[
            file("a/1.json", b"1"),
            file("a/2.json", b"2"),
            file("b/x.json", b"x"),
            file("c/y.json", b"y"),
            file("keep.json", b"k"),
        ]),
        tar(&[
            file("a/.wh.1.json", b""),
            file(".wh.b", b""),
            file("c/.wh..wh..opq", b""),
            file("c/z.json", b"z"),
            file("b/new.json", b"n"),
        ]),
    ] {
        let blob = gz(&raw);
        read_layer(&blob[..], &info_for(&blob, &raw), &mut a).unwrap();
    }
    assert_eq!(
        a.files.keys().collect::<Vec<_>>(),
        vec!["a/2.json", "b/new.json", "c/z.json", "keep.json"]
    );
}

#[test]
fn later_entries_replace_earlier_ones_of_another_kind() {
    let a = read(&tar(&[
        file("x", b"file"),
        file("x/inner.json", b"{}"),
        entry("d/", tar::EntryType::Directory, "", b""),
        file("d/in.json", b"1"),
        file("d", b"now a file"),
    ]))
    .unwrap();
    assert_eq!(
        a.files.keys().collect::<Vec<_>>(),
        vec!["d", "x/inner.json"]
    );
    assert!(a.dirs.contains("x"));
    assert!(!a.dirs.contains("d"));
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("123"), Some(123));
    assert_eq!(parse_size("64K"), Some(64 << 10));
    assert_eq!(parse_size("10m"), Some(10 << 20));
    assert_eq!(parse_size("4G"), Some(4 << 30));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_size(""), None);
}

#[test]
fn normalized_names() {
    assert_eq!(normalize("./a//b/").unwrap().as_deref(), Some("a/b"));
    assert_eq!(normalize("./").unwrap(), None);
    assert!(normalize("a/../b").is_err());
    assert!(normalize("/a").is_err());
}
