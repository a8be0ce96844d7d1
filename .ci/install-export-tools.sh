#!/usr/bin/env bash
# The orchestrators' own tools that tests/export validates exports with, each in its
# own venv at the repo root (git-ignored): their pins clash with nbops's .venv.
#
#   .venv-airflow  apache-airflow (+ the cncf.kubernetes provider, so a DAG exported
#                  with --image loads in a DagBag). Not papermill: the exported DAG
#                  runs the papermill of nbops's .venv (--papermill), whose kernel has
#                  nbops and the notebook's packages.
#   .venv-kfp      kfp, which pins protobuf<7 (nbops's .venv has 7).
#
# Airflow's constraints files live on GitHub, which CI cannot reach: the versions
# below are pinned instead and resolve from PyPI alone. uv installs them (~10x
# pip's speed; a cold install of both takes about a minute here). Idempotent: a venv
# whose stamp names the same pins is left alone.
#
#   bash .ci/install-export-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
AIRFLOW_PINS=("apache-airflow==3.3.2" "apache-airflow-providers-cncf-kubernetes==10.25.0")
KFP_PINS=("kfp==2.17.3")
UV_VERSION="uv==0.13.9"

start=$(date +%s)

uv_bin() {
  # uv in a venv of its own (once), so neither tool venv carries it.
  local tools=.venv-export-uv
  if [ ! -x "$tools/bin/uv" ]; then
    "$PYTHON" -m venv "$tools"
    "$tools/bin/pip" install -q "$UV_VERSION"
  fi
  echo "$tools/bin/uv"
}

make_venv() {  # make_venv DIR PINS...
  local dir=$1; shift
  local stamp="$dir/.nbops-pins"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$*" ]; then
    echo "install-export-tools: $dir is up to date ($*)"
    return
  fi
  local uv; uv=$(uv_bin)
  [ -x "$dir/bin/python" ] || "$uv" venv -q --python "$PYTHON" "$dir"
  echo "install-export-tools: $dir <- $*"
  "$uv" pip install -q --python "$dir/bin/python" "$@"
  echo "$*" > "$stamp"
}

make_venv .venv-airflow "${AIRFLOW_PINS[@]}"
make_venv .venv-kfp "${KFP_PINS[@]}"
.venv-airflow/bin/python -c "import airflow; print('install-export-tools: airflow', airflow.__version__)"
.venv-kfp/bin/python -c "import kfp; print('install-export-tools: kfp', kfp.__version__)"
echo "install-export-tools: done in $(( $(date +%s) - start )) s"
