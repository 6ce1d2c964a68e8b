#!/usr/bin/env bash
# Helm v3 for the chart tests (tests/unit/test_helm_chart.py), built from the Go module proxy
# and cached: `deploy/local/helm.sh` prints the binary's path, building it on the first run.
#   CITYHELP_CACHE  downloads and builds, kept between runs (default ~/.cache/cityhelp)
#   HELM_VERSION    the helm.sh/helm/v3 version to build (default v3.22.0)
# The first build compiles Kubernetes' client libraries: about 4-8 minutes on 2 cores; later
# runs only print the path.
set -euo pipefail

tag=helm
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
version="${HELM_VERSION:-v3.22.0}"
dir="$cache/helm-$version"
bin="$dir/helm"

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
build_lock "$dir" helm
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v go >/dev/null 2>&1 \
  || die "'go' is missing; install Go 1.24 or newer (from go.dev; Debian 12's golang is too old)."

say "building helm $version from the Go module proxy into $dir (first run only, about 4-8 minutes on 2 cores)..."
mkdir -p "$dir"
started=$(date +%s)
( GOBIN="$dir/.build" CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$version" ) >"$dir/build.log" 2>&1 &
building $! helm || { tail -20 "$dir/build.log" >&2; die "helm build failed (log above); check that the Go module proxy is reachable (GOPROXY), then run again."; }
mv "$dir/.build/helm" "$bin"
rmdir "$dir/.build" 2>/dev/null || true
say "helm built in $(( $(date +%s) - started ))s: $("$bin" version --short 2>/dev/null)"
echo "$bin"
