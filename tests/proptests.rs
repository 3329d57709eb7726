//! Property tests (bounded fuzzing in the normal suite) of the parsers that read untrusted input:
//! environment and settings TOML, the tar layer reader, manifests and indexes read from OCI
//! layouts, and the manifest-file (YAML) reader and editor. Inputs are the seeds under
//! tests/fuzz-corpus/ mutated (bit flips, insertions of syntax tokens, deletions, duplications),
//! and plain random bytes. The properties: no panic, and a refusal is an error that says where
//! (TOML: file:line:col). Case counts are set per test; `PROPTEST_CASES` overrides them all for
//! a longer run. Failures are kept by proptest under tests/proptest-regressions/.

use perses_oci::artifact::read::{Limits, read_layer_bytes, read_layout};
use perses_oci::config::{ConfigError, parse_env, parse_settings};
use perses_oci::manifest::{apply_edits, documents, find_workload};
use perses_oci::model::ArtifactState;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(kind);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// One edit of a seed; positions are taken modulo the current length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(p, t)| Mutation::Token(p, t)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..64, any::<usize>())
            .prop_map(|(p, n, to)| Mutation::Duplicate(p, n, to)),
    ]
}

fn mutate(mut data: Vec<u8>, ms: &[Mutation], tokens: &[&[u8]]) -> Vec<u8> {
    for m in ms {
        let len = data.len().max(1);
        match m {
            Mutation::Flip(p, b) => {
                if !data.is_empty() {
                    data[p % len] ^= b;
                }
            }
            Mutation::Insert(p, b) => {
                let at = p % (data.len() + 1);
                data.splice(at..at, b.iter().copied());
            }
            Mutation::Token(p, t) => {
                let at = p % (data.len() + 1);
                let tok = tokens[t % tokens.len()];
                data.splice(at..at, tok.iter().copied());
            }
            Mutation::Delete(p, n) => {
                if !data.is_empty() {
                    let at = p % len;
                    let end = (at + n).min(data.len());
                    data.drain(at..end);
                }
            }
            Mutation::Duplicate(p, n, to) => {
                if !data.is_empty() {
                    let at = p % len;
                    let part = data[at..(at + n).min(data.len())].to_vec();
                    let to = to % (data.len() + 1);
                    data.splice(to..to, part);
                }
            }
        }
    }
    data
}

/// A seed index and edits to make to it.
fn mutated() -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (any::<usize>(), prop::collection::vec(mutation(), 0..8))
}

const TOML_TOKENS: &[&[u8]] = &[
    b"[[artifact]]\n",
    b"[target]\n",
    b"[registry]\n",
    b"\"\"\"",
    b"'''",
    b" = ",
    b"\\u0000",
    b"\\u202e",
    b"\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\x00",
    b"\xff",
    b"\xe2\x80\x8b",
    b"1979-05-27T07:32:00Z",
    b"inf",
    b"-0x7f",
    b"../",
    b"/",
    b"name = \"x\"\n",
    b"mount_path = \"/etc\"\n",
];

/// The case count of a test: its default, or `PROPTEST_CASES` for a longer run.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Inputs that got through (a value, not a refusal), to show the mutations reach past the
/// first check.
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

fn counted(name: &'static str, counter: &AtomicUsize, start: &std::sync::OnceLock<Instant>) {
    start.get_or_init(Instant::now);
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    // Printed at round counts, for docs/reliability.md (`-- --nocapture`).
    if n.is_multiple_of(1000) || n == 600 {
        eprintln!(
            "FIGURE fuzz {name}: {n} cases in {:?} ({} accepted so far, all targets)",
            start.get().unwrap().elapsed(),
            ACCEPTED.load(Ordering::Relaxed)
        );
    }
}

/// The TOML property: either a value, or diagnostics that each name the file, a line within the
/// text (or one past its end) and a column.
fn check_env(text: &str) {
    let file = Path::new("environments/prod.toml");
    match parse_env("prod", file, text, Path::new("/nonexistent-project")) {
        Ok(_) => {
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
        }
        Err(ConfigError::Invalid { diagnostics }) => {
            assert!(!diagnostics.is_empty());
            let lines = text.split('\n').count();
            for d in diagnostics {
                assert!(d.line >= 1 && d.column >= 1, "{d}");
                assert!(d.line <= lines + 1, "line {} of {lines}: {d}", d.line);
                assert!(
                    d.to_string()
                        .starts_with(&format!("environments/prod.toml:{}:{}: ", d.line, d.column)),
                    "{d}"
                );
            }
        }
        Err(other) => panic!("parse_env is pure; got {other}"),
    }
}

