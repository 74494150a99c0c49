#!/usr/bin/env bash
# Run tools/al_train.py in NPROC processes per node (one per GPU; CPU processes with gloo where there
# is no CUDA), on one node or several:
#   bash tools/dist_train.sh CONFIG NPROC [al_train.py arguments...]
# Several nodes, as mmdet's script: run it on every node with the same MASTER_ADDR and PORT,
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.1.1.1 PORT=29500 bash tools/dist_train.sh CONFIG 8 --work-dir W
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.1.1.1 PORT=29500 bash tools/dist_train.sh CONFIG 8 --work-dir W
# NNODES (default 1), NODE_RANK (default 0), MASTER_ADDR (default 127.0.0.1), PORT (default 29500).
# The work dir must be on a filesystem every node sees; nothing else is shared.
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
exec "$PY" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --nproc_per_node="$NPROC" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  "$ROOT/tools/al_train.py" "$CONFIG" --launcher pytorch "$@"
