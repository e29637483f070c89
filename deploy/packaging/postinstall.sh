#!/bin/sh
# ldapmux postinstall (deb: configure; rpm: install or upgrade): create the
# system user and group, give the configuration to that group, tell systemd
# about the unit. The service is neither enabled nor started.
set -e

if ! getent group ldapmux >/dev/null; then
    groupadd --system ldapmux
fi
if ! getent passwd ldapmux >/dev/null; then
    useradd --system --gid ldapmux --no-create-home --home-dir /var/lib/ldapmux \
        --shell /usr/sbin/nologin --comment "ldapmux LDAP proxy" ldapmux
fi

# The configuration may hold the service password: root writes it, the
# ldapmux group reads it, nobody else. Only set on first install (group
# still root), so an administrator's choice survives upgrades.
for path in /etc/ldapmux /etc/ldapmux/ldapmux.yaml; do
    if [ -e "$path" ] && [ "$(stat -c %G "$path")" = root ]; then
        chgrp ldapmux "$path"
    fi
done

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    # On upgrade, a running proxy is restarted with the new binary (it drains first).
    if systemctl is-active --quiet ldapmux.service; then
        systemctl try-restart ldapmux.service || true
    fi
fi
exit 0
