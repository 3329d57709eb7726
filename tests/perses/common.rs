//! What the tests that run the real Perses v0.54.0 server share (`tests/perses_judge.rs`,
//! `tests/perses_mutations.rs`): the test bed's binaries, the corpus, file trees, and a Perses
//! server started on provisioning folders, with what it serves once provisioning is over.
//!
//! Provisioning is over when a sentinel GlobalSecret, in a provisioning folder listed last, is
//! served: Perses applies entities in order (Projects first), one after the other.

#![allow(dead_code)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Name of the GlobalSecret that marks the end of provisioning.
pub const SENTINEL: &str = "perses-oci-judge-sentinel";

/// Kinds served by the API without authentication: (kind, path segment).
pub const API_KINDS: [(&str, &str); 10] = [
    ("Project", "projects"),
    ("Dashboard", "dashboards"),
    ("Datasource", "datasources"),
    ("Folder", "folders"),
    ("GlobalDatasource", "globaldatasources"),
    ("GlobalSecret", "globalsecrets"),
    ("GlobalVariable", "globalvariables"),
    ("Secret", "secrets"),
    ("User", "users"),
    ("Variable", "variables"),
];
/// Kinds read from the file database: (kind, folder).
pub const DB_KINDS: [(&str, &str); 4] = [
    ("GlobalRole", "globalroles"),
    ("GlobalRoleBinding", "globalrolebindings"),
    ("Role", "roles"),
    ("RoleBinding", "rolebindings"),
];
pub const PROJECT_SCOPED: [&str; 7] = [
    "Dashboard",
    "Datasource",
    "Folder",
    "Role",
    "RoleBinding",
    "Secret",
    "Variable",
];

// ---------------------------------------------------------------------------------------------
// Tools and paths.

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/perses")
}

pub const INSTALL_HINT: &str = "run scripts/testbed install (it builds Perses and percli v0.54.0 \
                            into its cache and installs umoci and skopeo)";

pub fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The Perses version the test bed builds (`PERSES_VERSION=` in scripts/testbed).
pub fn perses_version() -> String {
    let script = std::fs::read_to_string(repo().join("scripts/testbed")).unwrap();
    script
        .lines()
        .find_map(|l| l.strip_prefix("PERSES_VERSION="))
        .expect("PERSES_VERSION= in scripts/testbed")
        .trim()
        .to_string()
}

/// A binary of the test bed's Perses build: `$VAR` (set by `scripts/testbed up`), or the cache
/// path computed as scripts/testbed does (`perses_bin`): CACHE/testbed/perses-VERSION-HASH/NAME,
/// HASH = first 12 hex digits of sha256(go.mod + go.sum) of testbed/go/perses.
pub fn testbed_bin(name: &str, var: &str) -> PathBuf {
    let path = env_path(var).unwrap_or_else(|| {
        let cache = env_path("PERSES_OCI_CACHE_DIR").unwrap_or_else(|| {
            env_path("XDG_CACHE_HOME")
                .unwrap_or_else(|| env_path("HOME").expect("HOME is set").join(".cache"))
                .join("perses-oci")
        });
        let module = repo().join("testbed/go/perses");
        let mut bytes = std::fs::read(module.join("go.mod")).unwrap();
        bytes.extend(std::fs::read(module.join("go.sum")).unwrap());
        let sum = hex::encode(Sha256::digest(&bytes));
        cache
            .join("testbed")
            .join(format!("perses-{}-{}", perses_version(), &sum[..12]))
            .join(name)
    });
    assert!(
        path.is_file(),
        "{name} is not built ({} does not exist): {INSTALL_HINT}",
        path.display()
    );
    path
}

pub fn require_on_path(tool: &str) {
    let found = Command::new("which")
        .arg(tool)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{tool} is not installed: {INSTALL_HINT}");
}

pub struct Tools {
    pub perses: PathBuf,
    pub percli: PathBuf,
    pub perses_oci: PathBuf,
}

