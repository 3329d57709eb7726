//! `push` and `inspect` against the bed's real registries, read back by real peers (skopeo,
//! umoci), and hostile artifacts that `inspect` must refuse without writing anything.

use crate::support::{self, Bed, Reg, bed};
use flate2::{Compression, write::GzEncoder};
use oci_client::Reference;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the binary; returns (exit code, stdout, stderr).
fn run(bed: &Bed, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = bed.cmd();
    cmd.args(args);
    // These tests are about packaging, and their trees hold the corpus' dashboards/ and
    // datasources/, which Perses refuses (empty project): lint is skipped here and tested in
    // `lint_gates_the_push` below.
    if args.first() == Some(&"push") {
        cmd.arg("--no-lint");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run perses-oci");
    let (o, e) = text(&out);
    (out.status.code().unwrap_or(-1), o, e)
}

fn ok(bed: &Bed, args: &[&str]) -> String {
    let (code, out, err) = run(bed, args, &[]);
    assert_eq!(code, 0, "perses-oci {args:?} failed:\n{out}\n{err}");
    out
}

/// The `sha256:...` after `@` on the first line.
fn digest_of(out: &str) -> String {
    let line = out.lines().next().unwrap_or_default();
    let at = line
        .find("@sha256:")
        .unwrap_or_else(|| panic!("no digest in {out:?}"));
    line[at + 1..at + 1 + 71].to_string()
}

/// The corpus, as `folder/file` -> bytes.
fn corpus() -> BTreeMap<String, Vec<u8>> {
    let mut files = support::corpus_files("dashboards", "dashboards");
    files.extend(support::corpus_files("datasources", "datasources"));
    files.extend(support::corpus_files("dev-data", "prod/dev-data"));
    files
}

/// Writes `files` under `root`, in the given order, each with its own mtime.
fn write_tree<'a>(
    root: &Path,
    files: impl Iterator<Item = (&'a String, &'a Vec<u8>)>,
    mtime: impl Fn(usize) -> SystemTime,
) {
    for (i, (path, data)) in files.enumerate() {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(data).unwrap();
        f.set_modified(mtime(i)).unwrap();
    }
}

/// Reads a directory back as `relative path` -> bytes (regular files only).
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                assert!(ft.is_file(), "{} is not a regular file", e.path().display());
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// What the registry stores for one repository: linked blobs and manifest revisions.
fn stored(bed: &Bed, reg_dir: &str, repo: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let base = bed
        .dir
        .join("registries")
        .join(reg_dir)
        .join("data/docker/registry/v2/repositories")
        .join(repo);
    let list = |sub: &str| -> BTreeSet<String> {
        match std::fs::read_dir(base.join(sub)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => BTreeSet::new(),
        }
    };
    (list("_layers/sha256"), list("_manifests/revisions/sha256"))
}

fn require(tool: &str) {
    let found = std::process::Command::new("which")
        .arg(tool)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed: run scripts/testbed install (it installs skopeo and umoci with apt)"
    );
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    let (o, e) = text(&out);
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{o}\n{e}");
    o
}

