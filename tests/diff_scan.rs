//! `diff` reads artifacts one file at a time: it must give the in-memory diff's answer for
//! directories and OCI layouts alike (moved, reformatted, identical and secret resources, a
//! sub path), and refuse a layer blob rewritten between its two reads.

use perses_oci::artifact::diff::content_diff;
use perses_oci::artifact::scan::{Scan, ScanError};
use perses_oci::registry::Registry;
use serde_json::Value;
use std::path::Path;

fn bin() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("perses-oci").unwrap()
}

fn dash(name: &str, spec: &str) -> String {
    format!(r#"{{"kind":"Dashboard","metadata":{{"name":"{name}","project":"p"}},"spec":{spec}}}"#)
}

fn secret(pw: &str) -> String {
    format!(
        r#"{{"kind":"GlobalSecret","metadata":{{"name":"s"}},"spec":{{"basicAuth":{{"password":"{pw}"}}}}}}"#
    )
}

fn files_a() -> Vec<(String, String)> {
    let mut v = vec![
        (
            "prod/p.json".into(),
            r#"{"kind":"Project","metadata":{"name":"p"},"spec":{}}"#.into(),
        ),
        ("prod/old/moved.json".into(), dash("moved", r#"{"x":1}"#)),
        ("prod/fmt.json".into(), dash("fmt", r#"{"a":1,"b":2}"#)),
        ("prod/gone.json".into(), dash("gone", "{}")),
        ("prod/s.json".into(), secret("hunter2")),
        ("staging/d.json".into(), dash("d", r#"{"x":1}"#)),
    ];
    // Enough identical files for several tar blocks and gzip buffers.
    for i in 0..200 {
        v.push((
            format!("prod/same/{i:03}.json"),
            dash(&format!("same-{i}"), r#"{"x":1}"#),
        ));
    }
    v
}

fn files_b() -> Vec<(String, String)> {
    files_a()
        .into_iter()
        .filter(|(p, _)| p != "prod/gone.json")
        .map(|(p, t)| match p.as_str() {
            "prod/old/moved.json" => ("prod/new/moved.json".into(), t),
            "prod/fmt.json" => (p, format!("{}\n", dash("fmt", r#"{ "b": 2, "a": 1 }"#))),
            "prod/s.json" => (p, secret("correct-horse")),
            "prod/same/100.json" => (p, dash("same-100", r#"{"x":2}"#)),
            _ => (p, t),
        })
        .chain([("prod/added.json".into(), dash("added", "{}"))])
        .collect()
}

fn write(root: &Path, files: &[(String, String)]) {
    for (p, t) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    }
}

fn push(dir: &Path, layout: &Path) -> String {
    let to = format!("oci:{}:v1", layout.display());
    bin()
        .args([
            "push",
            dir.to_str().unwrap(),
            "--to",
            &to,
            "--no-lint",
            "--no-cache",
        ])
        .assert()
        .success();
    to
}

/// `diff --format json` without the fields naming the inputs.
fn diff_json(a: &str, b: &str, sub: Option<&str>) -> Value {
    let mut cmd = bin();
    cmd.args(["diff", a, b, "--format", "json"]);
    if let Some(s) = sub {
        cmd.args(["--sub-path", s]);
    }
    let out = cmd.assert().code(2).get_output().stdout.clone();
    let mut v: Value = serde_json::from_slice(&out).unwrap();
    let o = v.as_object_mut().unwrap();
    for k in ["format_version", "a", "b"] {
        o.remove(k);
    }
    v
}

fn in_memory(files: &[(String, String)], sub: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let prefix = sub.map(|s| format!("{s}/")).unwrap_or_default();
    let mut v: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|(p, t)| Some((p.strip_prefix(&prefix)?.to_string(), t.clone().into_bytes())))
        .collect();
    v.sort();
    v
}

#[test]
fn directories_and_layouts_diff_as_the_in_memory_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    write(&da, &files_a());
    write(&db, &files_b());
    let la = push(&da, &tmp.path().join("la"));
    let lb = push(&db, &tmp.path().join("lb"));
    for sub in [None, Some("prod")] {
        let want = serde_json::to_value(content_diff(
            &in_memory(&files_a(), sub),
            &in_memory(&files_b(), sub),
        ))
        .unwrap();
        let (a, b) = (da.to_str().unwrap(), db.to_str().unwrap());
        for (x, y) in [(a, b), (la.as_str(), lb.as_str()), (a, lb.as_str())] {
            assert_eq!(diff_json(x, y, sub), want, "{x} {y} {sub:?}");
        }
    }
    let want =
        "~ GlobalSecret s (s.json)\n    (the GlobalSecret spec changed; its values are masked)\n";
    let out = bin()
        .args(["diff", &la, &lb, "--sub-path", "prod"])
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(want), "{out}");
    assert!(
        out.ends_with("1 added, 2 changed, 1 removed (202 unchanged)\n"),
        "{out}"
    );
    assert!(!out.contains("hunter2") && !out.contains("correct-horse"));
    let err = bin()
        .args(["diff", &la, &lb, "--sub-path", "dev"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&err).contains(&format!(
            "{la}: sub_path \"dev\" does not exist in the artifact (top-level folders: prod, staging)"
        )),
        "{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn a_layer_rewritten_between_two_reads_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    write(&da, &files_a());
    write(&db, &files_b());
    let la = push(&da, &tmp.path().join("la"));
    let lb = push(&db, &tmp.path().join("lb"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = Registry::new(Default::default());
    let a = rt.block_on(Scan::open(&la, None, &reg)).unwrap();
    let b = rt.block_on(Scan::open(&lb, None, &reg)).unwrap();
    // The largest blob of a layout is its layer: rewrite `a`'s in place with `b`'s bytes.
    let largest = |dir: &Path| {
        std::fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .max_by_key(|p| p.metadata().unwrap().len())
            .unwrap()
    };
    let layer_b = std::fs::read(largest(&tmp.path().join("lb"))).unwrap();
    std::fs::write(largest(&tmp.path().join("la")), layer_b).unwrap();
    let e = perses_oci::artifact::diff::scanned_diff(&a, &b).unwrap_err();
    assert!(
        matches!(e, ScanError::Read(_)) && e.to_string().contains("changed between two reads"),
        "{e}"
    );
}

/// `perses-oci lint --format json` of `what`, without the field naming the input.
fn lint_json(what: &str, sub: Option<&str>) -> (i32, Value) {
    let mut cmd = bin();
    cmd.args(["lint", what, "--format", "json"]);
    if let Some(s) = sub {
        cmd.args(["--sub-path", s]);
    }
    let out = cmd.output().unwrap();
    let mut v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v.as_object_mut().unwrap().remove("root");
    (out.status.code().unwrap(), v)
}

fn umoci(args: &[&str]) {
    let out = std::process::Command::new("umoci")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lint of an image (read once, linted on the way, one file in memory per core) is the
/// lint of the directory a container would see: for perses-oci's own one-layer image, and for
/// an image of two layers where the second replaces, deletes (a whiteout) and adds files.
#[test]
fn an_image_lints_as_the_directory_a_container_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let mut files = files_a();
    files.push(("prod/broken.json".into(), "{\"kind\": ".into()));
    files.push(("prod/README.md".into(), "not a resource".into()));
    write(&dir, &files);
    let layout = push(&dir, &tmp.path().join("la"));
    for sub in [None, Some("prod")] {
        let want = lint_json(dir.to_str().unwrap(), sub);
        assert_eq!(want.0, 1, "the tree has a broken file");
        assert_eq!(lint_json(&layout, sub), want, "{sub:?}");
    }

    // Two layers, as umoci writes them: the second rewrites a dashboard, removes one and adds
    // a broken file.
    let l2 = tmp.path().join("l2");
    let l2s = l2.to_str().unwrap();
    let bundle = tmp.path().join("bundle");
    let bundles = bundle.to_str().unwrap();
    umoci(&["init", "--layout", l2s]);
    umoci(&["new", "--image", &format!("{l2s}:v1")]);
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &format!("{l2s}:v1"),
        bundles,
    ]);
    write(&bundle.join("rootfs"), &files_a());
    umoci(&["repack", "--image", &format!("{l2s}:v1"), bundles]);
    let bundle = tmp.path().join("bundle2");
    let bundles = bundle.to_str().unwrap();
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &format!("{l2s}:v1"),
        bundles,
    ]);
    let rootfs = bundle.join("rootfs");
    std::fs::remove_file(rootfs.join("prod/gone.json")).unwrap();
    std::fs::write(
        rootfs.join("prod/fmt.json"),
        dash("fmt", r#"{"changed":true}"#),
    )
    .unwrap();
    std::fs::write(rootfs.join("prod/late.json"), "[1, 2]").unwrap();
    umoci(&["repack", "--image", &format!("{l2s}:v1"), bundles]);
    let m: Value = {
        let index: Value =
            serde_json::from_slice(&std::fs::read(l2.join("index.json")).unwrap()).unwrap();
        let d = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .replace("sha256:", "");
        serde_json::from_slice(&std::fs::read(l2.join("blobs/sha256").join(d)).unwrap()).unwrap()
    };
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    let image = format!("oci:{l2s}:v1");
    for sub in [None, Some("prod")] {
        let want = lint_json(rootfs.to_str().unwrap(), sub);
        let got = lint_json(&image, sub);
        assert_eq!(got, want, "{sub:?}");
        let paths: Vec<&str> = got.1["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert!(!paths.iter().any(|p| p.ends_with("gone.json")), "{paths:?}");
        assert!(paths.iter().any(|p| p.ends_with("late.json")), "{paths:?}");
    }
}
