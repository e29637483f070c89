#!/usr/bin/env bash
# Builds a release of ldapmux into dist/ (git-ignored), offline once the Go
# modules and tools are in the module cache:
#   ldapmux_V_linux_ARCH.tar.gz   static binary, LICENSE, NOTICE, README.md,
#                                 CHANGELOG.md, config/, systemd/ldapmux.service
#   ldapmux_V-1_ARCH.deb, ldapmux-V-1.ARCH.rpm   (nfpm; deploy/packaging)
#   ldapmux_V_linux_ARCH.oci.tar  container image, OCI archive (scripts/image.sh)
#   ldapmux_V_linux_ARCH.cdx.json CycloneDX SBOM of the binary
#   SHA256SUMS
# for ARCH in amd64 and arm64. V is the VERSION file; the binary is stamped with
# it and the commit. DIST=DIR writes elsewhere (the tests do).
# Usage: scripts/release.sh [--no-image] [--arch ARCH]...
set -euo pipefail
cd "$(dirname "$0")/.."

image=yes
arches=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-image) image=no ;;
    --arch) arches+=("$2"); shift ;;
    *) echo "usage: $0 [--no-image] [--arch amd64|arm64]..." >&2; exit 2 ;;
  esac
  shift
done
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)

version=$(tr -d ' \n' < VERSION)
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "VERSION: not a semantic version: $version" >&2; exit 1; }
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then revision="$revision-dirty"; fi
# Reproducible archives: every file dated at the commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

tools=$(scripts/tools.sh nfpm cyclonedx-gomod)
pkg=github.com/ldapmux/ldapmux/internal/buildinfo
ldflags="-s -w -buildid= -X $pkg.Version=$version -X $pkg.Revision=$revision"

dist=${DIST:-dist}
rm -rf "$dist"
mkdir -p "$dist/build"
for arch in "${arches[@]}"; do
  out=$dist/build/linux_$arch
  echo "release: ldapmux $version ($revision) linux/$arch" >&2
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/ldapmux" ./cmd/ldapmux

  # Archive.
  name=ldapmux_${version}_linux_$arch
  stage=$dist/build/$name
  mkdir -p "$stage/config" "$stage/systemd"
  cp "$out/ldapmux" LICENSE NOTICE README.md CHANGELOG.md "$stage/"
  cp deploy/packaging/ldapmux.yaml "$stage/config/ldapmux.yaml"
  cp internal/config/example.yaml "$stage/config/example.yaml"
  cp deploy/systemd/ldapmux.service "$stage/systemd/"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$dist/build" -cf - "$name" | gzip -n -9 > "$dist/$name.tar.gz"

  # Packages.
  sed -e "s|\${ARCH}|$arch|g" -e "s|\${VERSION}|$version|g" -e "s|\${BINARY}|$out/ldapmux|g" \
    deploy/packaging/nfpm.yaml > "$out/nfpm.yaml"
  for format in deb rpm; do
    "$tools/nfpm" package --config "$out/nfpm.yaml" --packager "$format" --target "$dist/" >/dev/null
  done

  # SBOM of the binary, from the module versions Go recorded in it.
  "$tools/cyclonedx-gomod" bin -json -noserial -notimestamp -version "v$version" \
    -output "$dist/$name.cdx.json" "$out/ldapmux"

  if [ "$image" = yes ]; then
    scripts/image.sh "$out/ldapmux" "$arch" "$version" "$dist/${name}.oci.tar"
  fi
done

(cd "$dist" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
echo "release: $dist/" >&2
(cd "$dist" && ls -l --time-style=+ $(cat SHA256SUMS | awk '{print $2}') | awk '{print $5, $NF}') >&2
