#!/usr/bin/env bash
# Set up the environment and run the study (or its tests). See ./run_all.sh --help.
set -euo pipefail
export HBT_CALLER_DIR="${HBT_CALLER_DIR:-$PWD}"   # relative profile paths resolve from here
cd "$(dirname "${BASH_SOURCE[0]}")"

usage() {
  cat <<'USAGE'
Usage: ./run_all.sh [PROFILE | test | setup | --help] [runner options]

  ./run_all.sh              set up, then run every notebook on the `default` profile
                            (embedded multilingual-e5-small, full data; CPU, see README)
  ./run_all.sh smoke        the same on the tiny `smoke` profile (a few minutes)
  ./run_all.sh paper        the GPU / hub-model profile (needs a network and a GPU)
  ./run_all.sh PATH.yaml    any profile file
  ./run_all.sh test         set up, then run every test: pytest (tests/) plus nbval
                            (lax) over every notebook on the smoke profile
                            (rebuilds results/smoke from scratch)
  ./run_all.sh setup        only create / update the environment
  ./run_all.sh --help       this text

Runner options (after the profile): --only NN [NN ...] runs just those notebooks,
--dry-run validates the profile and prints the plan with what of it is done,
--quiet hides cell output,
--allow-missing runs a notebook even when an earlier notebook's results are
missing, --debug shows tracebacks of expected faults (also HBT_DEBUG=1).
A relative PATH.yaml is taken from the current directory. One run per
results folder at a time (results/<profile>/.run.lock); Ctrl-C stops with
exit code 130 and the same command resumes. Exit codes and fault messages:
docs/faults.md.

Set-up creates .venv (unless a conda environment made from environment.yml is
active), installs the pinned requirements.txt plus this project (editable), and
does nothing when that is already done. Executed notebooks go to
results/<profile>/notebooks/, numbers to results/<profile>/*.csv, figures to
results/<profile>/figures/ (and figures/ for the default profile).
Environment: HBT_DATA_DIR (data folder; default ../shared/data when present),
HBT_CACHE_DIR (converted models, downloads; default ~/.cache/hybrid-batch-study).
USAGE
}

setup() {
  local stamp_src py
  stamp_src=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [[ -n "${CONDA_PREFIX:-}" && "${CONDA_DEFAULT_ENV:-}" == "hybrid-batch" ]]; then
    PY="$CONDA_PREFIX/bin/python"
    if [[ "$(cat "$CONDA_PREFIX/.hbt-setup" 2>/dev/null)" != "$stamp_src" ]]; then
      echo "== set-up: installing the project into the conda environment"
      "$PY" -m pip install -q --no-deps -r requirements-nodeps.txt
      "$PY" -m pip install -q --no-deps -e .
      echo "$stamp_src" > "$CONDA_PREFIX/.hbt-setup"
    fi
    return
  fi
  PY=".venv/bin/python"
  if [[ -f .venv/.hbt-setup && "$(cat .venv/.hbt-setup)" == "$stamp_src" ]]; then
    return
  fi
  py=$(command -v python3.11 || command -v python3)
  echo "== set-up: creating .venv with $($py --version) and installing requirements.txt"
  [[ -x .venv/bin/python ]] || "$py" -m venv .venv
  local log=.venv/setup.log
  echo "   (pip output: $log)"
  { "$PY" -m pip install --upgrade pip \
      && "$PY" -m pip install -r requirements.txt \
      && "$PY" -m pip install --no-deps -r requirements-nodeps.txt \
      && "$PY" -m pip install --no-deps -e . ; } > "$log" 2>&1 \
    || { grep -v "is ignored" "$log" | tail -30 >&2; echo "set-up failed: pip could not install the requirements (full log: $log)" >&2; exit 1; }
  "$PY" -c "import torch, transformers, papermill, faiss, ranx, lib" \
    || { echo "set-up failed: the environment does not import (pip log: $log)" >&2; exit 1; }
  echo "$stamp_src" > .venv/.hbt-setup
}

cmd="${1:-default}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  -h|--help|help) usage ;;
  setup) setup ;;
  test)
    setup
    rm -rf build/nbval results/smoke   # the notebooks under test rebuild the smoke results from scratch
    # ranx's numba kernels compile on the core pytest leaves idle (tests/warm_ranx.py; no effect on results)
    "$PY" tests/warm_ranx.py >/dev/null 2>&1 &
    "$PY" -m lib.runner smoke --prepare build/nbval >/dev/null
    exec "$PY" -m pytest tests build/nbval --nbval-lax -p no:cacheprovider --durations=15 "$@"
    ;;
  *)
    setup
    exec "$PY" -m lib.runner "$cmd" "$@"
    ;;
esac
