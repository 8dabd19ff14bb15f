#!/usr/bin/env bash
# Installs what the e2e suite (test/e2e) runs against: docker-registry (distribution 2.8), skopeo,
# containerd + ctr, the Docker Engine (dockerd 20.10, its CLI at /usr/bin/docker), podman, htpasswd,
# openssl, curl and jq (the CI recipes' daemon.json merge), a one-node Ceph cluster with its RADOS
# Gateway (the S3 server the S3 store is tested against), dnsmasq (the DNS server the cluster
# membership is tested against), and Chromium (the browser the status page is tested in, driven by
# playwright-core), from Debian's own archive. Idempotent:
# when every binary is already there it touches nothing. Meant for CI, as root (sudo when not root).
set -euo pipefail

# /usr/bin/docker, not `docker`: another docker CLI may come first on PATH (the tests use this one).
# monmaptool, radosgw-admin and ceph come with the three Ceph packages' dependencies.
binaries=(docker-registry skopeo containerd ctr dockerd /usr/bin/docker podman htpasswd openssl curl jq
  radosgw ceph-mon ceph-osd monmaptool radosgw-admin ceph dnsmasq chromium)
packages=(docker-registry skopeo containerd docker.io podman apache2-utils openssl curl jq
  radosgw ceph-mon ceph-osd dnsmasq-base chromium)

missing=()
for bin in "${binaries[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "e2e dependencies already present: ${binaries[*]}"
  exit 0
fi
echo "missing: ${missing[*]}; installing ${packages[*]}"

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
# Recommends add nothing the suite uses. Where systemd runs, the packages also start system
# services (containerd, docker-registry on :5000, dockerd); the suite ignores them and starts its own.
# The Ceph daemons start nothing without a cluster configured in /etc/ceph.
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"

for bin in "${binaries[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || { echo "still missing after install: $bin" >&2; exit 1; }
done
echo "e2e dependencies installed"