#[test]
fn copies_of_one_tree_give_one_digest_and_a_second_push_uploads_nothing() {
    let bed = bed();
    let files = corpus();
    let tmp = tempfile::tempdir().unwrap();
    // Same directory name: it is the image title.
    let a = tmp.path().join("one/resources");
    let b = tmp.path().join("two/resources");
    let day = Duration::from_secs(86_400);
    write_tree(&a, files.iter(), |i| SystemTime::now() - day * i as u32);
    write_tree(&b, files.iter().rev(), |i| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 7 * i as u64)
    });
    // Another umask, as a colleague's checkout would have.
    use std::os::unix::fs::PermissionsExt;
    for p in files.keys().take(3) {
        std::fs::set_permissions(b.join(p), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    let repo = format!("{}/perses-resources", support::unique_ns("push"));
    let image = format!("{}/{repo}", bed.registry);
    let first = ok(
        bed,
        &[
            "push",
            a.to_str().unwrap(),
            "--image",
            &format!("{image}:v1"),
        ],
    );
    assert!(
        first.starts_with(&format!("pushed {image}:v1@sha256:")),
        "{first}"
    );
    assert!(first.contains("uploaded 3 of 3 blobs"), "{first}");
    let digest = digest_of(&first);
    let before = stored(bed, "plain", &repo);
    assert_eq!(before.0.len(), 3, "layer + two configs: {before:?}");
    assert_eq!(before.1.len(), 3, "two manifests + the index: {before:?}");

    let second = ok(
        bed,
        &[
            "push",
            b.to_str().unwrap(),
            "--image",
            &format!("{image}:v1"),
        ],
    );
    assert!(
        second.starts_with(&format!("up to date {image}:v1@{digest}")),
        "{second}"
    );
    assert_eq!(stored(bed, "plain", &repo), before);

    // Another tag, same files: every blob is there already.
    let third = ok(
        bed,
        &[
            "push",
            b.to_str().unwrap(),
            "--image",
            &format!("{image}:v2"),
        ],
    );
    assert!(
        third.starts_with(&format!("pushed {image}:v2@{digest}")),
        "{third}"
    );
    assert!(third.contains("uploaded 0 of 3 blobs"), "{third}");
    assert_eq!(stored(bed, "plain", &repo), before);

    // The registry's own answer agrees with what we printed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, auth) = bed.oci(Reg::Plain);
    let r: Reference = format!("{image}:v1").parse().unwrap();
    assert_eq!(
        rt.block_on(client.fetch_manifest_digest(&r, &auth))
            .unwrap(),
        digest
    );
}

#[test]
fn a_tag_moves_to_other_files_only_with_force() {
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    write_tree(
        &dir,
        support::corpus_files("dashboards", "prod").iter(),
        |_| SystemTime::now(),
    );
    let image = format!(
        "{}/{}/res:v1",
        bed.registry,
        support::unique_ns("push-move")
    );
    let d = dir.to_str().unwrap();
    let old = digest_of(&ok(bed, &["push", d, "--image", &image]));
    std::fs::write(dir.join("prod/extra.json"), b"{\"kind\":\"Project\"}").unwrap();

    let (code, out, err) = run(bed, &["push", d, "--image", &image], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&old), "names the current digest: {err}");
    assert!(err.contains("--force"), "{err}");
    let new = err
        .split("sha256:")
        .nth(2)
        .map(|s| format!("sha256:{}", &s[..64]))
        .expect("names the new digest");
    assert_ne!(new, old);

    let out = ok(bed, &["push", d, "--image", &image, "--force"]);
    assert!(out.starts_with(&format!("pushed {image}@{new}")), "{out}");
    assert!(out.contains(&format!("moved the tag from {old}")), "{out}");
}

