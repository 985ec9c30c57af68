#!/usr/bin/env bash
# Installs the system packages the test suite needs, where this user can (root with apt-get).
# The spine's tests need none beyond Python; later capabilities (podman, nginx, openssh-server)
# add theirs here. Where nothing can be installed, the tests that need a tool skip naming it.
set -euo pipefail
packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }
need curl curl
if [ ${#packages[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages for the tests: ${packages[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
else
  echo "cannot install ${packages[*]} (not root or no apt-get): tests that need them will skip" >&2
fi