static TOML_N: AtomicUsize = AtomicUsize::new(0);
static TOML_T: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static TAR_N: AtomicUsize = AtomicUsize::new(0);
static TAR_T: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static LAYOUT_N: AtomicUsize = AtomicUsize::new(0);
static LAYOUT_T: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static YAML_N: AtomicUsize = AtomicUsize::new(0);
static YAML_T: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn toml_mutated_seeds_parse_or_say_where((seed, ms) in mutated()) {
        let seeds = corpus("toml");
        let data = mutate(seeds[seed % seeds.len()].clone(), &ms, TOML_TOKENS);
        counted("TOML (mutated seeds)", &TOML_N, &TOML_T);
        // The loader reads UTF-8 text: invalid bytes are refused before parsing, with a position.
        if let Ok(text) = std::str::from_utf8(&data) {
            check_env(text);
            let _ = parse_settings(Path::new("perses-oci.toml"), text, &["prod".into(), "staging".into()]);
        }
    }

    #[test]
    fn toml_arbitrary_text_parses_or_says_where(text in ".{0,400}") {
        check_env(&text);
        counted("TOML (random text)", &TOML_N, &TOML_T);
    }
}

const TAR_TOKENS: &[&[u8]] = &[
    b"../",
    b"/",
    b".wh.",
    b".wh..wh..opq",
    b"\x00",
    b"ustar\x0000",
    b"ustar  \x00",
    b"77777777777",
    b"00000000000",
    b"1",
    b"2",
    b"5",
    b"L",
    b"x",
    b"g",
    b"\x1f\x8b\x08\x00",
];

