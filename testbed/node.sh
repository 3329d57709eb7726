# A real node for a bed cluster (sourced by scripts/testbed): containerd 2.2 + kubelet, with
# kube-controller-manager and kube-scheduler, all state under BED/nodes/CLUSTER.
#
# What keeps the host as it was (docs/testbed.md says why each is needed):
# - containerd runs in a mount and a network namespace of its own (testbed/node-ns.sh) and the
#   kubelet joins them: every mount (overlay snapshots, image volumes, pod volumes) stays there;
#   /run is a tmpfs there and /etc, /opt, /var are overlays whose writes land in the node dir;
#   the six kernel tunables the kubelet would set are files bind-mounted over /proc/sys there.
# - the pods' bridge, veths, addresses and routes are in the node's network namespace; what
#   must cross (node -> API server and registries, API server -> kubelet, pods -> the
#   `kubernetes` Service) is forwarded between loopback addresses by testbed/netbridge.py.
# - the kubelet makes no iptables chains (makeIPTablesUtilChains: false).
# - pods live in the cgroup folder /perses-oci-BEDID-CLUSTER of each hierarchy (cgroupRoot),
#   which `down` empties and removes.

NODE_KUBE_BINS=(kubelet kube-controller-manager kube-scheduler)
# The controllers pods, StatefulSets, Deployments, Jobs, CronJobs and service accounts need;
# node-lifecycle takes the not-ready taint off the node (nothing schedules without it).
NODE_CONTROLLERS=statefulset-controller,deployment-controller,replicaset-controller,job-controller,cronjob-controller,ttl-after-finished-controller,garbage-collector-controller,pod-garbage-collector-controller,node-lifecycle-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller,disruption-controller
# The kernel tunables kubelet's container manager checks (setupKernelTunables), with the values
# it wants: faked inside the node's mount namespace, so it never writes the host's.
# The `kubernetes` Service's cluster IP (first of --service-cluster-ip-range): inside a node's
# network namespace it is a local address that testbed/netbridge.py forwards to the API server,
# so pods get in-cluster config as on any cluster (the API server's certificate names it).
NODE_SERVICE_IP=10.0.0.1
NODE_SYSCTLS="vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000"

containerd_dir() { module_cache containerd "$CONTAINERD_VERSION"; }
cni_dir() { module_cache cni "$CNI_VERSION"; }

bed_id() { # DIR: six hex digits naming this bed's host-side objects (bridge, cgroup folder)
  printf '%s' "$1" | sha256sum | cut -c1-6
}
node_cgroup() { printf 'perses-oci-%s-%s' "$(bed_id "$1")" "$2"; } # DIR CLUSTER

# Every cgroup hierarchy mounted on this host: v1 controllers (and named ones) or the v2 root.
cgroup_hierarchies() {
  awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts
}

