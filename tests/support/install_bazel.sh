#!/usr/bin/env bash
# Installs Debian's Bazel (`bazel-bootstrap`, 4.2.3), used offline by tests/bazel against the rules in
# rules/. Idempotent: does nothing when `bazel` is on PATH.
set -euo pipefail

command -v bazel >/dev/null 2>&1 && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo -n" || { echo "install_bazel.sh: need root (or sudo) to apt-get install bazel-bootstrap" >&2; exit 1; }
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends bazel-bootstrap >/dev/null
command -v bazel >/dev/null 2>&1
