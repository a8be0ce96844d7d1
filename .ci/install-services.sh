#!/usr/bin/env bash
# The servers the tests start themselves (tests/services.py): the PostgreSQL
# server binaries from Debian's `postgresql` package and `redis-server` (the
# feature store's online store). The S3-compatible server is moto, a Python
# package of the test extra. Idempotent: when initdb is
# already installed this only checks that no packaged cluster is running.
#
#   .ci/install-services.sh      # root, or a user with sudo
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "install-services: installing postgresql"
  # No packaged cluster: the tests initdb their own on a free port. Written before
  # the install so postgresql-common's postinst creates none (it reads
  # create_main_cluster); ucf, which manages that file, keeps ours with UCF_FORCE_CONFFOLD.
  as_root mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  apt_install_postgresql() {
    as_root env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef postgresql
  }
  # Fresh images have no package lists, older ones stale lists (404s): update then.
  if ! apt-cache show postgresql >/dev/null 2>&1; then
    as_root apt-get update -qq
  fi
  apt_install_postgresql || { as_root apt-get update -qq && apt_install_postgresql; }
fi

# A cluster the package created anyway (or an earlier install): stopped, and never
# started at boot, so port 5432 and the memory stay free.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _port status _rest; do
    case "$status" in
      online*)
        echo "install-services: stopping cluster $version/$cluster"
        as_root pg_ctlcluster "$version" "$cluster" stop || true
        ;;
    esac
    conf="/etc/postgresql/$version/$cluster/start.conf"
    if [ -f "$conf" ] && ! grep -qx manual "$conf"; then
      echo manual | as_root tee "$conf" >/dev/null
    fi
  done
fi

if ! command -v redis-server >/dev/null; then
  echo "install-services: installing redis-server"
  apt-cache show redis-server >/dev/null 2>&1 || as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
    || { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }
  # Where systemd runs, the package starts a server on 6379; the tests start their own on free ports.
  if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "install-services: initdb not found after install" >&2; exit 1; }
echo "install-services: ok ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
