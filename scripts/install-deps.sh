#!/usr/bin/env bash
# Installs what ldapmux's demo and tests need from Debian's packages, when missing:
# slapd (OpenLDAP server, without a system instance), ldap-utils (its clients) and
# libsasl2-modules (SASL mechanisms);
# with --with-browser also chromium, for the status page's browser test.
set -euo pipefail

missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || missing+=(ldap-utils)
# SASL mechanisms (PLAIN, SCRAM, DIGEST-MD5, CRAM-MD5) for slapd and the clients
dpkg -s libsasl2-modules >/dev/null 2>&1 || missing+=(libsasl2-modules)
if [ "${1:-}" = "--with-browser" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing ${missing[*]} ..."
echo "slapd slapd/no_configuration boolean true" | $sudo debconf-set-selections
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
