#!/usr/bin/env bash
# Builds kustomize from the Go module proxy (sigs.k8s.io/kustomize/kustomize/v5 at KUSTOMIZE_VERSION in
# versions.env) and caches it outside the repository, keyed by version. Prints the binary's path.
#
#   KUSTOMIZE=/path/to/kustomize   use a pre-installed kustomize; build nothing
#   AUTOPILOT_CACHE=/dir           cache root (default: $HOME/.cache/helmrelease-autopilot)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.env
source "$here/versions.env"

if [[ -n "${KUSTOMIZE:-}" ]]; then
  [[ -x "$KUSTOMIZE" ]] || { echo "KUSTOMIZE=$KUSTOMIZE is not an executable" >&2; exit 1; }
  echo "$KUSTOMIZE"
  exit 0
fi

cache=${AUTOPILOT_CACHE:-$HOME/.cache/helmrelease-autopilot}
out="$cache/bin/kustomize-$KUSTOMIZE_VERSION"
if [[ -x "$out/kustomize" ]]; then
  echo "$out/kustomize"
  exit 0
fi

command -v go >/dev/null || { echo "go is not installed: install Go, or point KUSTOMIZE at a kustomize binary" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/autopilot-kustomize-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "building kustomize $KUSTOMIZE_VERSION (a minute when cold)" >&2
# The module has no replace directives, so `go install module@version` builds it as released.
(cd "$work" && GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$work/bin" \
  go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2)
# Publish with a rename, so a concurrent caller sees either no binary or a whole one.
mkdir -p "$out"
mv "$work/bin/kustomize" "$out/.kustomize.$$"
mv -f "$out/.kustomize.$$" "$out/kustomize"
echo "$out/kustomize"