/// The re-push fast path: an unchanged tree is recognised from its file metadata and the tag
/// is checked in the registry, without a build; any change of content (even same size, same
/// mtime) or of the tag in the registry falls back to a full build.
#[test]
fn an_unchanged_tree_is_not_rebuilt_but_any_change_is_seen() {
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    let files = support::corpus_files("dashboards", "prod");
    write_tree(&dir, files.iter(), |_| SystemTime::now());
    // Files changed in the last two seconds are not recorded (their next change may keep the
    // same timestamps).
    std::thread::sleep(Duration::from_millis(2100));
    let cache = tmp.path().join("cache");
    let env = [("PERSES_OCI_CACHE_DIR", cache.to_str().unwrap())];
    let image = format!(
        "{}/{}/res:v1",
        bed.registry,
        support::unique_ns("push-stamp")
    );
    let d = dir.to_str().unwrap();
    let push = |extra: &[&str]| {
        let mut args = vec!["push", d, "--image", &image];
        args.extend(extra);
        run(bed, &args, &env)
    };

    let (code, first, err) = push(&[]);
    assert_eq!(code, 0, "{first}{err}");
    assert!(first.starts_with("pushed "), "{first}");
    let digest = digest_of(&first);
    assert_eq!(
        std::fs::read_dir(cache.join("push-stamps"))
            .unwrap()
            .count(),
        1,
        "one stamp recorded"
    );

    let (code, again, err) = push(&[]);
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.starts_with(&format!("up to date {image}@{digest}")),
        "{again}"
    );
    assert!(again.contains("not rebuilt"), "{again}");
    assert!(again.contains(&format!("{} files", files.len())), "{again}");

    let (code, forced, err) = push(&["--no-cache"]);
    assert_eq!(code, 0, "{forced}{err}");
    assert!(forced.starts_with(&format!("up to date {image}@{digest}")));
    assert!(
        !forced.contains("not rebuilt"),
        "--no-cache builds: {forced}"
    );

    // Same size, same mtime, other content: the ctime (which no tool can set back) tells.
    let (victim, data) = files.iter().next().unwrap();
    let path = dir.join(victim);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut changed = data.clone();
    let at = changed.iter().position(|b| b.is_ascii_lowercase()).unwrap();
    changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
    std::fs::write(&path, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (code, out, err) = push(&[]);
    assert_eq!(code, 1, "other files: the tag is not moved\n{out}{err}");
    assert!(err.contains(&digest) && err.contains("--force"), "{err}");

    // Put the content back: the tree is as pushed, but its stamp is new (new times), so it is
    // built, found identical, and (its files no longer recent) recorded again.
    std::fs::write(&path, data).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let (code, out, err) = push(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("up to date {image}@{digest}")),
        "{out}"
    );
    assert!(!out.contains("not rebuilt"), "{out}");
    let (_, out, _) = push(&[]);
    assert!(out.contains("not rebuilt"), "{out}");

    // Someone moves the tag: the recorded stamp no longer matches the registry, so push builds
    // and refuses to move the tag back without --force.
    let other = tmp.path().join("other");
    write_tree(&other, files.iter().take(1), |_| SystemTime::now());
    let (code, out, err) = run(
        bed,
        &[
            "push",
            other.to_str().unwrap(),
            "--image",
            &image,
            "--force",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = push(&[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn auth_registry_takes_docker_config_credentials_and_refuses_anonymous() {
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    write_tree(
        &dir,
        support::corpus_files("datasources", "").iter(),
        |_| SystemTime::now(),
    );
    let image = format!(
        "{}/{}/res:v1",
        bed.registry_auth,
        support::unique_ns("push-auth")
    );
    let out = ok(bed, &["push", dir.to_str().unwrap(), "--image", &image]);
    assert!(out.starts_with(&format!("pushed {image}@")), "{out}");

    let empty = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        bed,
        &[
            "push",
            dir.to_str().unwrap(),
            "--image",
            &image.replace(":v1", ":v2"),
        ],
        &[("DOCKER_CONFIG", empty.path().to_str().unwrap())],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("401"), "{err}");
    assert!(
        err.contains(&bed.registry_auth),
        "names the registry: {err}"
    );
    assert!(err.contains("no credentials found"), "{err}");
}

#[test]
fn tls_registry_with_its_ca_file() {
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    write_tree(
        &dir,
        support::corpus_files("datasources", "").iter(),
        |_| SystemTime::now(),
    );
    let image = format!(
        "{}/{}/res:v1",
        bed.registry_tls,
        support::unique_ns("push-tls")
    );
    let d = dir.to_str().unwrap();
    let (code, _, err) = run(bed, &["push", d, "--image", &image], &[]);
    assert_eq!(code, 1, "an unknown CA is refused: {err}");
    assert!(err.contains(&bed.registry_tls), "{err}");
    let ca = bed.registry_ca.to_str().unwrap();
    let out = ok(bed, &["push", d, "--image", &image, "--ca-file", ca]);
    assert!(out.starts_with(&format!("pushed {image}@")), "{out}");
    let insp = ok(bed, &["inspect", &image, "--ca-file", ca]);
    assert!(insp.contains(&digest_of(&out)), "{insp}");
}

#[test]
fn skopeo_and_umoci_read_back_exactly_the_pushed_files() {
    require("skopeo");
    require("umoci");
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    let files = corpus();
    write_tree(&dir, files.iter(), |_| SystemTime::now());
    std::fs::create_dir_all(dir.join("empty-folder")).unwrap();
    let image = format!(
        "{}/{}/res:v1",
        bed.registry,
        support::unique_ns("push-peers")
    );
    let digest = digest_of(&ok(
        bed,
        &["push", dir.to_str().unwrap(), "--image", &image],
    ));

    for arch in ["amd64", "arm64"] {
        let v: Value = serde_json::from_str(&tool(
            "skopeo",
            &[
                "--override-os",
                "linux",
                "--override-arch",
                arch,
                "inspect",
                "--tls-verify=false",
                &format!("docker://{image}"),
            ],
        ))
        .unwrap();
        assert_eq!(v["Digest"], json!(digest));
        assert_eq!(v["Architecture"], json!(arch));
        assert_eq!(v["Os"], json!("linux"));
    }
    let raw: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ],
    ))
    .unwrap();
    assert_eq!(
        raw["mediaType"],
        json!("application/vnd.oci.image.index.v1+json")
    );

    let layout = tmp.path().join("copied");
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(read_tree(&rootfs), files);
    assert!(rootfs.join("empty-folder").is_dir());
}

