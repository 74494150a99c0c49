#!/usr/bin/env bash
# Run tools/al_train.py under Slurm, one task per GPU (as mmdet's tools/slurm_train.sh):
#   [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#     bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [al_train.py arguments...]
# Every task reads its rank from SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID; the first node of the
# job is the rendezvous (MASTER_ADDR, from scontrol, unless set) on MASTER_PORT (default 29500).
# The work dir must be on a filesystem every node sees.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [al_train.py arguments...]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
# shellcheck disable=SC2086  # SRUN_ARGS holds several arguments
exec srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
  --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  "$PY" -u "$ROOT/tools/al_train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "$@"
