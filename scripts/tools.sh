#!/usr/bin/env bash
# Installs the pinned Go tools of the release build and the deployment checks;
# they are not in go.mod. Each is built once per version into a cache shared by
# every checkout ($LDAPMUX_TOOLS_CACHE, default ~/.cache/ldapmux-tools) and
# linked into .tools/bin (git-ignored):
#   nfpm             .deb and .rpm packages
#   cyclonedx-gomod  the CycloneDX SBOMs
#   helm             helm lint and helm template of the chart
#   kubeconform      validation of the rendered manifests (schemas made offline
#                    by the tests from the Kubernetes OpenAPI spec)
# Modules come from the module cache first, then the module proxy, so it works
# offline once they were fetched. Prints the tools directory.
# Usage: scripts/tools.sh [TOOL...] (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/bin"
cache=${LDAPMUX_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ldapmux-tools}
mkdir -p "$bin" "$cache"

declare -A modules=(
  [nfpm]=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
  [cyclonedx-gomod]=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
  [helm]=helm.sh/helm/v4/cmd/helm@v4.3.2
  [kubeconform]=github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
)

modcache="file://$(go env GOMODCACHE)/cache/download"
tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(nfpm cyclonedx-gomod helm kubeconform)
for tool in "${tools[@]}"; do
  module=${modules[$tool]:-}
  [ -n "$module" ] || { echo "tools.sh: unknown tool $tool" >&2; exit 2; }
  dir="$cache/$tool@${module##*@}"
  if [ ! -x "$dir/$tool" ]; then
    echo "tools.sh: go install $module" >&2
    GOBIN="$dir" CGO_ENABLED=0 GOPROXY="$modcache,$(go env GOPROXY)" go install "$module" ||
      GOBIN="$dir" CGO_ENABLED=0 GOPROXY="$modcache" GOSUMDB=off go install "$module"
  fi
  ln -sfn "$dir/$tool" "$bin/$tool"
done
echo "$bin"
