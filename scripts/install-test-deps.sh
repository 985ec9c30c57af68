#!/usr/bin/env bash
# Installs the system packages the test suite needs, where this user can (root with apt-get).
# Called by `make test` and `.ci/run`; idempotent. The spine's tests need only Python; later
# capabilities add their tools below as `need COMMAND DEBIAN_PACKAGE` (podman, nginx,
# openssh-server, ...). Where nothing can be installed, tests needing a tool skip naming the
# package (tests/tools.py), except in CI, where every skip is a failure (tests/ci_skips.py).
set -euo pipefail
packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }

need git git   # the registry tags versions with the project's git commit
need podman podman            # images and the container target
need buildah buildah          # the buildah image builder
need runc runc                # podman's runtime here (see below)
need debootstrap debootstrap  # the local base image (scripts/build-base-image.sh)
need nginx nginx              # the local endpoint router (traffic split, blue/green)
need sshd openssh-server      # a real sshd on 127.0.0.1 for the ssh compute target
need java openjdk-17-jre-headless  # spark-submit (pyspark 4 needs Java 17+) for the spark compute target
need shellcheck shellcheck    # actionlint checks the run: scripts of generated GitHub workflows with it
need docker-registry docker-registry  # an OCI registry on 127.0.0.1 (tests/oci_registry_support.py)
need htpasswd apache2-utils    # its bcrypt password file
# PostgreSQL for the shared-workspace tests (tests/pg_support.py); Debian keeps initdb off PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need initdb postgresql

if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages for the tests: ${packages[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "cannot install ${packages[*]} (not root or no apt-get): tests that need them will skip" >&2
  fi
fi

# Podman in this kind of VM/container: the runc runtime and no default ulimits (crun and the
# default nofile ulimit fail here). Only where we are root and nobody configured it yet.
if [ "$(id -u)" = "0" ] && command -v podman >/dev/null 2>&1 && [ ! -e /etc/containers/containers.conf ]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' > /etc/containers/containers.conf
fi
# nginx from Debian starts a system service on port 80 on install; the tests run their own.
if [ "$(id -u)" = "0" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
# The postgresql package creates a cluster on port 5432 and starts it where invoke-rc.d lets it; the
# tests run their own servers (tests/pg_support.py) and never use it: stopped, and off at boot.
if [ "$(id -u)" = "0" ] && command -v pg_lsclusters >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now postgresql >/dev/null 2>&1 || true
  fi
  if [ ! -d /run/systemd/system ]; then  # no systemd running (containers): SysV links, pg_ctlcluster
    update-rc.d postgresql disable >/dev/null 2>&1 || true
    { pg_lsclusters --no-header 2>/dev/null || true; } | while read -r version cluster _ status _; do
      case "$status" in online*) pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true ;; esac
    done
  fi
fi
