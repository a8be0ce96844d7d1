#!/usr/bin/env bash
# Everything the JupyterLab extension and its browser tests need on a fresh
# machine: Chromium (Debian package, no browser downloads), node modules, the
# prebuilt extension in nbops/labextension, linked into the active Python env.
# Idempotent: a second run only checks stamps (about a second).
#
#   .ci/install-lab.sh            # from anywhere; uses .venv if it exists
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
# --no-install-recommends: the headless browser and node, not the fonts, desktop
# integration and docs they recommend (hundreds of MB Playwright never uses).
apt_install() {
  [ "$apt_updated" = 1 ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# 1. Chromium for tests/browser (Playwright drives /usr/bin/chromium headless).
#    fonts-liberation: without any font, pages render with no text and
#    role/name locators find nothing; it is only a recommend of chromium.
if [ ! -x /usr/bin/chromium ]; then
  echo "install-lab: installing chromium"
  apt_install chromium fonts-liberation
fi

# 2. Node (the builder needs node >= 18; jlpm itself comes with jupyter_builder).
if ! command -v node >/dev/null; then
  echo "install-lab: installing nodejs"
  apt_install nodejs
fi
if ! command -v jlpm >/dev/null; then
  echo "install-lab: jlpm not found: pip install 'jupyter-builder>=1.2,<2' (or jupyterlab) first" >&2
  exit 1
fi

# 3. node_modules, reinstalled only when package.json or yarn.lock changed.
stamp=node_modules/.nbops-install-stamp
want=$(cat package.json yarn.lock .yarnrc.yml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "install-lab: jlpm install"
  YARN_ENABLE_IMMUTABLE_INSTALLS=false jlpm install
  echo "$want" > "$stamp"
fi

# 4. The prebuilt extension, rebuilt only when a source is newer than the output.
out=nbops/labextension/static/style.js
if [ ! -f "$out" ] || [ -n "$(find labextension/src labextension/style package.json tsconfig.json -newer "$out" -print -quit)" ]; then
  echo "install-lab: jlpm build:prod"
  jlpm build:prod
fi

# 5. Point the env's labextensions/nbops at the build (an editable install
#    copied whatever existed when pip ran; a link stays current).
if python -c "import nbops" 2>/dev/null; then
  prefix=$(python -c "import sys; print(sys.prefix)")
  link="$prefix/share/jupyter/labextensions/nbops"
  if [ "$(readlink -f "$link" 2>/dev/null)" != "$(readlink -f nbops/labextension)" ]; then
    jupyter-builder develop . --overwrite
  fi
fi
echo "install-lab: ok"
