#!/usr/bin/env bash
# Train the full architecture grid on a CUDA GPU, several worker processes sharing it.
#
#   scripts/run_study_gpu.sh DATA_DIR OUT_DIR [WORKERS] [DEADLINE_S]
#
# DATA_DIR: prepared token data (`python -m starmind_lib.training.sweep prepare --grid full --source local
#           --data-dir ../shared/data/tinystories --out build/study_data`): token arrays + decoding tables,
#           so this machine needs only python3 with torch, numpy, pandas, pyarrow, safetensors, tqdm.
# OUT_DIR:  receives study-table.tar (results/sweep/variants.{jsonl,parquet}) and models-NN.tar
#           (runs/models/<variant_id>/{model.safetensors,config.json,metrics.csv}), each < 16 MiB,
#           plus study.log. Unpack here with
#           `python -m starmind_lib.training.sweep unpack --files OUT_DIR --results-dir data/results --runs-dir data/runs`.
# DEADLINE_S: stop training after this many seconds and pack whatever finished (default 420);
#           to continue a cut-off run on a fresh machine, put its tar files in an ignored folder of the
#           repo, carry it, and set STUDY_PREV=that/folder: they are unpacked first, only the rest trains.
set -euo pipefail
DATA_DIR=${1:?usage: run_study_gpu.sh DATA_DIR OUT_DIR [WORKERS] [DEADLINE_S]}
OUT_DIR=${2:?usage: run_study_gpu.sh DATA_DIR OUT_DIR [WORKERS] [DEADLINE_S]}
WORKERS=${3:-12}
DEADLINE_S=${4:-420}
WORK=${STUDY_WORK_DIR:-/tmp/starmind_study}
PY=${PYTHON:-python3}
# The machine that trains may hold a copy of the tree without its git history: say which commit it is.
export STARMIND_GIT_COMMIT=${STARMIND_GIT_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
# ...and a hash of its uncommitted changes (empty for a clean tree), so the rows say exactly what ran
_DIFF=$(git diff HEAD --no-color --no-ext-diff 2>/dev/null || true)
export STARMIND_GIT_DIFF=${STARMIND_GIT_DIFF:-$([ -n "$_DIFF" ] && printf '%s\n' "$_DIFF" | sha256sum | cut -c1-16)}
# STUDY_PARAMS overrides the sweep parameters (a CPU check: '{"grid": "smoke", "device": "cpu", ...}')
PARAMS=${STUDY_PARAMS:-"{\"grid\": \"full\", \"device\": \"cuda\", \"workers\": $WORKERS, \"backend\": \"process\"}"}
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  if [ -n "${STUDY_PREV:-}" ]; then
    "$PY" -m starmind_lib.training.sweep unpack --files "$STUDY_PREV" --results-dir "$WORK/results" --runs-dir "$WORK/runs"
  fi
  "$PY" -m starmind_lib.training.sweep run --data "$DATA_DIR" --out "$WORK" --profile full \
      --params "$PARAMS" \
      --deadline-s "$DEADLINE_S" --pack "$OUT_DIR"
  du -sh "$OUT_DIR"/* || true
} 2>&1 | tee "$OUT_DIR/study.log"
