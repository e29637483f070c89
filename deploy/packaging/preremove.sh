#!/bin/sh
# ldapmux preremove: stop and disable the service when the package is removed
# (deb: remove; rpm: $1 = 0), not on upgrade.
set -e
case "$1" in
    remove|0)
        if [ -d /run/systemd/system ]; then
            systemctl disable --now ldapmux.service >/dev/null 2>&1 || true
        fi
        ;;
esac
exit 0
