//! The fast line decoder (`perses::yaml_block`) against the event parser
//! (`perses::yaml::full_document`): wherever the fast one answers, both give the same document
//! (values and the lines of top-level list items), on real resources written as YAML by three
//! writers, on hand-written corner cases, and on random documents and random damage to them.
//! The fast decoder must also answer for the YAML tools write, or it would speed nothing up.

use perses_oci::perses::{yaml, yaml_block};
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The document lint reads (`yaml_block::decode_checked`): the plugin specs of a dashboard's
/// panels and queries emptied, keeping their type, in each resource (the root, or each item
/// of a top-level list).
fn checked(mut doc: yaml::Doc) -> yaml::Doc {
    fn empty(spec: &mut Value) {
        match spec {
            Value::Object(m) => m.clear(),
            Value::Array(a) => a.clear(),
            _ => {}
        }
    }
    fn resource(r: &mut Value) {
        let Some(Value::Object(panels)) = r.pointer_mut("/spec/panels") else {
            return;
        };
        for panel in panels.values_mut() {
            if let Some(s) = panel.pointer_mut("/spec/plugin/spec") {
                empty(s);
            }
            if let Some(Value::Array(queries)) = panel.pointer_mut("/spec/queries") {
                for q in queries {
                    if let Some(s) = q.pointer_mut("/spec/plugin/spec") {
                        empty(s);
                    }
                }
            }
        }
    }
    match &mut doc.value {
        Value::Array(items) => items.iter_mut().for_each(resource),
        r => resource(r),
    }
    doc
}

/// Same answer, or no answer from the fast decoder. Returns whether it answered. Lint's
/// reading of the same text (`decode_checked`) answers exactly when `decode` does, with the
/// plugin specs emptied.
fn agree(text: &str) -> bool {
    assert_eq!(
        yaml_block::decode_checked(text),
        yaml_block::decode(text).map(checked),
        "lint's reading differs from the document less its plugin specs:\n{text}"
    );
    match yaml_block::decode(text) {
        None => false,
        Some(fast) => {
            let full = yaml::full_document(text);
            assert_eq!(
                full.as_ref().ok(),
                Some(&fast),
                "the fast decoder answered where the parser says {full:?}:\n{text}"
            );
            true
        }
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

/// Every JSON document of the Perses corpus, as serde_saphyr writes it as YAML (one file,
/// and each resource of a list alone).
#[test]
fn the_corpus_as_yaml_agrees_and_is_read_fast() {
    let mut files = Vec::new();
    json_files(&root().join("../shared/corpus/perses"), &mut files);
    assert!(files.len() > 20, "corpus: {} files", files.len());
    let (mut docs, mut fast) = (0, 0);
    for f in &files {
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(f).unwrap()) else {
            continue;
        };
        let mut values = vec![v.clone()];
        if let Value::Array(items) = &v {
            values.extend(items.iter().cloned());
        }
        for v in values {
            let text = serde_saphyr::to_string(&v).unwrap();
            docs += 1;
            let ok = agree(&text);
            fast += ok as usize;
        }
    }
    assert!(docs >= 50, "{docs} documents");
    // Block style with quoted strings and `|` blocks: nearly all of it is the fast subset.
    assert!(
        fast * 100 >= docs * 95,
        "the fast decoder read only {fast} of {docs} documents"
    );
}

/// The bench's YAML tree writer (block style, quoted only where yaml.v3 would misread, as
/// percli and the Go SDK write), the repository's own YAML files, all through `agree`.
#[test]
fn the_bench_tree_and_the_repository_yaml_agree_and_are_read_fast() {
    let out = tempfile::tempdir().unwrap();
    let tree = out.path().join("tree");
    let st = std::process::Command::new("python3")
        .arg(root().join("scripts/bench-gen.py"))
        .arg("yaml")
        .arg(root().join("../shared/corpus/perses/dev-data/9-dashboard.json"))
        .arg(&tree)
        .args(["60", "7"])
        .status()
        .expect("python3 runs scripts/bench-gen.py");
    assert!(st.success());
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("target") && !p.ends_with(".git") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    walk(&tree, &mut files);
    let generated = files.len();
    assert!(generated >= 60, "{generated} files");
    for d in ["examples", "tests", "docs"] {
        walk(&root().join(d), &mut files);
    }
    let mut fast_generated = 0;
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap();
        let answered = agree(&text);
        if i < generated {
            fast_generated += answered as usize;
        }
    }
    assert_eq!(
        fast_generated, generated,
        "every generated file is in the fast subset"
    );
}

