#!/usr/bin/env bash
# Builds the ldapmux container image (deploy/container/Containerfile) with
# buildah, from Debian's packages, into an OCI archive; no daemon, no RUN step,
# so it works where containers cannot run (vfs storage, chroot isolation).
# Usage: scripts/image.sh BINARY ARCH VERSION OUTPUT.oci.tar
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 4 ] || { echo "usage: $0 BINARY ARCH VERSION OUTPUT.oci.tar" >&2; exit 2; }
binary=$1 arch=$2 version=$3 output=$4
command -v buildah >/dev/null || { echo "image.sh: buildah is missing (apt-get install buildah)" >&2; exit 1; }
[ -s /etc/ssl/certs/ca-certificates.crt ] || { echo "image.sh: CA certificates missing (apt-get install ca-certificates)" >&2; exit 1; }

work=$(mktemp -d)
trap 'buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs rmi --all >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

ctx=$work/context
rootfs=$ctx/rootfs
install -D -m 0755 "$binary" "$rootfs/usr/bin/ldapmux"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -D -m 0644 deploy/container/ldapmux.yaml "$rootfs/etc/ldapmux/ldapmux.yaml"
install -D -m 0644 LICENSE "$rootfs/usr/share/doc/ldapmux/LICENSE"
install -D -m 0644 NOTICE "$rootfs/usr/share/doc/ldapmux/NOTICE"
install -d -m 0755 "$rootfs/var/lib/ldapmux" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nldapmux:x:65532:65532:ldapmux:/var/lib/ldapmux:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nldapmux:x:65532:\n' > "$rootfs/etc/group"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
if [ "$(id -u)" -eq 0 ]; then
  chown -R 0:0 "$rootfs"
  chown 65532:65532 "$rootfs/var/lib/ldapmux"
fi # rootless buildah maps the caller to root; the files are root's in the image either way
find "$rootfs" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
cp deploy/container/Containerfile "$ctx/"

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
b=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
"${b[@]}" build --quiet --isolation chroot --arch "$arch" --os linux \
  --timestamp "${SOURCE_DATE_EPOCH:-0}" \
  --label org.opencontainers.image.title=ldapmux \
  --label org.opencontainers.image.description="LDAP directory proxy" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$revision" \
  --label org.opencontainers.image.created="$created" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label org.opencontainers.image.source=https://github.com/ldapmux/ldapmux \
  -f "$ctx/Containerfile" -t "localhost/ldapmux:$version" "$ctx" >/dev/null
rm -f "$output"
"${b[@]}" push --quiet "localhost/ldapmux:$version" "oci-archive:$output:ldapmux:$version" >/dev/null
