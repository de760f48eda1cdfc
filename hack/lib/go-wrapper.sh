#!/usr/bin/env bash
# Helpers for hack/build-*.sh, which build other projects' binaries through generated wrapper modules.

# module_replaces GO_MOD: prints the replace directives of GO_MOD (single-line and in blocks) as
# single-line directives, without local (=> ./...) ones, for a wrapper module to copy.
module_replaces() {
  awk '
    /^replace \(/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    block && /=>/ { print "replace " $0; next }
    /^replace .*=>/ { print }
  ' "$1" | sed 's#//.*$##; s/^replace\s\+/replace /' | grep -v '=> \./' || true
}