#[test]
fn push_to_an_oci_layout_keeps_other_tags_and_skopeo_reads_it() {
    require("skopeo");
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    write_tree(&dir, support::corpus_files("dashboards", "").iter(), |_| {
        SystemTime::now()
    });
    let layout = tmp.path().join("layout");
    let at = |tag: &str| format!("oci:{}:{tag}", layout.display());
    let d = dir.to_str().unwrap();
    let v1 = digest_of(&ok(bed, &["push", d, "--to", &at("v1")]));
    assert!(layout.join("oci-layout").is_file());
    let again = ok(bed, &["push", d, "--to", &at("v1")]);
    assert!(again.starts_with("up to date "), "{again}");

    // The same files give the same digest in a registry.
    let image = format!(
        "{}/{}/res:v1",
        bed.registry,
        support::unique_ns("push-layout")
    );
    assert_eq!(digest_of(&ok(bed, &["push", d, "--image", &image])), v1);

    std::fs::write(dir.join("more.json"), b"[]").unwrap();
    let v2 = digest_of(&ok(bed, &["push", d, "--to", &at("v2")]));
    assert_ne!(v1, v2);
    let (code, _, err) = run(bed, &["push", d, "--to", &at("v1")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&v1) && err.contains(&v2), "{err}");
    ok(bed, &["push", d, "--to", &at("v1"), "--force"]);

    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(tags, vec!["v2", "v1"]);

    let v: Value = serde_json::from_str(&tool("skopeo", &["inspect", &at("v2")])).unwrap();
    assert_eq!(v["Digest"], json!(v2));
    let tree = ok(bed, &["inspect", &at("v2"), "--tree"]);
    assert!(tree.contains(&format!("digest:      {v2}")), "{tree}");
    assert!(tree.contains("more.json"), "{tree}");
    assert!(tree.contains("Dashboard: 9"), "{tree}");
}

