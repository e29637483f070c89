#!/usr/bin/env bash
# Installs the pinned Go tools of the release build and the deployment checks
# into .tools/bin (git-ignored), each once per version; they are not in go.mod.
#   nfpm             .deb and .rpm packages
#   cyclonedx-gomod  the CycloneDX SBOM
#   helm             helm lint and helm template of the chart
#   kubeconform      validation of the rendered manifests (schemas made offline
#                    by the tests from the Kubernetes OpenAPI spec)
# Prints the tools directory. Usage: scripts/tools.sh [TOOL...] (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/bin"
mkdir -p "$bin"

declare -A modules=(
  [nfpm]=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
  [cyclonedx-gomod]=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
  [helm]=helm.sh/helm/v4/cmd/helm@v4.3.2
  [kubeconform]=github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
)

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(nfpm cyclonedx-gomod helm kubeconform)
for tool in "${tools[@]}"; do
  module=${modules[$tool]:-}
  [ -n "$module" ] || { echo "tools.sh: unknown tool $tool" >&2; exit 2; }
  stamp="$bin/.$tool@${module##*@}"
  if [ ! -x "$bin/$tool" ] || [ ! -e "$stamp" ]; then
    echo "tools.sh: go install $module" >&2
    rm -f "$bin/.$tool@"*
    # Without a module proxy (offline), from what the module cache holds.
    GOBIN="$bin" CGO_ENABLED=0 go install "$module" ||
      GOBIN="$bin" CGO_ENABLED=0 GOPROXY="file://$(go env GOMODCACHE)/cache/download" GOSUMDB=off \
        go install "$module"
    touch "$stamp"
  fi
done
echo "$bin"
