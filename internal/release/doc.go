// Package release holds the tests of what ldapmux is deployed with: the
// release build (scripts/release.sh: static archives, .deb and .rpm, the
// container image, SBOMs, checksums), the systemd unit and the Helm chart
// (deploy/). It has no code of its own.
package release