#[test]
fn symlinks_are_refused_and_hidden_or_excluded_paths_left_out() {
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    write_tree(
        &dir,
        support::corpus_files("datasources", "prod").iter(),
        |_| SystemTime::now(),
    );
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join(".git/config"), b"[core]").unwrap();
    std::fs::write(dir.join("prod/.draft.json"), b"{}").unwrap();
    std::fs::write(dir.join("prod/NOTES.md"), b"notes").unwrap();
    std::os::unix::fs::symlink("datasource_proxy.json", dir.join("prod/alias.json")).unwrap();
    let layout = tmp.path().join("layout");
    let d = dir.to_str().unwrap();

    let (code, out, err) = run(
        bed,
        &["push", d, "--to", &format!("oci:{}:v1", layout.display())],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("prod/alias.json") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(
        !layout.exists(),
        "nothing is written when the tree is refused"
    );

    let to = format!("oci:{}:v1", layout.display());
    ok(
        bed,
        &[
            "push",
            d,
            "--to",
            &to,
            "--exclude",
            "alias.json",
            "--exclude",
            "*.md",
        ],
    );
    let tree = ok(bed, &["inspect", &to, "--tree"]);
    assert!(tree.contains("datasource_proxy.json"), "{tree}");
    for absent in [".git", ".draft.json", "NOTES.md", "alias.json"] {
        assert!(
            !tree.contains(absent),
            "{absent} should be left out:\n{tree}"
        );
    }
    let to2 = format!("oci:{}:hidden", layout.display());
    ok(
        bed,
        &[
            "push",
            d,
            "--to",
            &to2,
            "--exclude",
            "alias.json",
            "--include-hidden",
        ],
    );
    let tree = ok(bed, &["inspect", &to2, "--tree"]);
    assert!(
        tree.contains(".draft.json") && tree.contains(".git/"),
        "{tree}"
    );
    assert!(tree.contains("NOTES.md"), "{tree}");
}

// Hostile artifacts, made by hand.

/// A raw tar entry, the name written as is (the tar crate's builder refuses `..` and `/`).
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

fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut t = entries.concat();
    t.extend_from_slice(&[0u8; 1024]);
    t
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Pushes a one-layer image whose layer is `blob` as given; returns `host/repo:tag`.
fn push_raw(bed: &Bed, name: &str, blob: Vec<u8>, diff_id: &str) -> String {
    let image = format!(
        "{}/{}/{name}:v1",
        bed.registry,
        support::unique_ns("hostile")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, auth) = bed.oci(Reg::Plain);
    let reference: Reference = image.parse().unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        config: OciDescriptor {
            media_type: CONFIG.into(),
            digest: sha(&config),
            size: config.len() as i64,
            ..Default::default()
        },
        layers: vec![OciDescriptor {
            media_type: LAYER_GZIP.into(),
            digest: sha(&blob),
            size: blob.len() as i64,
            ..Default::default()
        }],
        ..Default::default()
    };
    rt.block_on(client.push(
        &reference,
        &[ImageLayer::new(blob, LAYER_GZIP.into(), None)],
        Config::new(config, CONFIG.into(), None),
        &auth,
        Some(manifest),
    ))
    .expect("push the hostile image");
    image
}

fn push_tar(bed: &Bed, name: &str, tar: Vec<u8>) -> String {
    let diff_id = sha(&tar);
    push_raw(bed, name, gz(&tar), &diff_id)
}

/// Runs `inspect REF --tree` from inside fresh directories; asserts it fails and that nothing
/// was written (cwd, TMPDIR, and the places a traversal would reach). Returns stderr.
fn inspect_refused(bed: &Bed, reference: &str, env: &[(&str, &str)]) -> String {
    let base = tempfile::tempdir().unwrap();
    let cwd = base.path().join("a/b");
    let tmpdir = base.path().join("tmp");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&tmpdir).unwrap();
    let mut cmd = bed.cmd();
    cmd.args(["inspect", reference, "--tree"])
        .current_dir(&cwd)
        .env("TMPDIR", &tmpdir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let (o, e) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "inspect {reference} should fail:\n{o}\n{e}"
    );
    assert!(o.is_empty(), "no partial output: {o}");
    let listing = |p: &PathBuf| std::fs::read_dir(p).unwrap().count();
    assert_eq!(listing(&cwd), 0, "wrote into the working directory");
    assert_eq!(listing(&tmpdir), 0, "wrote into TMPDIR");
    let a = base.path().join("a");
    assert_eq!(listing(&a), 1, "wrote next to the working directory");
    assert_eq!(
        listing(&base.path().to_path_buf()),
        2,
        "wrote above the working directory"
    );
    e
}

