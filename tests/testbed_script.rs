//! `scripts/testbed up` / `down` as people and benchmarks use them: a bed that kubectl can talk
//! to through the printed exports, and that leaves no process behind when it stops.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed")
}

/// Processes whose command line mentions `needle` (read from /proc, no ps needed).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(cmd);
            }
        }
    }
    out
}

#[test]
fn up_exports_work_with_kubectl_and_down_leaves_nothing() {
    let dir = tempfile::Builder::new()
        .prefix("perses-oci-script-bed-")
        .tempdir()
        .unwrap();
    let dir_s = dir.path().to_str().unwrap().to_string();
    let up = Command::new(script())
        .args(["up", "--dir", &dir_s])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let exports = String::from_utf8_lossy(&up.stdout).to_string();
    for var in [
        "KUBECONFIG=",
        "PERSES_OCI_TEST_REGISTRY=127.0.0.1:",
        "PERSES_OCI_TEST_REGISTRY_AUTH=127.0.0.1:",
        "PERSES_OCI_TEST_REGISTRY_TLS=127.0.0.1:",
        "PERSES_OCI_TEST_REGISTRY_CA=",
        "DOCKER_CONFIG=",
    ] {
        assert!(
            exports.contains(&format!("export {var}")),
            "{var} missing:\n{exports}"
        );
    }
    // A second `up` reuses the running bed and prints the same exports.
    let again = Command::new(script())
        .args(["up", "--dir", &dir_s])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout), exports);

    let kubectl = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let ns = match kubectl {
        Some(k) => Command::new("bash")
            .arg("-c")
            .arg(format!("{exports}\n{k} --context staging get ns"))
            .output()
            .unwrap(),
        // Without kubectl, the same request with curl and the kubeconfig's CA and token.
        None => Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{exports}\nport=$(cat {dir_s}/clusters/staging/port); curl -sf --cacert {dir_s}/pki/ca.pem -H \"Authorization: Bearer $(cat {dir_s}/pki/admin.token)\" https://127.0.0.1:$port/api/v1/namespaces"
            ))
            .output()
            .unwrap(),
    };
    assert!(
        ns.status.success(),
        "{}",
        String::from_utf8_lossy(&ns.stderr)
    );
    assert!(String::from_utf8_lossy(&ns.stdout).contains("kube-system"));
    assert!(
        processes_mentioning(&dir_s).len() >= 9,
        "expected 3 etcd, 3 apiservers, 3 registries"
    );

    let down = Command::new(script())
        .args(["down", "--dir", &dir_s])
        .output()
        .unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let left = processes_mentioning(&dir_s);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}
