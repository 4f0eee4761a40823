#!/usr/bin/env bash
# Install the d3rlpy baselines of benchmarks/quality.py into the ACTIVE virtual environment
# without letting pip touch torch, gymnasium or anything else already installed.
#
# d3rlpy 2.8.1 pins gymnasium==1.0.0 in its metadata (and imports `gym.spaces`), so it is installed
# with --no-deps, then only the packages it really imports are added, under a constraints file that
# freezes every package already in the venv at its current version.
#
#   . .venv/bin/activate && bash benchmarks/setup.sh
set -euo pipefail

if [[ -z "${VIRTUAL_ENV:-}" ]]; then
  echo "benchmarks/setup.sh: activate the project's venv first (. .venv/bin/activate)" >&2
  exit 1
fi
PY="$VIRTUAL_ENV/bin/python"
versions() {
  "$PY" -c 'import torch, gymnasium, numpy; print(torch.__version__, gymnasium.__version__, numpy.__version__)'
}

before="$(versions)"
echo "before: torch gymnasium numpy = $before"

# Freeze what is installed: pip may add packages but never up- or downgrade these.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$PY" -m pip freeze --exclude-editable | grep -v -e '^-e ' -e ' @ ' >"$constraints" || true

"$PY" -m pip install --no-deps "d3rlpy==2.8.1"
# gym without its gym_notices dependency, which prints a deprecation banner on every import of gym,
# and Stable-Baselines3 imports gym whenever it is installed: every qipo-zoo command would print it
"$PY" -m pip install --no-deps "gym==0.26.2"
"$PY" -m pip uninstall -y -q gym_notices 2>/dev/null || true
"$PY" -m pip install -c "$constraints" structlog colorama dataclasses-json scikit-learn cloudpickle

after="$(versions)"
echo "after:  torch gymnasium numpy = $after"
if [[ "$before" != "$after" ]]; then
  echo "benchmarks/setup.sh: torch / gymnasium / numpy changed ($before -> $after)" >&2
  exit 1
fi
"$PY" -c 'import d3rlpy; print("d3rlpy", d3rlpy.__version__, "imports fine")'
