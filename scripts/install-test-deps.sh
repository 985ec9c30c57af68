#!/usr/bin/env bash
# Installs the system packages the test suite needs, where this user can (root with apt-get).
# Called by `make test` and `.ci/run`; idempotent. The spine's tests need only Python; later
# capabilities add their tools below as `need COMMAND DEBIAN_PACKAGE` (podman, nginx,
# openssh-server, ...). Where nothing can be installed, tests needing a tool skip naming the
# package (tests/tools.py), except in CI, where that skip is a failure.
set -euo pipefail
packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }

need git git   # the registry tags versions with the project's git commit

if [ ${#packages[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages for the tests: ${packages[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
else
  echo "cannot install ${packages[*]} (not root or no apt-get): tests that need them will skip" >&2
fi
