#!/usr/bin/env bash
# Builds Flux's helm-controller from the Go module proxy through a generated wrapper module and caches
# the binary outside the repository, keyed by version. Prints the binary's path.
#
#   build-helm-controller.sh [VERSION]   default: HELM_CONTROLLER_VERSION from hack/versions.env
#   HELM_CONTROLLER_BIN=/path            use a pre-installed binary (for the default version); build nothing
#   AUTOPILOT_CACHE=/dir                 cache root (default: $HOME/.cache/helmrelease-autopilot)
#
# The wrapper requires github.com/fluxcd/helm-controller at VERSION and copies every replace directive of
# that tag's go.mod, except the local ./api one: the wrapper requires github.com/fluxcd/helm-controller/api
# at the same VERSION instead. Nothing of helm-controller is copied into this repository.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"
# shellcheck source=hack/lib/go-wrapper.sh
source "$here/lib/go-wrapper.sh"
version=${1:-$HELM_CONTROLLER_VERSION}

if [[ -n "${HELM_CONTROLLER_BIN:-}" && "$version" == "$HELM_CONTROLLER_VERSION" ]]; then
  [[ -x "$HELM_CONTROLLER_BIN" ]] || { echo "HELM_CONTROLLER_BIN=$HELM_CONTROLLER_BIN is not executable" >&2; exit 1; }
  echo "$HELM_CONTROLLER_BIN"
  exit 0
fi

cache=${AUTOPILOT_CACHE:-$HOME/.cache/helmrelease-autopilot}
out="$cache/bin/helm-controller-$version"
if [[ -x "$out/helm-controller" ]]; then
  echo "$out/helm-controller"
  exit 0
fi

command -v go >/dev/null || { echo "go is not installed: install Go, or set HELM_CONTROLLER_BIN to a helm-controller binary" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/autopilot-helm-controller-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
module=github.com/fluxcd/helm-controller

echo "building helm-controller $version in $work (several minutes when cold)" >&2
(
  cd "$work"
  mdir=$(go mod download -json "$module@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [[ -n "$mdir" && -f "$mdir/go.mod" ]] || { echo "go mod download $module@$version gave no module directory" >&2; exit 1; }
  {
    echo "module autopilot.local/helmcontroller"
    echo
    echo "go 1.26"
    echo
    echo "require ("
    echo "	$module $version"
    echo "	$module/api $version"
    echo ")"
    echo
    # Replace directives, single-line and in blocks, without the local ./api one.
    module_replaces "$mdir/go.mod"
  } >go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/fluxcd/helm-controller"
)
GO
  go mod tidy >&2
  mkdir -p bin
  # nice: the machine running this is usually also running tests.
  nice -n 10 go build -trimpath -ldflags "-s -w" -o bin/helm-controller "$module"
)
mkdir -p "$out.tmp"
mv "$work/bin/helm-controller" "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/helm-controller"