#[test]
fn hostile_entries_are_refused_by_inspect() {
    let bed = bed();
    let ok_file = file("prod/ok.json", b"{}");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("traversal", file("../../x", b"x"), "goes up with `..`"),
        (
            "absolute",
            file("/etc/perses-oci-test-x", b"x"),
            "absolute path",
        ),
        (
            "symlink",
            entry(
                "prod/link.json",
                tar::EntryType::Symlink,
                "../../../etc/passwd",
                b"",
            ),
            "symbolic link",
        ),
        (
            "hardlink",
            entry("prod/hard.json", tar::EntryType::Link, "prod/ok.json", b""),
            "hard link",
        ),
        (
            "device",
            entry("prod/dev", tar::EntryType::Char, "", b""),
            "character device",
        ),
    ];
    for (name, bad, want) in cases {
        let image = push_tar(bed, name, tar_of(&[ok_file.clone(), bad]));
        let err = inspect_refused(bed, &image, &[]);
        assert!(err.contains(want), "{name}: {err}");
        assert!(err.contains(&image), "{name}: names the artifact: {err}");
    }
    assert!(!Path::new("/etc/perses-oci-test-x").exists());
}

#[test]
fn a_gzip_bomb_stops_at_the_size_cap() {
    let bed = bed();
    // 200 MiB of zeros in one file, as concatenated gzip members (readers must take them all):
    // the same 1 MiB member 200 times keeps the blob small and cheap to build.
    let size: u64 = 200 << 20;
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..4].copy_from_slice(b"bomb");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    let mut blob = gz(h.as_bytes());
    let mib = gz(&vec![0u8; 1 << 20]);
    for _ in 0..200 {
        blob.extend_from_slice(&mib);
    }
    blob.extend_from_slice(&gz(&[0u8; 1024]));
    assert!(blob.len() < 1 << 20, "compressed: {} bytes", blob.len());
    // The diff_id is never reached: reading stops first.
    let image = push_raw(bed, "bomb", blob, &sha(b"unreached"));
    let err = inspect_refused(bed, &image, &[("PERSES_OCI_MAX_ARTIFACT_BYTES", "16M")]);
    assert!(err.contains("more than 16777216 bytes"), "{err}");
    assert!(
        err.contains("PERSES_OCI_MAX_ARTIFACT_BYTES"),
        "says how to raise it: {err}"
    );
    // The flag says the same.
    let (code, _, err) = run(bed, &["inspect", &image, "--max-size", "8M"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("more than 8388608 bytes"), "{err}");
}

#[test]
fn a_truncated_layer_in_a_registry_is_refused() {
    let bed = bed();
    let mut big = Vec::new();
    for i in 0..2000 {
        big.extend_from_slice(
            format!("{{\"n\": {i}, \"pad\": \"{}\"}}\n", "x".repeat(i % 97)).as_bytes(),
        );
    }
    let tar = tar_of(&[file("prod/big.json", &big)]);
    let whole = gz(&tar);
    // The registry checks a blob against its digest, so the cut blob is pushed under its own.
    let cut = whole[..whole.len() / 2].to_vec();
    let image = push_raw(bed, "truncated", cut, &sha(&tar));
    let err = inspect_refused(bed, &image, &[]);
    assert!(err.contains("corrupt or truncated"), "{err}");
}