make_cgroup_root() { # NAME
  local h
  for h in $(cgroup_hierarchies); do
    mkdir -p "$h/$1"
    # A new v1 cpuset folder has no CPUs and no memory nodes: nothing could join it.
    if [ -f "$h/cpuset.cpus" ] && [ -f "$h/$1/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" > "$h/$1/cpuset.cpus"
      cat "$h/cpuset.mems" > "$h/$1/cpuset.mems"
    fi
    if [ -f "$h/cgroup.subtree_control" ] && [ -f "$h/$1/cgroup.subtree_control" ]; then
      local c
      for c in $(cat "$h/cgroup.controllers"); do
        echo "+$c" > "$h/$1/cgroup.subtree_control" 2>/dev/null || true
      done
    fi
  done
}

# Kills every process left in the folder and removes it, deepest first.
remove_cgroup_root() { # NAME
  local h pid round
  for round in 1 2 3 4 5 6 7 8 9 10; do
    local left=0
    for h in $(cgroup_hierarchies); do
      [ -d "$h/$1" ] || continue
      for pid in $(find "$h/$1" -name cgroup.procs -exec cat {} + 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null && left=1
      done
    done
    [ $left -eq 0 ] && break
    sleep 0.2
  done
  for h in $(cgroup_hierarchies); do
    [ -d "$h/$1" ] || continue
    for round in 1 2 3 4 5 6 7 8 9 10; do
      find "$h/$1" -depth -type d -exec rmdir {} \; 2>/dev/null
      [ -d "$h/$1" ] || break
      sleep 0.2
    done
    [ -d "$h/$1" ] && log "warning: could not remove $h/$1"
  done
  return 0
}

write_node_config() { # DIR CLUSTER INDEX
  local dir=$1 name=$2 idx=$3
  local n="$dir/nodes/$name" reg
  mkdir -p "$n/containerd/certs.d" "$n/cni/net.d" "$n/cni/ipam" "$n/kubelet/root" \
    "$n/kubelet/pod-logs" "$n/kubelet/pki" "$n/sysctl"
  local kv
  for kv in $NODE_SYSCTLS; do echo "${kv#*=}" > "$n/sysctl/$(echo "${kv%%=*}" | tr / .)"; done
  # Registries the node pulls from: the plain and basic-auth ones over HTTP, the TLS one with the
  # bed's registry CA (credentials come from the pod's imagePullSecrets, as on any cluster).
  for reg in plain auth tls; do
    local host scheme=http ca=""
    host="127.0.0.1:$(cat "$dir/registries/$reg/port")"
    if [ "$reg" = tls ]; then scheme=https; ca="  ca = \"$dir/pki/registry-ca.pem\""; fi
    mkdir -p "$n/containerd/certs.d/$host"
    printf 'server = "%s://%s"\n\n[host."%s://%s"]\n  capabilities = ["pull", "resolve"]\n%s\n' \
      "$scheme" "$host" "$scheme" "$host" "$ca" > "$n/containerd/certs.d/$host/hosts.toml"
  done
  local plain="127.0.0.1:$(cat "$dir/registries/plain/port")"
  cat > "$n/containerd/config.toml" <<EOF
version = 3
root = '$n/containerd/root'
state = '$n/containerd/state'
disabled_plugins = ['io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.blockfile', 'io.containerd.nri.v1.nri']

[grpc]
  address = '$n/containerd/containerd.sock'

[ttrpc]
  address = '$n/containerd/containerd.sock.ttrpc'

[debug]
  level = 'warn'

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = '$n/containerd/opt'
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$plain/pause:3.10'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '$n/containerd/certs.d'
  [plugins.'io.containerd.transfer.v1.local']
    config_path = '$n/containerd/certs.d'
  [plugins.'io.containerd.cri.v1.runtime']
    enable_cdi = false
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$(command -v runc)'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$(cni_dir)']
      conf_dir = '$n/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
EOF
  # The pods' bridge is inside the node's network namespace (testbed/node-ns.sh made it, with
  # the node's address): the host sees no bridge, veth, address or route. No masquerading, and
  # no route out of the namespace: a pod reaches the node, other pods and what
  # testbed/netbridge.py forwards (the `kubernetes` Service), nothing else.
  cat > "$n/cni/net.d/10-bed.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "perses-oci-$name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "perses0",
      "isDefaultGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$n/cni/ipam",
        "ranges": [[{"subnet": "10.88.$idx.0/24", "gateway": "10.88.$idx.1"}]]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
  local kport hport
  kport=$(free_port); hport=$(free_port)
  echo "$kport" > "$n/kubelet-port"
  cat > "$n/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$(node_cgroup "$dir" "$name")
failSwapOn: false
containerRuntimeEndpoint: unix://$n/containerd/containerd.sock
address: 127.0.0.1
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
# Only the API server (a client certificate of the bed's CA) may call the kubelet.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/pki/ca.pem}
authorization:
  mode: AlwaysAllow
podLogsDir: $n/kubelet/pod-logs
oomScoreAdj: 0
rotateCertificates: false
serverTLSBootstrap: false
clusterDomain: cluster.local
# No name server: nothing in a pod resolves a name outside the machine.
resolvConf: ""
serializeImagePulls: false
nodeStatusUpdateFrequency: 5s
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
makeIPTablesUtilChains: false
featureGates:
  ImageVolume: true
EOF
  local port; port=$(cat "$dir/clusters/$name/port")
  cat > "$n/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster: {server: "https://127.0.0.1:$port", certificate-authority: "$dir/pki/ca.pem"}
users:
- name: admin
  user: {token: "$(cat "$dir/pki/admin.token")"}
contexts:
- name: $name
  context: {cluster: $name, user: admin}
current-context: $name
EOF
  chmod 600 "$n/kubeconfig"
}

start_node() { # DIR CLUSTER INDEX
  local dir=$1 name=$2 idx=$3
  local n="$dir/nodes/$name" cbin kbin
  cbin=$(containerd_dir); kbin=$(kube_dir)
  write_node_config "$dir" "$name" "$idx"
  make_cgroup_root "$(node_cgroup "$dir" "$name")"
  spawn "$dir" "node-$name-containerd" unshare -m -n --propagation private \
    "$here/testbed/node-ns.sh" "$n" "$cbin" "10.88.$idx.1/24" "$NODE_SERVICE_IP"
  local deadline=$((SECONDS + 30)) pid
  until [ -S "$n/containerd/containerd.sock" ]; do
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$dir/logs/node-$name-containerd.log" >&2; return 1; }
    sleep 0.1
  done
  pid=$(cat "$dir/pids/node-$name-containerd")
  local api_port kport
  api_port=$(cat "$dir/clusters/$name/port"); kport=$(cat "$n/kubelet-port")
  local fwd=(--in "127.0.0.1:$api_port=127.0.0.1:$api_port" --in "$NODE_SERVICE_IP:443=127.0.0.1:$api_port"
    --out "127.0.0.1:$kport=127.0.0.1:$kport")
  for reg in plain auth tls; do
    local rp; rp=$(cat "$dir/registries/$reg/port")
    fwd+=(--in "127.0.0.1:$rp=127.0.0.1:$rp")
  done
  rm -f "$n/netbridge.ready"
  spawn "$dir" "node-$name-netbridge" python3 "$here/testbed/netbridge.py" "/proc/$pid/ns/net" \
    "$n/netbridge.ready" "${fwd[@]}"
  until [ -f "$n/netbridge.ready" ]; do
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$dir/logs/node-$name-netbridge.log" >&2; return 1; }
    sleep 0.1
  done
  spawn "$dir" "node-$name-kubelet" nsenter -t "$pid" -m -n -- \
    "$kbin/kubelet" --config="$n/kubelet/config.yaml" --kubeconfig="$n/kubeconfig" \
    --root-dir="$n/kubelet/root" --cert-dir="$n/kubelet/pki" --hostname-override=localhost \
    --node-ip="10.88.$idx.1" --v=1
  spawn "$dir" "node-$name-controller-manager" "$kbin/kube-controller-manager" \
    --kubeconfig="$n/kubeconfig" --secure-port=0 --leader-elect=false \
    --controllers="$NODE_CONTROLLERS" --use-service-account-credentials=false \
    --service-account-private-key-file="$dir/pki/sa.key" --root-ca-file="$dir/pki/ca.pem" \
    --concurrent-statefulset-syncs=10 --v=1
  spawn "$dir" "node-$name-scheduler" "$kbin/kube-scheduler" --kubeconfig="$n/kubeconfig" \
    --secure-port=0 --leader-elect=false --v=1
}

node_schedulable() { # DIR CLUSTER: the node is Ready and carries no taint
  local out
  out=$(api "$1" "$2" GET /api/v1/nodes/localhost 2>/dev/null) || return 1
  python3 -c '
import json, sys
n = json.loads(sys.argv[1])
ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
sys.exit(0 if ready and not n.get("spec", {}).get("taints") else 1)' "$out"
}

# Stops the nodes of a bed and undoes what they did on the host. Safe to run twice, and run
# where errexit is off (every step is tried whatever the one before did).
nodes_down() { # DIR
  local dir=$1 n name pid sid p
  [ -d "$dir/nodes" ] || return 0
  for n in "$dir"/nodes/*/; do
    name=$(basename "$n")
    for p in scheduler controller-manager kubelet; do
      if [ -f "$dir/pids/node-$name-$p" ]; then kill -TERM "$(cat "$dir/pids/node-$name-$p")" 2>/dev/null; fi
    done
  done
  for n in "$dir"/nodes/*/; do
    name=$(basename "$n")
    # Pods first (every process of a pod is in the node's cgroup folder), then containerd and
    # its shims, which stay in containerd's session.
    remove_cgroup_root "$(node_cgroup "$dir" "$name")"
    sid=""
    if [ -f "$dir/pids/node-$name-containerd" ]; then sid=$(cat "$dir/pids/node-$name-containerd"); fi
    if [ -n "$sid" ]; then
      kill -TERM "$sid" 2>/dev/null
      local deadline=$((SECONDS + 5))
      while kill -0 "$sid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
      for pid in $(ps -eo pid=,sid= | awk -v s="$sid" '$2 == s {print $1}'); do
        kill -KILL "$pid" 2>/dev/null
      done
    fi
  done
  for p in "$dir"/pids/node-*; do
    [ -f "$p" ] || continue
    kill -TERM "$(cat "$p")" 2>/dev/null
    kill -KILL "$(cat "$p")" 2>/dev/null
    rm -f "$p"
  done
  # Once every process is gone the namespaces and their mounts are gone; the cgroup folders are
  # removed again in case a process was still exiting the first time.
  for n in "$dir"/nodes/*/; do
    remove_cgroup_root "$(node_cgroup "$dir" "$(basename "$n")")"
  done
  return 0
}
