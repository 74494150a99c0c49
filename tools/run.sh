#!/usr/bin/env bash
# One entry point for setting up and running mmal.
#
#   bash tools/run.sh setup            create/refresh .venv only
#   bash tools/run.sh demo  [args...]  set up, then run the toy demo (tools/demo.py)
#   bash tools/run.sh test  [args...]  set up, then run the test suite (pytest, 2 workers: TEST_WORKERS)
#   bash tools/run.sh lint             set up, then check style and imports (ruff) and types (mypy on mmal/),
#                                      both configured in pyproject.toml
#
# Idempotent: a second run finds everything in place and only checks it.
# Environment knobs: PYTHON (interpreter used to create .venv, default python3.11 or python3),
# MAX_JOBS (parallel compile jobs for the mmcv build, default: number of cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
MMCV_VERSION=2.1.0
TORCH_VERSION=2.13.0
WHEEL="$ROOT/../shared/wheels/mmcv-${MMCV_VERSION}-cp311-cp311-linux_x86_64.whl"
WHEEL_SHA256=b2ac039474ed1f381c72cd9ceb7ae6b821a65475547d186b5e4cbe37e28e4367

say() { printf '[mmal setup] %s\n' "$*"; }
pip_install() { "$PY" -m pip install --quiet "$@"; }

make_venv() {
  if [ -x "$PY" ]; then return; fi
  local base="${PYTHON:-}"
  if [ -z "$base" ]; then
    if command -v python3.11 >/dev/null 2>&1; then base=python3.11; else base=python3; fi
  fi
  if ! command -v "$base" >/dev/null 2>&1; then
    echo "mmal setup: no Python interpreter '$base' found; install Python 3.11 or set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  say "creating .venv with $("$base" --version 2>&1)"
  "$base" -m venv "$VENV"
}

install_torch() {
  if "$PY" -c 'import torch' >/dev/null 2>&1; then
    say "torch $("$PY" -c 'import torch; print(torch.__version__)') already present: kept"
    return
  fi
  say "installing torch==$TORCH_VERSION (CPU build)"
  pip_install "torch==$TORCH_VERSION"
}

mmcv_ok() {
  "$PY" - <<PYEOF >/dev/null 2>&1
import mmcv, mmcv.ops
from mmcv.ops import nms  # needs the compiled extension
assert mmcv.__version__ == "$MMCV_VERSION"
PYEOF
}

wheel_matches() {
  [ -f "$WHEEL" ] || return 1
  "$PY" -c "
import sys, torch
ok = sys.version_info[:2] == (3, 11) and torch.__version__.split('+')[0] == '$TORCH_VERSION' and torch.version.cuda is None
sys.exit(0 if ok else 1)" || return 1
  echo "$WHEEL_SHA256  $WHEEL" | sha256sum --check --status
}

build_mmcv() {
  local log="$VENV/mmcv-build.log" jobs="${MAX_JOBS:-$(nproc)}"
  say "building mmcv $MMCV_VERSION with its compiled ops from source ($jobs jobs; about 19 min on 2 cores)"
  say "full build log: $log"
  local start=$SECONDS
  MMCV_WITH_OPS=1 MAX_JOBS="$jobs" "$PY" -m pip install -v --no-build-isolation --no-deps \
    --no-binary mmcv "mmcv==$MMCV_VERSION" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null || break
    local done_objs
    done_objs=$(grep -cE '^\[[0-9]+/[0-9]+\]|(c\+\+|g\+\+|gcc) .* -c ' "$log" || true)
    say "  mmcv build still running: $((SECONDS - start)) s elapsed, $done_objs compile steps so far"
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    echo "mmal setup: the mmcv build failed (last lines above, full log in $log); check that gcc/g++ are installed and retry." >&2
    exit 1
  fi
  say "mmcv built in $((SECONDS - start)) s"
}

install_mmcv() {
  if mmcv_ok; then say "mmcv $MMCV_VERSION with ops already present"; return; fi
  # Build requirements of the mmcv sdist (setuptools<82 still ships pkg_resources).
  pip_install "setuptools<82" wheel ninja "numpy>=2,<3"
  if wheel_matches; then
    say "installing the prebuilt mmcv wheel from ../shared/wheels (matches this Python and torch)"
    pip_install --no-deps "$WHEEL"
  else
    build_mmcv
  fi
  mmcv_ok || { echo "mmal setup: mmcv $MMCV_VERSION was installed but 'import mmcv.ops' fails; delete .venv and rerun." >&2; exit 1; }
}

install_deps() {
  local stamp="$VENV/.mmal-deps"
  local want
  want=$(cat "$ROOT/requirements/runtime.txt" "$ROOT/requirements/tests.txt" | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "python dependencies up to date"
    return
  fi
  say "installing mmengine, mmdet and the other dependencies"
  # mmengine and mmcv ask for opencv-python, which needs libGL; the headless build is installed instead.
  pip_install --no-deps "mmengine==0.10.7" "mmdet==3.3.0"
  pip_install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
  say "(pip's note that opencv-python is missing is expected: opencv-python-headless provides cv2)"
  echo "$want" >"$stamp"
}

install_mmal() {
  if "$PY" -c 'import importlib.metadata as m; m.version("mmal")' >/dev/null 2>&1; then return; fi
  say "installing mmal itself (editable)"
  pip_install --no-deps --no-build-isolation -e "$ROOT"
}

setup() {
  make_venv
  install_torch
  install_deps
  install_mmcv
  install_mmal
  say "environment ready in .venv"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  demo) setup; exec "$PY" "$ROOT/tools/demo.py" "$@" ;;
  # Two pytest workers (one per core of the reference machine), a test file per worker at a time so that
  # module fixtures are built once; TEST_WORKERS=0 runs in one process.
  test) setup; exec "$PY" -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@" ;;
  lint) setup
        "$PY" -m ruff check "$ROOT/mmal" "$ROOT/tools" "$ROOT/tests" "$ROOT/configs"
        exec "$PY" -m mypy --config-file "$ROOT/pyproject.toml" ;;
  *) echo "usage: bash tools/run.sh {setup|demo|test|lint} [args...]" >&2; exit 2 ;;
esac
