#!/usr/bin/env bash
# Builds cert-manager's controller and cainjector from the Go module proxy through a generated wrapper
# module and caches them outside the repository, keyed by version. Prints the directory that holds both.
#
#   build-cert-manager.sh [VERSION]   default: CERT_MANAGER_E2E_VERSION from hack/versions.env
#   CERT_MANAGER_BIN_DIR=/dir         use pre-installed binaries (controller and cainjector in /dir); build nothing
#   AUTOPILOT_CACHE=/dir              cache root (default: $HOME/.cache/helmrelease-autopilot)
#
# The wrapper requires github.com/cert-manager/cert-manager at VERSION and copies every replace directive
# of that tag's go.mod. Nothing of cert-manager is copied into this repository.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"
# shellcheck source=hack/lib/go-wrapper.sh
source "$here/lib/go-wrapper.sh"
version=${1:-$CERT_MANAGER_E2E_VERSION}

if [[ -n "${CERT_MANAGER_BIN_DIR:-}" && "$version" == "$CERT_MANAGER_E2E_VERSION" ]]; then
  for b in controller cainjector; do
    [[ -x "$CERT_MANAGER_BIN_DIR/$b" ]] || { echo "CERT_MANAGER_BIN_DIR=$CERT_MANAGER_BIN_DIR has no executable $b" >&2; exit 1; }
  done
  echo "$CERT_MANAGER_BIN_DIR"
  exit 0
fi

cache=${AUTOPILOT_CACHE:-$HOME/.cache/helmrelease-autopilot}
out="$cache/bin/cert-manager-$version"
if [[ -x "$out/controller" && -x "$out/cainjector" ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "go is not installed: install Go, or set CERT_MANAGER_BIN_DIR to a directory with controller and cainjector" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/autopilot-cert-manager-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
module=github.com/cert-manager/cert-manager

echo "building cert-manager controller and cainjector $version in $work (several minutes when cold)" >&2
(
  cd "$work"
  mdir=$(go mod download -json "$module@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [[ -n "$mdir" && -f "$mdir/go.mod" ]] || { echo "go mod download $module@$version gave no module directory" >&2; exit 1; }
  {
    echo "module autopilot.local/certmanager"
    echo
    echo "go 1.26"
    echo
    echo "require $module $version"
    echo
    # Replace directives, single-line and in blocks, without local (./) ones.
    module_replaces "$mdir/go.mod"
  } >go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/cert-manager/cert-manager/cmd/cainjector"
	_ "github.com/cert-manager/cert-manager/cmd/controller"
)
GO
  go mod tidy >&2
  mkdir -p bin
  # nice: the machine running this is usually also running tests.
  nice -n 10 go build -trimpath -ldflags "-s -w" -o bin/controller "$module/cmd/controller"
  nice -n 10 go build -trimpath -ldflags "-s -w" -o bin/cainjector "$module/cmd/cainjector"
)
mkdir -p "$out.tmp"
mv "$work/bin/controller" "$work/bin/cainjector" "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
