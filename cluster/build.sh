#!/usr/bin/env bash
# Build (or reuse) the local control-plane binaries from their Go modules.
#
#   cluster/build.sh            build what is missing, print the bin directory
#
# Binaries go to ${KUBERNEL_CACHE:-~/.cache/kubernel}/<versions>/bin, outside the
# repository, and are never rebuilt once there. Go's build and module caches are
# kept too, so an interrupted build resumes where it stopped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${KUBERNEL_CACHE:-$HOME/.cache/kubernel}"
bin="$cache/k8s-$KUBERNETES_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION/bin"
mkdir -p "$bin"
export GOFLAGS="-trimpath" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# go build -v names each package as it compiles it; turn that into a counter so a
# 20-minute build shows how far it is without flooding the log.
progress() {
  local what="$1" total="$2" n=0
  while IFS= read -r line; do
    case "$line" in
      *" "*|"") printf '%s\n' "$line" >&2 ;;   # errors and notes pass through
      *) n=$((n + 1)); if (( n % 100 == 0 )); then log "$what: $n/~$total packages compiled"; fi ;;
    esac
  done
}

# The multi-call binary is rebuilt when its sources change (a component added).
sources_hash() { cat "$here/k8s/main.go" "$here/k8s/go.mod" "$here/k8s/go.sum" | sha256sum | cut -c1-16; }

build_k8s() {
  local out="$bin/kubernel-k8s" hash
  hash="$(sources_hash)"
  [[ -x "$out" && "$(cat "$out.sources" 2>/dev/null)" == "$hash" ]] && return
  local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version"
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w"
  for p in "$pkg" "$cpkg"; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  local total
  total="$(cd "$here/k8s" && go list -deps . 2>/dev/null | wc -l)"
  log "Kubernetes $KUBERNETES_VERSION (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl): compiling ~$total packages; the first build takes 15-30 min on 2 cores"
  (cd "$here/k8s" && go build -v -ldflags "$ld" -o "$out.tmp" . 2>&1) | progress kubernetes "$total"
  mv "$out.tmp" "$out"
  echo "$hash" >"$out.sources"
}

# CoreDNS with the few plugins the real node's cluster DNS uses (cluster/coredns;
# its go.mod pins the CoreDNS release), rebuilt when that module changes.
build_coredns() {
  local out="$bin/coredns" hash
  hash="$(cat "$here/coredns/main.go" "$here/coredns/go.mod" "$here/coredns/go.sum" | sha256sum | cut -c1-16)"
  [[ -x "$out" && "$(cat "$out.sources" 2>/dev/null)" == "$hash" ]] && return
  log "CoreDNS ($(grep -o 'coredns/coredns v[0-9.]*' "$here/coredns/go.mod" | cut -d' ' -f2)): compiling the cluster DNS"
  (cd "$here/coredns" && CGO_ENABLED=0 go build -v -ldflags "-s -w" -o "$out.tmp" . 2>&1) | progress coredns "?"
  mv "$out.tmp" "$out"
  echo "$hash" >"$out.sources"
}

go_install() {  # name module version [ldflags]
  local name="$1" module="$2" version="$3" ld="${4:-}"
  [[ -x "$bin/$name" ]] && return
  log "$name $version: go install $module@$version"
  GOBIN="$bin.tmp" go install -v -ldflags "$ld" "$module@$version" 2>&1 | progress "$name" "?"
  mv "$bin.tmp/$name" "$bin/$name"
}

# Helm's release builds stamp its version and the Kubernetes version that
# `helm template` assumes offline (else v1.20, below the chart's kubeVersion).
# A helm built before these flags existed reports "v3.17"; rebuild it.
helm_ldflags() {
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  echo "$ld"
}
if [[ -x "$bin/helm" ]] && [[ "$("$bin/helm" version --template '{{.Version}}')" != "$HELM_VERSION" ]]; then
  rm -f "$bin/helm"
fi

build_k8s
for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sf kubernel-k8s "$bin/$c"
done
build_coredns
go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$(helm_ldflags)"
go_install kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION" "-s -w"
log "binaries ready in $bin"
echo "$bin"
