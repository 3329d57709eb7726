//! `scripts/testbed up` / `down` as people and benchmarks use them: a bed that kubectl can talk
//! to through the printed exports, whose nodes run a pod with an image volume, and that leaves
//! the host as it found it when it stops: no process, network interface, address, route, mount,
//! iptables rule, cgroup folder, sysctl change or file of a node's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

/// Processes in a cgroup whose path mentions `needle` (a node's pods: pause, busybox, ...).
fn processes_in_cgroups(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cg) = std::fs::read_to_string(e.path().join("cgroup"))
            && cg.contains(needle)
        {
            out.push(format!("{pid}: {}", cg.lines().next().unwrap_or("")));
        }
    }
    out
}

fn cmd_out(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_else(|e| format!("({program}: {e})"))
}

/// What a node could change on the host, by kind.
fn host_state() -> BTreeMap<&'static str, String> {
    let mut s = BTreeMap::new();
    let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    links.sort();
    s.insert("network interfaces", links.join("\n"));
    s.insert("addresses", cmd_out("ip", &["-o", "addr"]));
    s.insert(
        "routes",
        cmd_out("ip", &["route"]) + &cmd_out("ip", &["-6", "route"]),
    );
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    mounts.sort();
    s.insert("mounts", mounts.join("\n"));
    // Rules and chains, without the packet counters.
    let strip = |t: String| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.find(" [") {
                Some(i) if l.starts_with(':') => l[..i].to_string(),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    s.insert("iptables", strip(cmd_out("iptables-save", &[])));
    s.insert("ip6tables", strip(cmd_out("ip6tables-save", &[])));
    let sysctls = [
        "vm/overcommit_memory",
        "vm/panic_on_oom",
        "kernel/panic",
        "kernel/panic_on_oops",
        "kernel/keys/root_maxkeys",
        "kernel/keys/root_maxbytes",
        "net/ipv4/ip_forward",
        "net/ipv6/conf/all/forwarding",
    ];
    s.insert(
        "sysctls",
        sysctls
            .iter()
            .map(|k| {
                format!(
                    "{k}={}",
                    std::fs::read_to_string(Path::new("/proc/sys").join(k))
                        .unwrap_or_default()
                        .trim()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let mut cgroups = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        if let Ok(dirs) = std::fs::read_dir(h.path()) {
            for d in dirs.flatten() {
                if d.path().is_dir() {
                    cgroups.push(format!(
                        "{}/{}",
                        h.file_name().to_string_lossy(),
                        d.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    cgroups.sort();
    s.insert("cgroup folders", cgroups.join("\n"));
    let paths = [
        "/var/lib/cni",
        "/var/lib/kubelet",
        "/var/lib/containerd",
        "/var/log/containers",
        "/var/log/pods",
        "/run/containerd",
        "/run/netns",
        "/opt/containerd",
        "/opt/cni",
        "/etc/cni",
        "/etc/containerd",
        "/etc/kubernetes",
    ];
    s.insert(
        "paths",
        paths
            .iter()
            .filter(|p| Path::new(p).exists())
            .copied()
            .collect::<Vec<_>>()
            .join("\n"),
    );
    s
}

#[test]
fn up_runs_pods_on_its_nodes_and_down_leaves_the_host_as_it_was() {
    // Another bed's teardown (a test binary that just ended) must not count as ours.
    let deadline = Instant::now() + Duration::from_secs(60);
    while host_state()["cgroup folders"].contains("perses-oci-") {
        assert!(Instant::now() < deadline, "another bed's node is still up");
        std::thread::sleep(Duration::from_millis(500));
    }
    let before = host_state();
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
        "PERSES_OCI_TEST_KUBECTL=",
        "PERSES_OCI_TEST_NODES=prod,staging",
        "PERSES_OCI_TEST_BUSYBOX_IMAGE=127.0.0.1:",
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

    let sh = |script: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -e\n{exports}\n{script}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(sh("$PERSES_OCI_TEST_KUBECTL --context staging get ns").contains("kube-system"));
    // Each node is Ready, and runs a pod that mounts an image (the busybox image itself, with
    // subPath) and reaches the API server as in-cluster clients do.
    for ctx in ["prod", "staging"] {
        let nodes = sh(&format!(
            "$PERSES_OCI_TEST_KUBECTL --context {ctx} get nodes --no-headers"
        ));
        assert!(
            nodes.contains("localhost") && nodes.contains(" Ready "),
            "{nodes}"
        );
        let log = sh(&format!(
            r#"K="$PERSES_OCI_TEST_KUBECTL --context {ctx}"
$K create namespace t
until $K -n t get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
cat <<EOT | $K -n t apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {{name: probe}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: $PERSES_OCI_TEST_BUSYBOX_IMAGE
    command: ["sh", "-c", "ls /mnt; touch /mnt/x 2>&1; echo | nc -w 3 \$KUBERNETES_SERVICE_HOST \$KUBERNETES_SERVICE_PORT && echo api-reachable"]
    volumeMounts: [{{name: img, mountPath: /mnt, subPath: bin}}]
  volumes:
  - name: img
    image: {{reference: "$PERSES_OCI_TEST_BUSYBOX_IMAGE", pullPolicy: IfNotPresent}}
EOT
$K -n t wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/probe --timeout=120s >/dev/null
$K -n t logs probe"#
        ));
        assert!(
            log.contains("busybox") && log.contains("sleep"),
            "{ctx}: {log}"
        );
        assert!(log.contains("Read-only file system"), "{ctx}: {log}");
        assert!(log.contains("api-reachable"), "{ctx}: {log}");
    }
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
    let in_cgroups = processes_in_cgroups("perses-oci-");
    assert!(in_cgroups.is_empty(), "pod processes left: {in_cgroups:#?}");
    let after = host_state();
    for (what, was) in &before {
        assert_eq!(&after[what], was, "{what} changed on the host");
    }
}
