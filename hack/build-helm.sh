#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy (helm.sh/helm/vN/cmd/helm at HELM_VERSION in versions.env)
# through a generated wrapper module and caches it outside the repository, keyed by version. Prints the
# binary's path. The chart tests run `helm lint` and `helm template` with it.
#
#   HELM=/path/to/helm      use a pre-installed helm; build nothing
#   AUTOPILOT_CACHE=/dir    cache root (default: $HOME/.cache/helmrelease-autopilot)
#
# The wrapper requires helm.sh/helm/vN at HELM_VERSION and copies every replace directive of that tag's
# go.mod (none today), so a version that adds some still builds as released. The version ldflags are the
# ones Helm's Makefile sets, so `helm version` is real. Nothing of Helm is copied into this repository.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"
# shellcheck source=hack/lib/go-wrapper.sh
source "$here/lib/go-wrapper.sh"
version=$HELM_VERSION

if [[ -n "${HELM:-}" ]]; then
  [[ -x "$HELM" ]] || { echo "HELM=$HELM is not an executable" >&2; exit 1; }
  echo "$HELM"
  exit 0
fi

cache=${AUTOPILOT_CACHE:-$HOME/.cache/helmrelease-autopilot}
out="$cache/bin/helm-$version"
if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi

command -v go >/dev/null || { echo "go is not installed: install Go, or point HELM at a helm binary" >&2; exit 1; }
major=${version%%.*}
[[ "$major" =~ ^v[0-9]+$ ]] || { echo "HELM_VERSION=$version is not a vMAJOR.MINOR.PATCH version" >&2; exit 1; }
module=helm.sh/helm
# Go's semantic import versioning: v2+ modules carry the major version in their path (Helm 3 and 4 both do).
[[ "$major" == v0 || "$major" == v1 ]] || module="$module/$major"
work=$(mktemp -d "${TMPDIR:-/tmp}/autopilot-helm-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

echo "building helm $version in $work (a few minutes when cold)" >&2
(
  cd "$work"
  info=$(go mod download -json "$module@$version")
  mdir=$(sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p' <<<"$info")
  [[ -n "$mdir" && -f "$mdir/go.mod" ]] || { echo "go mod download $module@$version gave no module directory" >&2; exit 1; }
  # The tag's commit, when the proxy reports where the version came from.
  commit=$(sed -n 's/^\s*"Hash": "\([0-9a-f]*\)",\?$/\1/p' <<<"$info" | head -n1)
  {
    echo "module autopilot.local/helm"
    echo
    echo "go 1.26"
    echo
    echo "require $module $version"
    echo
    # Replace directives, single-line and in blocks, without local (./) ones.
    module_replaces "$mdir/go.mod"
  } >go.mod
  cat >tools.go <<GO
//go:build tools

package tools

import (
	_ "$module/cmd/helm"
)
GO
  go mod tidy >&2
  mkdir -p bin
  pkg="$module/internal/version"
  ldflags="-s -w -X $pkg.version=$version -X $pkg.metadata= -X $pkg.gitTreeState=clean"
  [[ -z "$commit" ]] || ldflags="$ldflags -X $pkg.gitCommit=$commit"
  # nice: the machine running this is usually also running tests.
  nice -n 10 go build -trimpath -ldflags "$ldflags" -o bin/helm "$module/cmd/helm"
)
# Publish with a rename, so a concurrent caller sees either no binary or a whole one.
mkdir -p "$out"
mv "$work/bin/helm" "$out/.helm.$$"
mv -f "$out/.helm.$$" "$out/helm"
echo "$out/helm"