#[test]
fn a_wrong_or_truncated_blob_in_a_layout_is_refused() {
    // A registry refuses a blob that does not match its digest (checked here), so the
    // mismatch is shown through an OCI layout on disk.
    let bed = bed();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, auth) = bed.oci(Reg::Plain);
    let r: Reference = format!(
        "{}/{}/x:v1",
        bed.registry,
        support::unique_ns("wrong-digest")
    )
    .parse()
    .unwrap();
    rt.block_on(client.store_auth_if_needed(bed.registry.as_str(), &auth));
    let refused = rt.block_on(client.push_blob(&r, b"these bytes".to_vec(), &sha(b"other bytes")));
    assert!(
        refused.is_err(),
        "the registry took a blob under a wrong digest"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("res");
    write_tree(&dir, support::corpus_files("dashboards", "").iter(), |_| {
        SystemTime::now()
    });
    let layout = tmp.path().join("layout");
    let at = format!("oci:{}:v1", layout.display());
    ok(bed, &["push", dir.to_str().unwrap(), "--to", &at]);
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let top: Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let m: Value = serde_json::from_slice(
        &std::fs::read(blob(top["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layer = blob(m["layers"][0]["digest"].as_str().unwrap());
    let good = std::fs::read(&layer).unwrap();

    // Other content of the same length under the layer's name.
    let other = gz(&tar_of(&[file("evil.json", &vec![b' '; good.len()])]));
    let mut swapped = other.clone();
    swapped.resize(good.len(), 0);
    std::fs::write(&layer, &swapped).unwrap();
    let err = inspect_refused(bed, &at, &[]);
    assert!(err.contains("does not match its content"), "{err}");

    std::fs::write(&layer, &good[..good.len() - 10]).unwrap();
    let err = inspect_refused(bed, &at, &[]);
    assert!(err.contains("descriptor says"), "{err}");

    std::fs::write(&layer, &good).unwrap();
    ok(bed, &["inspect", &at]);
}

#[test]
fn lint_gates_the_push() {
    let bed = bed();
    let tmp = tempfile::tempdir().unwrap();
    // Per-environment folders are linted one by one: the same resources in prod/ and staging/
    // are no duplicates.
    let mut good = support::corpus_files("dev-data", "prod");
    good.extend(support::corpus_files("dev-data", "staging"));
    good.remove("prod/ephemeraldashboard.json");
    good.remove("staging/ephemeraldashboard.json");
    let dir = tmp.path().join("good");
    write_tree(&dir, good.iter(), |_| SystemTime::now());
    let image = format!("{}/lint-gate-{}/res:v1", bed.registry, std::process::id());
    let linted = |args: &[&str]| {
        let out = bed.cmd().args(args).output().unwrap();
        let (o, e) = text(&out);
        (out.status.code().unwrap_or(-1), o, e)
    };
    let (code, out, err) = linted(&["push", dir.to_str().unwrap(), "--image", &image]);
    assert_eq!(code, 0, "{out}\n{err}");
    // An EphemeralDashboard (not provisionable) in staging/ stops the push, naming the file.
    let mut bad = good.clone();
    bad.extend(
        support::corpus_files("dev-data", "staging")
            .into_iter()
            .filter(|(k, _)| k.ends_with("ephemeraldashboard.json")),
    );
    let dir = tmp.path().join("bad");
    write_tree(&dir, bad.iter(), |_| SystemTime::now());
    let image2 = format!("{}/lint-gate-{}/res:v2", bed.registry, std::process::id());
    let (code, out, err) = linted(&["push", dir.to_str().unwrap(), "--image", &image2]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("staging/")
            && err.contains("ephemeraldashboard.json")
            && err.contains("EphemeralDashboard"),
        "{err}"
    );
    assert!(err.contains("nothing was pushed"), "{err}");
    let (code, _, _) = run(bed, &["inspect", &image2], &[]);
    assert_eq!(code, 1, "nothing was pushed");
}