/// Corner cases: each must agree; those marked `true` must also be read fast.
#[test]
fn corner_cases_agree() {
    let cases: &[(&str, bool)] = &[
        ("a: 1\nb: x\n", true),
        ("---\na: 1\n", true),
        ("# c\na: 1 # c\nb: 'x # y' # c\n", true),
        ("a: \"x\\ny\\t\\\"\\\\\\u00e9\"\n", true),
        ("a: 'it''s'\n", true),
        ("a: {}\nb: []\n", true),
        ("a:\n- 1\n- 2\nb: 3\n", true),
        ("a:\n  - x: 1\n    y: 2\n  - z\n", true),
        ("- kind: A\n  x: 1\n- kind: B\n-\n  kind: C\n", true),
        ("-   kind: A\n    spec: {}\n", true),
        ("a: |\n  x\n  y\nb: 1\n", true),
        ("a: |-\n  x\n\n  y\n\n\nb: 1\n", true),
        ("a: |+\n  x\n\n\nb: 1\n", true),
        ("a: |+\n  x\n\n", true),
        ("a: |\n    indented\n  less\n", false),
        ("a: |\n  x\n   \n  y\n", true),
        ("a: |\n\n  x\n", true),
        ("a: |\n  # not a comment\n# a comment\nb: 1\n", true),
        ("a: |\nb: 1\n", true),
        ("a: |2\n   x\n", false),
        ("a: >\n  x\n  y\n", true),
        ("a: >-\n  x\n  y\n\n  z\n    more\n  w\nb: 1\n", true),
        ("a: >+\n  x\n\n  y\n\n", true),
        ("a: >\n\n  x\n", true),
        ("a: |\n  x", false),
        (
            "a: 012\nb: 0x1F\nc: yes\nd: ~\ne:\nf: 2024-01-01\ng: .inf\nh: 1e3\ni: -5\nj: -x\n",
            true,
        ),
        ("~: 1\nnull: 2\n", false),
        ("\"a b\": 1\n'c': 2\n", true),
        ("a:b: 1\n", true),
        ("url: http://x:80/y\n", true),
        ("q: rate(x{a=\"b\"}[5m]) > 0.5, y\n", true),
        ("a: b: c\n", false),
        ("a: &x 1\nb: *x\n", false),
        ("<<: {a: 1}\n", false),
        ("a: !!str 1\n", false),
        ("a: [1, 2]\n", false),
        ("a: {b: 1}\n", false),
        ("a: x\n  y\n", false),
        ("a: \"x\n  y\"\n", false),
        ("a: 1\na: 2\n", false),
        ("a:\n\tb: 1\n", false),
        ("a: 1\r\n", false),
        ("- - a\n", false),
        ("a: 1\n- b\n", false),
        ("a: 1\n  b: 2\n", false),
        ("a\n", false),
        ("", false),
        ("# only\n", false),
        ("- a\n- \n", false),
        ("-\n", false),
        ("a: -\n", false),
        ("a: ? b\n", false),
        ("? a\n: b\n", false),
        ("%YAML 1.2\n---\na: 1\n", false),
        ("--- a: 1\n", false),
        ("a: 1\n...\n", false),
        ("a:\n  b:\n    c: |\n      deep\n      text\n  d: 1\n", true),
        ("a: \"\\x41\"\n", false),
        ("a: \"\\ud800\"\n", false),
        ("a: \"\\/\"\n", true),
        ("a: ''\nb: \"\"\n", true),
        ("a: 'x' y\n", false),
        ("a: \"x\" # c\n", true),
        ("k: v #c\nl: w#not\n", true),
        ("a:    spaced   \n", true),
        ("a :\n", false),
        ("- x\n- [a]\n", false),
        ("- 'q'\n- \"r\"\n- 3\n", false),
        ("a:\n- 'q'\n- \"r\"\n- 3\n", true),
        ("a:\n  -\n    b: 1\n  - \n", true),
        // Plugin specs, which lint reads for syntax only (`decode_checked`, see `agree`).
        (
            "kind: Dashboard\nspec:\n  panels:\n    a:\n      spec:\n        plugin:\n          \
             kind: X\n          spec:\n            b: 1\n            c:\n              - d: 'e'\n\
             \x20               f: |\n                  g\n        queries:\n          - spec:\n\
             \x20             plugin:\n                spec:\n                  q: up\n",
            true,
        ),
        (
            "spec:\n  panels:\n    a:\n      spec:\n        plugin:\n          spec:\n\
             \x20           b: 1\n            b: 2\n",
            false,
        ),
        (
            "spec:\n  panels:\n    a:\n      spec:\n        plugin:\n          spec:\n\
             \x20           b: c: d\n",
            false,
        ),
        (
            "spec:\n  panels:\n    a:\n      spec:\n        plugin:\n          spec: 5\n",
            true,
        ),
        (
            "spec:\n  panels:\n    a:\n      spec:\n        plugin:\n          spec:\n          - 1\n",
            true,
        ),
        (
            "- spec:\n    panels:\n      a:\n        spec:\n          plugin:\n            spec: {x: 1}\n",
            false,
        ),
        (
            "- spec:\n    panels:\n      a:\n        spec:\n          plugin:\n            spec:\n              x: 1\n",
            true,
        ),
        (
            "kind: Datasource\nspec:\n  plugin:\n    spec:\n      proxy: 1\n",
            true,
        ),
    ];
    for (text, fast) in cases {
        let answered = agree(text);
        if *fast {
            assert!(answered, "the fast decoder should read:\n{text}");
        }
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        // Strings YAML could misread: indicators, `: `, ` #`, quotes, number and date lookalikes,
        // newlines, blank edges, non-ASCII.
        "[ a-z0-9:#'\"\\-|>{}\\[\\],.&*!%@`~\n\té]{0,12}".prop_map(Value::String),
        // Long enough for writers to fold them (`>-`), with runs of spaces and breaks.
        "[a-z]{1,9}( {1,3}[a-z]{1,9}|\n{1,2} {0,2}[a-z]{1,9}){8,30}\n?".prop_map(Value::String),
        prop::sample::select(vec![
            "yes",
            "no",
            "true",
            "null",
            "~",
            "012",
            "0x1F",
            "1e3",
            ".inf",
            "2024-01-01",
            "-",
            "",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "#c",
            "x\n",
            "\nx",
            "x\n\n",
            "'",
            "\"",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z:# '\"-]{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    // PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500)
    ))]

    /// Random documents as serde_saphyr writes them.
    #[test]
    fn random_documents_agree(v in tree()) {
        let text = serde_saphyr::to_string(&v).unwrap();
        agree(&text);
    }

    /// Random damage to a written document: a byte inserted, deleted or replaced, or a line's
    /// indentation changed. The fast decoder must refuse or agree, never answer differently.
    #[test]
    fn damaged_documents_agree(
        v in tree(),
        at in any::<prop::sample::Index>(),
        what in 0u8..4,
        byte in prop::sample::select(b" :#-'\"|>+{}[]\n\t&*!?,~0ax\\".to_vec()),
    ) {
        let mut text = serde_saphyr::to_string(&v).unwrap().into_bytes();
        if text.is_empty() {
            return Ok(());
        }
        let i = at.index(text.len());
        match what {
            0 => text.insert(i, byte),
            1 => { text.remove(i); }
            2 => text[i] = byte,
            _ => {
                // Indent or outdent the line holding i by one space.
                let start = text[..i].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                if text.get(start) == Some(&b' ') && byte < b'0' {
                    text.remove(start);
                } else {
                    text.insert(start, b' ');
                }
            }
        }
        if let Ok(text) = String::from_utf8(text) {
            agree(&text);
        }
    }
}
