# The images the bed makes itself (sourced by scripts/testbed): the pod sandbox ("pause"),
# busybox, the Perses server, and perses-oci. Each is an OCI image layout built with umoci from a
# root filesystem put together here; `up` pushes them to the bed's plain registry, so no pod ever
# pulls from outside the machine.

IMAGES_VERSION=1  # bump when an image's content changes in a way the inputs' hash cannot see

# A one-image OCI layout from a root filesystem: umoci init/new/unpack, FILL fills BUNDLE/rootfs,
# then repack and set the config. The layout is written to OUT.tmp and moved to OUT when whole.
umoci_image() { # OUT TAG FILL CONFIG_ARGS...
  local out=$1 tag=$2 fill=$3; shift 3
  local tmp="$out.tmp.$$" work
  work=$(mktemp -d)
  rm -rf "$tmp"
  umoci init --layout "$tmp" >/dev/null
  umoci new --image "$tmp:$tag" >/dev/null
  umoci unpack --image "$tmp:$tag" "$work/bundle" >/dev/null
  "$fill" "$work/bundle/rootfs"
  umoci repack --image "$tmp:$tag" --history.created_by "perses-oci test bed ($fill)" "$work/bundle" >/dev/null
  umoci config --image "$tmp:$tag" --history.created_by "perses-oci test bed" "$@" >/dev/null
  umoci gc --layout "$tmp"
  rm -rf "$work" "$out"
  mv "$tmp" "$out"
}

fill_pause() { # ROOTFS
  gcc -static -Os -s -o "$1/pause" "$here/testbed/images/pause.c"
}

fill_busybox() { # ROOTFS
  mkdir -p "$1/bin" "$1/tmp" "$1/etc"
  chmod 1777 "$1/tmp"
  cp /bin/busybox "$1/bin/busybox"
  local applet
  for applet in $("$1/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$1/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$1/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$1/etc/group"
}

# As the upstream image (Dockerfile of perses/perses): /bin/perses and /bin/percli, plugin
# archives in /etc/perses/plugins-archive (unpacked by Perses at start into /etc/perses/plugins,
# which the chart mounts as an emptyDir), /perses for the file database, user 65532 (nonroot).
fill_perses() { # ROOTFS
  local r=$1
  mkdir -p "$r/bin" "$r/etc/perses/plugins-archive" "$r/etc/perses/plugins" "$r/perses" "$r/tmp"
  chmod 1777 "$r/tmp"
  cp "$(perses_bin perses)" "$r/bin/perses"
  cp "$(perses_bin percli)" "$r/bin/percli"
  python3 "$here/testbed/images/perses-stubs.py" "$here/testbed/images/perses-stub-plugins.txt" \
    "$r/etc/perses/plugins-archive/perses-oci-stubs.tar.gz"
  printf 'database:\n  file:\n    folder: /perses\n    extension: json\nprovisioning:\n  folders:\n    - /etc/perses/provisioning\n' > "$r/etc/perses/config.yaml"
  chown 65532:65532 "$r/perses" "$r/etc/perses/plugins"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$r/etc/group"
}

images_dir() {
  local sum
  sum=$(cat "$here/testbed/images.sh" "$here/testbed/images/"* | sha256sum | cut -c1-12)
  printf '%s/testbed/images-%s-%s-%s' "$cache_root" "$IMAGES_VERSION" "$PERSES_VERSION" "$sum"
}

build_images() {
  local d; d=$(images_dir)
  mkdir -p "$d"
  [ -d "$d/pause" ] || umoci_image "$d/pause" 3.10 fill_pause --config.entrypoint /pause
  [ -d "$d/busybox" ] || umoci_image "$d/busybox" 1 fill_busybox --config.cmd sh \
    --config.env PATH=/bin
  [ -d "$d/perses" ] || umoci_image "$d/perses" "$PERSES_VERSION" fill_perses \
    --config.entrypoint /bin/perses --config.cmd=--config=/etc/perses/config.yaml \
    --config.cmd=--log.level=error --config.user 65532:65532 --config.workingdir /perses \
    --config.exposedports 8080/tcp
  log "images: $d (pause, busybox, perses)"
}

# The images `up` pushes: LAYOUT:TAG -> REPO:TAG on the plain registry.
push_images() { # DIR
  local dir=$1 d reg
  d=$(images_dir)
  reg="127.0.0.1:$(cat "$dir/registries/plain/port")"
  local pair
  for pair in pause:3.10 busybox:1 "perses:$PERSES_VERSION"; do
    skopeo copy -q --dest-tls-verify=false "oci:$d/${pair%%:*}:${pair##*:}" "docker://$reg/$pair" ||
      return 1
  done
}

# perses-oci as an image: the binary and the shared libraries it links (as ldd lists them), CA
# certificates, a nonroot user. Built from the binary a test names (the release build).
fill_perses_oci() { # ROOTFS (binary in PERSES_OCI_IMAGE_BIN)
  local r=$1 bin=$PERSES_OCI_IMAGE_BIN lib
  mkdir -p "$r/usr/local/bin" "$r/tmp" "$r/etc/ssl/certs" "$r/home/nonroot"
  chmod 1777 "$r/tmp"
  cp "$bin" "$r/usr/local/bin/perses-oci"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
  [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
  chown 65532:65532 "$r/home/nonroot"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$r/etc/group"
}

cmd_image() { # perses-oci BINARY REF
  [ "${1:-}" = perses-oci ] && [ $# -eq 3 ] || die "usage: scripts/testbed image perses-oci BINARY REGISTRY/REPO:TAG"
  local bin=$2 ref=$3 work
  [ -x "$bin" ] || die "$bin: not an executable"
  work=$(mktemp -d)
  PERSES_OCI_IMAGE_BIN=$bin umoci_image "$work/layout" latest fill_perses_oci \
    --config.entrypoint /usr/local/bin/perses-oci --config.user 65532:65532 \
    --config.env HOME=/home/nonroot --config.workingdir /home/nonroot
  skopeo copy -q --dest-tls-verify=false "oci:$work/layout:latest" "docker://$ref" || { rm -rf "$work"; die "push of $ref failed"; }
  rm -rf "$work"
  log "pushed $ref"
}