/// The Perses and percli builds of the test bed, and this crate's binary.
pub fn tools() -> Tools {
    Tools {
        perses: testbed_bin("perses", "PERSES_OCI_TEST_PERSES"),
        percli: testbed_bin("percli", "PERSES_OCI_TEST_PERCLI"),
        perses_oci: assert_cmd::cargo::cargo_bin("perses-oci"),
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

pub fn read_files(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if p.is_dir() {
            read_files(&p, &rel, out);
        } else {
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
}

pub fn folder(sub: &str) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    read_files(&corpus().join(sub), "", &mut v);
    v
}

pub fn write_files(root: &Path, files: &[(String, Vec<u8>)]) {
    for (rel, bytes) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Every object of every corpus file, for the stub plugin scan.
pub fn corpus_objects() -> Vec<Value> {
    let mut out = Vec::new();
    for (path, bytes) in folder("") {
        if !path.ends_with(".json") {
            continue;
        }
        match serde_json::from_slice::<Value>(&bytes).unwrap() {
            Value::Array(items) => out.extend(items),
            v => out.push(v),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The Perses server.

/// GET over plain HTTP/1.0 (no chunking, the server closes): (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

pub fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

pub struct Perses {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub db: PathBuf,
}

impl Drop for Perses {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Perses {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts Perses on the provisioning `folders` (in that order) and returns once
    /// provisioning is over; panics if it does not get there within `timeout`.
    pub fn start(
        bin: &Path,
        work: &Path,
        folders: &[PathBuf],
        plugins: &Path,
        timeout: Duration,
    ) -> Perses {
        Perses::try_start(bin, work, folders, plugins, timeout).unwrap_or_else(|(status, log)| {
            panic!("Perses exited ({status}) before provisioning was over:\n{log}")
        })
    }

    /// Like `start`, but a Perses that exits before provisioning is over is an `Err` with its
    /// exit status and log.
    pub fn try_start(
        bin: &Path,
        work: &Path,
        folders: &[PathBuf],
        plugins: &Path,
        timeout: Duration,
    ) -> Result<Perses, (ExitStatus, String)> {
        let sentinel = work.join("sentinel");
        std::fs::create_dir_all(&sentinel).unwrap();
        std::fs::write(
            sentinel.join("sentinel.json"),
            format!(
                r#"{{"kind": "GlobalSecret", "metadata": {{"name": "{SENTINEL}"}}, "spec": {{}}}}"#
            ),
        )
        .unwrap();
        // Must exist: when unzipping the archives fails, Perses loads no plugin at all
        // (internal/api/core/core.go).
        let archives = work.join("plugin-archives");
        std::fs::create_dir_all(&archives).unwrap();
        let db = work.join("db");
        let q = |p: &Path| serde_json::to_string(p.to_str().unwrap()).unwrap();
        let listed: Vec<String> = folders.iter().map(|f| q(f)).chain([q(&sentinel)]).collect();
        let config = work.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "database:\n  file:\n    folder: {}\n    extension: json\n\
                 provisioning:\n  folders: [{}]\n  interval: 1h\n\
                 plugin:\n  path: {}\n  archive_paths: [{}]\n",
                q(&db),
                listed.join(", "),
                q(plugins),
                q(&archives),
            ),
        )
        .unwrap();
        let log = work.join("perses.log");
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new(bin)
                .arg("--config")
                .arg(&config)
                .arg("--web.listen-address")
                .arg(format!("127.0.0.1:{port}"))
                .current_dir(work)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut perses = Perses {
                child,
                port,
                log: log.clone(),
                db: db.clone(),
            };
            let deadline = Instant::now() + timeout;
            loop {
                if let Ok((200, _)) = http_get(port, &format!("/api/v1/globalsecrets/{SENTINEL}")) {
                    return Ok(perses);
                }
                if let Some(status) = perses.child.try_wait().unwrap() {
                    let log = perses.log_text();
                    if log.contains("address already in use") {
                        break;
                    }
                    return Err((status, log));
                }
                assert!(
                    Instant::now() < deadline,
                    "Perses did not finish provisioning in {timeout:?}:\n{}",
                    perses.log_text()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("Perses could not get a free port three times")
    }

    /// Everything Perses serves, by (kind, project, name) as stored, with the object; panics
    /// if a listed resource is not served by its own URL.
    pub fn served(&self) -> BTreeMap<Key, Value> {
        let (served, unreachable) = self.served_lenient();
        assert!(unreachable.is_empty(), "{}", unreachable.join("\n"));
        served
    }

    /// Everything Perses serves, and the listed resources that its own URL does not serve
    /// (`GET URL: status body`), such as those a path-like name stored in the wrong place.
    pub fn served_lenient(&self) -> (BTreeMap<Key, Value>, Vec<String>) {
        let mut unreachable = Vec::new();
        let mut out = BTreeMap::new();
        for (kind, plural) in API_KINDS {
            let list = get_json(self.port, &format!("/api/v1/{plural}"));
            for obj in list.as_array().unwrap() {
                assert_eq!(obj["kind"], kind, "{obj}");
                let key = key_of(obj);
                // Each listed resource is also served by its own URL. A project-scoped resource
                // stored with an empty project answers at `/api/v1/projects//KIND/NAME`.
                let url = match (&key.1, PROJECT_SCOPED.contains(&kind)) {
                    (Some(p), _) => format!("/api/v1/projects/{p}/{plural}/{}", key.2),
                    (None, true) => format!("/api/v1/projects//{plural}/{}", key.2),
                    (None, false) => format!("/api/v1/{plural}/{}", key.2),
                };
                let (status, body) = http_get(self.port, &url).unwrap();
                if status != 200 {
                    unreachable.push(format!("GET {url}: {status} {body}"));
                }
                out.insert(key, obj.clone());
            }
        }
        for (kind, folder) in DB_KINDS {
            let mut files = Vec::new();
            if self.db.join(folder).is_dir() {
                read_files(&self.db.join(folder), "", &mut files);
            }
            for (_, bytes) in files {
                let obj: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(obj["kind"], kind, "{obj}");
                out.insert(key_of(&obj), obj);
            }
        }
        out.remove(&("GlobalSecret".to_string(), None, SENTINEL.to_string()));
        (out, unreachable)
    }
}

/// The warnings and errors of a Perses log, without timestamps, the mounted folder shown as
/// `<prod>` and paths in it relative: what Perses says it refused.
pub fn refusals(log: &str, prod: &Path) -> String {
    let prod = prod.display().to_string();
    log.lines()
        .filter(|l| l.contains("level=warning") || l.contains("level=error"))
        .filter(|l| !l.contains("encryption_key"))
        .map(|l| {
            let l = l.replace(&format!("{prod}/"), "").replace(&prod, "<prod>");
            match l.find("level=") {
                Some(i) => l[i..].to_string(),
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// (kind, project (None when absent or empty), name).
pub type Key = (String, Option<String>, String);

pub fn key_of(obj: &Value) -> Key {
    let m = &obj["metadata"];
    (
        obj["kind"].as_str().unwrap_or_default().to_string(),
        m["project"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        m["name"].as_str().unwrap_or_default().to_string(),
    )
}

pub fn show(key: &Key) -> String {
    match &key.1 {
        Some(p) => format!("{} {p}/{}", key.0, key.2),
        None => format!("{} {}", key.0, key.2),
    }
}

/// What Perses stores a key as (names and projects lowercased).
pub fn flatten(key: &Key) -> Key {
    (
        key.0.clone(),
        key.1.as_ref().map(|p| p.to_lowercase()),
        key.2.to_lowercase(),
    )
}

/// Checks that the part of `doc` (relative to the repository) between `begin` and `end` is
/// `generated`; rewrites it when `$bless_var` is set, fails otherwise (a copy of the new version
/// is left in the target's temp folder, named `copy_name`).
pub fn check_generated(doc: &str, begin: &str, end: &str, generated: &str, bless_var: &str) {
    let doc_path = repo().join(doc);
    let text = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let current = text
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(mid, _)| mid.trim().to_string());
    if current.as_deref() == Some(generated.trim()) {
        return;
    }
    let name = Path::new(doc).file_stem().unwrap().to_string_lossy();
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.{bless_var}.md"));
    std::fs::write(&copy, generated).unwrap();
    if std::env::var_os(bless_var).is_none() {
        panic!(
            "{doc} is out of date with what the test found (new version in {}); rerun with \
             {bless_var}=1 to rewrite its generated part",
            copy.display()
        );
    }
    let (head, tail) = match text.split_once(begin) {
        Some((h, rest)) => (
            h.to_string(),
            rest.split_once(end)
                .map(|(_, t)| t.to_string())
                .unwrap_or_default(),
        ),
        None => (text.clone(), "\n".to_string()),
    };
    std::fs::write(
        &doc_path,
        format!("{head}{begin}\n\n{}\n{end}{tail}", generated.trim()),
    )
    .unwrap();
}
