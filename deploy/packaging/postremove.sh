#!/bin/sh
# ldapmux postremove: forget the unit. The ldapmux user and /etc/ldapmux are
# kept (files it owns may remain); dpkg --purge removes the configuration.
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
