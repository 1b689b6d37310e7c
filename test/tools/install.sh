#!/usr/bin/env bash
# Builds the real components the tests and the demo run (kube-apiserver, etcd, helm) from the Go
# module proxy and installs Prometheus and Alertmanager from Debian's packages. Binaries are cached
# outside the clone, keyed by version, so a fresh clone on the same machine reuses them. Idempotent.
#
# Usage: test/tools/install.sh [kube-apiserver|etcd|helm|prometheus|xmllint|chromium|all]
# Prints nothing but progress on stderr; `test/tools/install.sh path NAME` prints a binary's path.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
HELM_VERSION=${HELM_VERSION:-3.22.0}
# The Kubernetes version `helm template` assumes (the chart's kubeVersion is checked against it).
# Helm's release builds set it from their client-go (v0.37 for 3.22); a plain go install leaves
# 1.20, which the chart refuses.
HELM_K8S_VERSION=${HELM_K8S_VERSION:-1.37}
CACHE=${MESHGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshguard}

log() { printf '[tools] %s\n' "$*" >&2; }

bin_path() {
  case "$1" in
    kube-apiserver) echo "$CACHE/kube-apiserver-v$KUBE_VERSION/kube-apiserver" ;;
    etcd) echo "$CACHE/etcd-v$ETCD_VERSION/etcd" ;;
    helm) echo "$CACHE/helm-v$HELM_VERSION-k8s$HELM_K8S_VERSION/helm" ;;
    prometheus) command -v prometheus || echo /usr/bin/prometheus ;;
    alertmanager) command -v prometheus-alertmanager || echo /usr/bin/prometheus-alertmanager ;;
    promtool) command -v promtool || echo /usr/bin/promtool ;;
    chromium) command -v chromium || echo /usr/bin/chromium ;;
    *) echo "unknown tool $1" >&2; return 2 ;;
  esac
}

# scratch makes an empty module directory outside the project's go.mod.
scratch() {
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/meshguard-tools.XXXXXX")
  (cd "$dir" && go mod init meshguard.tools/build >/dev/null 2>&1)
  echo "$dir"
}

install_kube_apiserver() {
  local out; out=$(bin_path kube-apiserver)
  [ -x "$out" ] && { log "kube-apiserver v$KUBE_VERSION cached at $out"; return; }
  log "building kube-apiserver v$KUBE_VERSION from the Go module proxy (cold: ~18 min on 2 cores, once per machine)"
  local dir; dir=$(scratch)
  (
    cd "$dir"
    go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" >/dev/null
    local gomod; gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$KUBE_VERSION.mod
    # Every staging repo k8s.io/kubernetes replaces with ./staging is published at v0.<minor>.<patch>.
    local staging_version="v0.${KUBE_VERSION#*.}"
    {
      echo "require k8s.io/kubernetes v$KUBE_VERSION"
      echo "replace ("
      grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' |
        grep -vE 'sample-cli-plugin|sample-controller' |
        while read -r m; do echo "  $m => $m $staging_version"; done
      echo ")"
    } >>go.mod
    cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
    go mod tidy >/dev/null 2>&1 || true
    local major=${KUBE_VERSION%%.*} rest=${KUBE_VERSION#*.}; local minor=${rest%%.*}
    local ld=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    mkdir -p "$(dirname "$out")"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ld" -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$out.tmp" "$out"
  )
  rm -rf "$dir"
  log "kube-apiserver ready: $out"
}

install_etcd() {
  local out; out=$(bin_path etcd)
  [ -x "$out" ] && { log "etcd v$ETCD_VERSION cached at $out"; return; }
  log "building etcd v$ETCD_VERSION from the Go module proxy (~1 min)"
  local dir; dir=$(scratch)
  (
    cd "$dir"
    cat >tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1 || true
    mkdir -p "$(dirname "$out")"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3
    mv "$out.tmp" "$out"
  )
  rm -rf "$dir"
  log "etcd ready: $out"
}

install_helm() {
  local out; out=$(bin_path helm)
  [ -x "$out" ] && { log "helm v$HELM_VERSION cached at $out"; return; }
  log "building helm v$HELM_VERSION from the Go module proxy (~3 min)"
  mkdir -p "$(dirname "$out")"
  GOBIN="$(dirname "$out")" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${HELM_K8S_VERSION%%.*} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_K8S_VERSION#*.}" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  log "helm ready: $out"
}

install_prometheus() {
  if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null && command -v promtool >/dev/null; then
    log "prometheus, alertmanager and promtool installed"; return
  fi
  log "installing prometheus and prometheus-alertmanager from Debian's packages"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  # Keep the packages from starting system services: the tests run their own on loopback.
  local had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
  fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
  [ $had_policy = 0 ] && $sudo rm -f /usr/sbin/policy-rc.d
  # A package's service may still have started under another init; stop it so ports stay free.
  pkill -x prometheus 2>/dev/null || true
  pkill -x prometheus-alertmanager 2>/dev/null || true
  log "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') installed"
}

# xmllint validates the JUnit report against the Jenkins xunit schema (internal/report); no Go XSD
# validator exists.
install_xmllint() {
  command -v xmllint >/dev/null && { log "xmllint installed"; return; }
  log "installing xmllint from Debian's libxml2-utils"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libxml2-utils >/dev/null
  log "xmllint installed"
}

# Debian's Chromium for the service map's browser test (driven headless over the DevTools
# protocol by chromedp; no driver binary, no node).
install_chromium() {
  if command -v chromium >/dev/null; then
    log "chromium installed: $(chromium --version 2>/dev/null | head -1)"; return
  fi
  log "installing chromium from Debian's packages"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  log "$(chromium --version 2>/dev/null | head -1) installed"
}

case "${1:-all}" in
  path) bin_path "$2" ;;
  kube-apiserver) install_kube_apiserver ;;
  etcd) install_etcd ;;
  helm) install_helm ;;
  prometheus) install_prometheus ;;
  xmllint) install_xmllint ;;
  chromium) install_chromium ;;
  all) install_prometheus; install_xmllint; install_chromium; install_etcd; install_helm; install_kube_apiserver ;;
  *) echo "usage: $0 [kube-apiserver|etcd|helm|prometheus|xmllint|chromium|all|path NAME]" >&2; exit 2 ;;
esac