fn check_layer(data: &[u8], gzip: bool) {
    // 1 MiB: a mutated size field must meet the cap, not memory.
    match read_layer_bytes(data, gzip, 1 << 20) {
        Ok((files, dirs)) => {
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
            for p in files.keys().chain(dirs.iter()) {
                assert!(!p.is_empty() && !p.starts_with('/'), "{p:?}");
                assert!(
                    p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
                    "{p:?}"
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    #[test]
    fn tar_layers_mutated_read_or_are_refused((seed, ms) in mutated(), gzip_after in any::<bool>()) {
        let seeds = corpus("tar");
        let i = seed % seeds.len();
        let seed_gz = seeds[i][..2] == [0x1f, 0x8b];
        let data = mutate(seeds[i].clone(), &ms, TAR_TOKENS);
        check_layer(&data, seed_gz);
        // The same mutated tar, compressed (mutations then reach the tar reader intact).
        if gzip_after && !seed_gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            check_layer(&e.finish().unwrap(), true);
        }
        counted("tar layers", &TAR_N, &TAR_T);
    }

    #[test]
    fn random_bytes_as_layers_are_refused(data in prop::collection::vec(any::<u8>(), 0..4096), gzip in any::<bool>()) {
        check_layer(&data, gzip);
        counted("tar layers", &TAR_N, &TAR_T);
    }
}

const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\"mediaType\":\"application/vnd.oci.image.index.v1+json\",",
    b"\"manifests\":[],",
    b"\"layers\":[],",
    b"\"platform\":{\"os\":\"windows\"},",
    b"sha256:",
    b"sha512:",
    b"\\u0000",
];

fn sha(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Writes a layout whose documents are the corpus' chain (top index -> index -> manifest ->
/// config and layer) with document `which` mutated; the ancestors' descriptors are rewritten to
/// the mutated bytes' digest and size, so the mutation reaches the parser instead of stopping
/// at a digest check.
fn write_layout(dir: &Path, which: usize, ms: &[Mutation]) {
    let docs = corpus("layout");
    // Sorted names: config, index, manifest, top-index.
    let (config, index, manifest, top) = (&docs[0], &docs[1], &docs[2], &docs[3]);
    let layer = corpus("tar")
        .into_iter()
        .find(|b| b[..2] == [0x1f, 0x8b])
        .unwrap();
    // Chain from leaf to root: each one's parent is the next.
    let mut chain: Vec<Vec<u8>> =
        vec![config.clone(), manifest.clone(), index.clone(), top.clone()];
    let mut layer = layer;
    let desc = |b: &[u8]| format!("\"digest\":\"{}\",\"size\":{}", sha(b), b.len());
    let patch = |from: usize, old: &[u8], new: &[u8], chain: &mut Vec<Vec<u8>>| {
        let (mut old, mut new) = (old.to_vec(), new.to_vec());
        for parent in chain.iter_mut().skip(from) {
            let before = parent.clone();
            let text = String::from_utf8_lossy(parent)
                .replace(&desc(&old), &desc(&new))
                .into_bytes();
            *parent = text;
            old = before;
            new = parent.clone();
        }
    };
    match which % 5 {
        0 => {
            let old = layer.clone();
            layer = mutate(layer, ms, TAR_TOKENS);
            // The layer's parent is the manifest (chain index 1).
            patch(1, &old, &layer, &mut chain);
        }
        k => {
            let i = k - 1;
            let old = chain[i].clone();
            chain[i] = mutate(old.clone(), ms, JSON_TOKENS);
            let new = chain[i].clone();
            patch(i + 1, &old, &new, &mut chain);
        }
    }
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for b in chain[..3].iter().chain([&layer]) {
        std::fs::write(blobs.join(&sha(b)[7..]), b).unwrap();
    }
    std::fs::write(dir.join("index.json"), &chain[3]).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(600), ..ProptestConfig::default() })]

    #[test]
    fn layouts_with_a_mutated_document_read_or_are_refused(which in 0usize..5, ms in prop::collection::vec(mutation(), 1..6)) {
        let tmp = tempfile::tempdir().unwrap();
        write_layout(tmp.path(), which, &ms);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let limits = Limits { max_bytes: 1 << 20 };
        match rt.block_on(read_layout(tmp.path(), "v1", limits)) {
            Ok(tree) => {
                ACCEPTED.fetch_add(1, Ordering::Relaxed);
                for p in tree.files.keys() {
                    assert!(!p.starts_with('/') && !p.split('/').any(|c| c == ".."), "{p:?}");
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        // Nothing is written next to the layout or inside it.
        let mut n = 0;
        for e in std::fs::read_dir(tmp.path().join("blobs/sha256")).unwrap() {
            e.unwrap();
            n += 1;
        }
        assert!(n <= 4);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 3);
        counted("OCI layouts (index, manifest, config, layer)", &LAYOUT_N, &LAYOUT_T);
    }
}

const YAML_TOKENS: &[&[u8]] = &[
    b"---\n",
    b"...\n",
    b": ",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"|\n",
    b">-\n",
    b"  ",
    b"\t",
    b"#",
    b"'",
    b"\"",
    b"\n      - name: perses-resources\n",
    b"volumes:\n",
    b"volumeMounts:\n",
    b"<<: *a\n",
    b"\xef\xbb\xbf",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn manifest_files_mutated_read_and_edit_or_are_refused((seed, ms) in mutated()) {
        let seeds = corpus("yaml");
        let data = mutate(seeds[seed % seeds.len()].clone(), &ms, YAML_TOKENS);
        counted("manifest YAML (read + edit)", &YAML_N, &YAML_T);
        let Ok(text) = std::str::from_utf8(&data) else { return Ok(()) };
        let Ok(docs) = documents("perses.yaml", text) else { return Ok(()) };
        let Ok(doc) = find_workload("perses.yaml", &docs, None) else { return Ok(()) };
        let state = ArtifactState {
            reference: "registry.example.com/r:v2@sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            pull_policy: Some("IfNotPresent".into()),
            mount_path: Some("/etc/perses/provisioning".into()),
            sub_path: Some("prod".into()),
        };
        for edits in [
            vec![("perses-resources".to_string(), Some(state.clone()))],
            vec![("perses-resources".to_string(), None)],
            vec![("new-one".to_string(), Some(state.clone()))],
        ] {
            if let Ok(out) = apply_edits("perses.yaml", text, doc, "perses", &edits) {
                ACCEPTED.fetch_add(1, Ordering::Relaxed);
                let _ = documents("perses.yaml", &out);
            }
        }
    }
}
