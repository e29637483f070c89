#!/usr/bin/env bash
# Installs what ldapmux's demo and tests need from Debian's packages, when missing:
# slapd (OpenLDAP server, without a system instance), ldap-utils (its clients) and
# libsasl2-modules (SASL mechanisms);
# with --with-clients also python3-ldap, python3-ldap3, a JDK (JNDI), Net::LDAP, nslcd and SSSD with their
# NSS and PAM modules, and pamtester: clients the end-to-end tests drive;
# with --with-browser also chromium, for the status page's browser test;
# with --with-directories also 389 Directory Server and a Samba AD DC (with their
# tools), for the tests against other directories (internal/dirtest).
set -euo pipefail

with_clients=no
with_browser=no
with_directories=no
with_release=no
for arg in "$@"; do
  case "$arg" in
    --with-clients) with_clients=yes ;;
    --with-browser) with_browser=yes ;;
    --with-directories) with_directories=yes ;;
    --with-release) with_release=yes ;;
    *) echo "usage: $0 [--with-clients] [--with-browser] [--with-directories] [--with-release]" >&2; exit 2 ;;
  esac
done

missing=()
# need PACKAGE: adds PACKAGE to missing unless it is installed.
need() {
  dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed || missing+=("$1")
}
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || missing+=(ldap-utils)
# SASL mechanisms (PLAIN, SCRAM, DIGEST-MD5, CRAM-MD5) for slapd and the clients
need libsasl2-modules
if [ "$with_clients" = yes ]; then
  need python3-ldap # for Debian's /usr/bin/python3
  need python3-ldap3 # the pure-Python client
  command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless) # JNDI, Java's LDAP client
  need libnet-ldap-perl # Perl's Net::LDAP
  # a Linux host's NSS and PAM over LDAP, by nslcd and by SSSD
  for p in nslcd libnss-ldapd libpam-ldapd pamtester sssd-ldap libnss-sss libpam-sss; do
    need "$p"
  done
fi
if [ "$with_browser" = yes ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ "$with_directories" = yes ]; then
  for p in 389-ds-base python3-lib389 samba samba-ad-provision samba-dsdb-modules ldb-tools; do
    need "$p"
  done
fi
if [ "$with_release" = yes ]; then
  for p in buildah rpm systemd ca-certificates dpkg; do
    need "$p"
  done
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing ${missing[*]} ..."
echo "slapd slapd/no_configuration boolean true" | $sudo debconf-set-selections
# no "ldap" in nsswitch.conf
printf '%s\n' "libnss-ldapd libnss-ldapd/nsswitch multiselect" \
  "nslcd nslcd/ldap-uris string ldap://127.0.0.1/" | $sudo debconf-set-selections
# nslcd and SSSD are for the tests, which run their own in a mount namespace:
# the machine's name services (libnss-sss adds itself to nsswitch.conf) and
# logins (libpam-ldapd and libpam-sss add themselves to the PAM stack) stay
# as they were
kept=$(mktemp -d)
cp -p /etc/nsswitch.conf /etc/pam.d/common-* "$kept"/
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
if [[ " ${missing[*]} " =~ " "(libnss-sss|libpam-ldapd|libpam-sss)" " ]]; then
  $sudo cp -p "$kept"/nsswitch.conf /etc/
  $sudo cp -p "$kept"/common-* /etc/pam.d/
fi
rm -rf "$kept"
if [ -d /run/systemd/system ]; then
  for service in nslcd sssd; do
    if [[ " ${missing[*]} " == *" $service"* ]]; then
      $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
fi
