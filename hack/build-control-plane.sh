#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy through a generated wrapper module and
# caches them outside the repository, keyed by version. Prints the directory that holds both.
#
#   KUBEBUILDER_ASSETS=/dir   use pre-installed binaries (kube-apiserver and etcd in /dir); build nothing
#   AUTOPILOT_CACHE=/dir      cache root (default: $HOME/.cache/helmrelease-autopilot)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for b in kube-apiserver etcd; do
    [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $b" >&2; exit 1; }
  done
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache=${AUTOPILOT_CACHE:-$HOME/.cache/helmrelease-autopilot}
out="$cache/bin/kubernetes-$KUBERNETES_VERSION"
if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "go is not installed: install Go, or point KUBEBUILDER_ASSETS at kube-apiserver and etcd binaries" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/autopilot-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
staging_version="v0.${KUBERNETES_VERSION#v1.}"

echo "building kube-apiserver and etcd $KUBERNETES_VERSION in $work (several minutes when cold)" >&2
(
  cd "$work"
  go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
  kdir=$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION
  {
    echo "module autopilot.local/controlplane"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    # Every staging module the tag replaces with ./staging/... comes from the proxy at the matching v0.X.Y.
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#replace \1 => \1 '"$staging_version"'#p' "$kdir/go.mod"
  } >go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
GO
  go mod tidy >&2
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  mkdir -p bin
  go build -trimpath -ldflags "$ldflags" -o bin/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags "-s -w" -o bin/etcd go.etcd.io/etcd/server/v3
)
mkdir -p "$out.tmp"
mv "$work/bin/kube-apiserver" "$work/bin/etcd" "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
