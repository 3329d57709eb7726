#!/usr/bin/env bash
# Runs as the first process of a bed node's own mount and network namespaces (`unshare -m -n
# --propagation private`, from testbed/node.sh), then becomes containerd; the kubelet joins both
# namespaces. Nothing mounted or configured here is seen by the host, and it all goes away with
# the last process in it.
#
#   node-ns.sh NODE_DIR CONTAINERD_BIN_DIR GATEWAY/PREFIX SERVICE_IP
set -euo pipefail
n=$1 bin=$2 gateway=$3 service_ip=$4
case $n in /etc/* | /opt/* | /var/* | /run/*) echo "node-ns: $n is under a folder this namespace overlays" >&2; exit 1 ;; esac
# The node's network: loopback (where testbed/netbridge.py listens for the API server and the
# registries), the `kubernetes` Service address, and the pods' bridge with the node's address.
ip link set lo up
ip addr add "$service_ip/32" dev lo
ip link add perses0 type bridge
ip addr add "$gateway" dev perses0
ip link set perses0 up
# containerd, its shims and runc keep sockets and state under /run: a tmpfs of our own.
mount -t tmpfs -o mode=0755,size=256m perses-oci-node-run /run
# Writes to /etc, /opt and /var (libcni's cache in /var/lib/cni, the kubelet's log links in
# /var/log/containers, ...) land in the node folder, never on the host.
for d in etc opt var; do
  mkdir -p "$n/ns/$d/upper" "$n/ns/$d/work"
  mount -t overlay "perses-oci-node-$d" \
    -o "lowerdir=/$d,upperdir=$n/ns/$d/upper,workdir=$n/ns/$d/work" "/$d"
done
# No name server: an image reference to a host outside the machine fails at once, without a
# single packet leaving (the namespace has no route out either).
printf '# the perses-oci test bed node resolves no names\n' > /etc/resolv.conf
# The kernel tunables the kubelet checks, already at the values it wants.
for f in "$n"/sysctl/*; do
  mount --bind "$f" "/proc/sys/$(basename "$f" | tr . /)"
done
export PATH="$bin:$PATH"
exec containerd --config "$n/containerd/config.toml"
