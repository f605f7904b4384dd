#!/usr/bin/env bash
# Install the Debian packages the test bed's real node needs, if any is missing.
#
#   cluster/node-packages.sh        (as root; CI runs as root)
#
# containerd, runc and the CNI plugins run the Pods; conntrack and iptables serve
# kube-proxy, ipset and iptables kube-router (NetworkPolicies); docker-registry is the
# local OCI registry; debootstrap, umoci and skopeo build and push the kernel images without a Docker engine; buildah builds the
# service image from the Dockerfile (`make image`).
set -euo pipefail
# chromium and a font run the web console's browser tests (tests/integration/browser).
packages=(containerd runc containernetworking-plugins conntrack iptables ipset docker-registry debootstrap umoci skopeo buildah chromium fonts-liberation)

log() { printf '[node-packages %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  log "missing: ${missing[*]}; install them as root (apt-get install ${missing[*]}), or run without the real node: KUBERNEL_REAL_NODE=0"
  exit 1
fi
# The packages' services (containerd, docker-registry) must not start: the test bed
# runs its own, with its own configuration. A policy-rc.d of our own, removed after.
policy=/usr/sbin/policy-rc.d ours=""
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && ours=1
fi
trap '[[ -n $ours ]] && rm -f "$policy"' EXIT
log "1/2 apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -qq
log "2/2 apt-get install ${missing[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "installed ${#missing[@]} packages"
