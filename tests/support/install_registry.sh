#!/usr/bin/env bash
# Installs the real OCI registry used by tests/oci (Debian's `docker-registry`) and, best effort,
# `htpasswd` (apache2-utils) for the auth test. Idempotent: does nothing when both are present.
set -euo pipefail

need=()
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo -n" || { echo "install_registry.sh: need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1; }
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# docker-registry is required; apache2-utils only enables the auth test.
$SUDO apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends apache2-utils >/dev/null 2>&1 || \
  echo "install_registry.sh: apache2-utils not installed; the registry auth test will be skipped" >&2
[ -x /usr/bin/docker-registry ]
