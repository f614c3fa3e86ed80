#!/usr/bin/env bash
# Study v2 on a CUDA GPU: every tier (LR sweep, base grid x 3 seeds, untuned grid, long tier, context
# control), several worker processes sharing the GPU, resuming from any earlier journal.
#
#   scripts/run_study_v2_gpu.sh DATA_DIR OUT_DIR [WORKERS] [DEADLINE_S]
#
# DATA_DIR: prepared data with story tables (`python -m starmind_lib.training.study prepare --source local
#           --data-dir ../shared/data/tinystories --out data/runs/study_data`; carry it to the GPU machine).
# OUT_DIR:  receives study_v2.jsonl (every run of this machine and of the journal it started from) and
#           study.log. Merge here with `python -m starmind_lib.training.study merge OUT_DIR/study_v2.jsonl`.
# DEADLINE_S: stop scheduling new runs after this many seconds (default 780), so the journal always comes
#           back; STUDY_PREV=path/to/study_v2.jsonl starts from an earlier journal (only the rest trains).
set -euo pipefail
DATA_DIR=${1:?usage: run_study_v2_gpu.sh DATA_DIR OUT_DIR [WORKERS] [DEADLINE_S]}
OUT_DIR=${2:?usage: run_study_v2_gpu.sh DATA_DIR OUT_DIR [WORKERS] [DEADLINE_S]}
WORKERS=${3:-14}
DEADLINE_S=${4:-780}
WORK=${STUDY_WORK_DIR:-/tmp/starmind_study_v2}
PY=${PYTHON:-python3}
export STARMIND_GIT_COMMIT=${STARMIND_GIT_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
# ...and a hash of its uncommitted changes (empty for a clean tree), so the rows say exactly what ran
_DIFF=$(git diff HEAD --no-color --no-ext-diff 2>/dev/null || true)
export STARMIND_GIT_DIFF=${STARMIND_GIT_DIFF:-$([ -n "$_DIFF" ] && printf '%s\n' "$_DIFF" | sha256sum | cut -c1-16)}
PARAMS=${STUDY_PARAMS:-"{\"device\": \"cuda\", \"workers\": $WORKERS}"}
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR" "$WORK/results/sweep"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  if [ -n "${STUDY_PREV:-}" ]; then "$PY" -m starmind_lib.training.study merge "$STUDY_PREV" --results-dir "$WORK/results"; fi
  "$PY" -m starmind_lib.training.study run --data "$DATA_DIR" --results-dir "$WORK/results" \
      --runs-dir "$WORK/runs" --profile full --params "$PARAMS" --deadline-s "$DEADLINE_S"
  cp "$WORK/results/sweep/study_v2.jsonl" "$OUT_DIR/"
} 2>&1 | tee "$OUT_DIR/study.log"
