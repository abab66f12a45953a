#!/usr/bin/env bash
# Installs the real Docker engine the image tests drive (Debian's docker.io: dockerd, containerd,
# runc, the docker CLI). Idempotent: does nothing when dockerd is present. The tests start their
# own dockerd (own data-root and socket in a temp dir), so nothing is enabled or started here.
set -euo pipefail

[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo -n" || { echo "install_docker.sh: need root (or sudo) to apt-get install docker.io" >&2; exit 1; }
fi
export DEBIAN_FRONTEND=noninteractive
# Several installers may run at once on a shared machine: wait for the dpkg lock instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends)
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
# policy-rc.d 101: the package must not start a system dockerd (the tests run their own).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install "${APT_OPTS[@]}" docker.io >/dev/null
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ]
