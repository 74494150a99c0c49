#!/usr/bin/env bash
# Run tools/al_train.py in NPROC processes (one per GPU; CPU processes with gloo where there is no CUDA).
#   bash tools/dist_train.sh CONFIG NPROC [al_train.py arguments...]
# PORT (default 29500) sets the rendezvous port on 127.0.0.1.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash tools/dist_train.sh CONFIG NPROC [al_train.py arguments...]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" -m torch.distributed.run --nproc_per_node="$NPROC" --master_addr=127.0.0.1 \
  --master_port="${PORT:-29500}" "$ROOT/tools/al_train.py" "$CONFIG" --launcher pytorch "$@"
