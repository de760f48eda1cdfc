#!/usr/bin/env bash
# Lints the shell scripts with shellcheck when it is installed (.ci/run installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v shellcheck >/dev/null; then
  echo "shellcheck not installed: shell scripts not linted (apt-get install shellcheck)" >&2
  exit 0
fi
mapfile -t scripts < <(git ls-files '*.sh' .ci/run hack/kubectl-autopilot)
shellcheck -x "${scripts[@]}"
