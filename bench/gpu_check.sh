#!/usr/bin/env bash
# The GPU path, measured (issue 17): one command on a machine with torch and transformers
# alone, no install step, offline. Each section runs in its own process under a time limit;
# one that fails or runs out of time is reported and the next one runs. The whole check
# stops within GPU_CHECK_BUDGET_S seconds (default 450: under 8 minutes; 800 with --tiny)
# and ends with a summary block whose last line is the MFU of teacher fine-tuning.
#
#   bash bench/gpu_check.sh            # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh --tiny     # anywhere: every section in its small CPU mode
#
# Environment: PYTHON (default python3, else python), GPU_CHECK_BUDGET_S, GPU_PEAK_TFLOPS
# (the bf16 dense peak, for a card bench/gpu_check.py does not know), GPU_CHECK_COMPILE=0
# (skip the torch.compile MFU variant).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-$(command -v python3 || command -v python)}
TINY=()
[ "${1:-}" = "--tiny" ] && TINY=(--tiny)
# 450 s on a GPU; a tiny run on a busy CI machine may take longer, which is no GPU time.
BUDGET_S=${GPU_CHECK_BUDGET_S:-$([ ${#TINY[@]} -gt 0 ] && echo 800 || echo 450)}
SUMMARY=$(mktemp /tmp/gpu_check.XXXXXX)
trap 'rm -f "$SUMMARY"' EXIT
START=$(date +%s)

# section TITLE LIMIT_S ARGS...: run `gpu_check.py ARGS` within LIMIT_S (and the budget).
section() {
  local title=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - ($(date +%s) - START) - 15))  # 15 s kept for the summary
  echo
  echo "===== $title ====="
  if [ "$left" -lt 20 ]; then
    echo "SKIPPED: the ${BUDGET_S} s budget is spent"
    "$PY" bench/gpu_check.py --summary "$SUMMARY" failed "$title (no time left)"
    return
  fi
  # Tiny runs are for CPUs in CI, which may be busy: only the budget bounds them.
  [ ${#TINY[@]} -gt 0 ] && limit=$((limit * 3))
  [ "$limit" -gt "$left" ] && limit=$left
  local began rc
  began=$(date +%s)
  timeout -k 10 "$limit" "$PY" bench/gpu_check.py --summary "$SUMMARY" ${TINY[@]+"${TINY[@]}"} "$@"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    local why="exit $rc"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="over its ${limit} s limit"
    echo "FAILED: $title ($why); going on"
    "$PY" bench/gpu_check.py --summary "$SUMMARY" failed "$title ($why)"
  fi
  echo "----- $title: $(($(date +%s) - began)) s"
}

# The key figures first (a section cut by the budget loses least), the optional extra last.
section "environment" 60 env
section "pytest -m gpu" 120 tests
section "trial: classification (BERT-base shape teacher, FEVER)" 90 trial --family encoder
section "trial: seq2seq (T5-base shape teacher, NQ)" 120 trial --family seq2seq
section "MFU: teacher fine-tuning, T5-large shape" 90 mfu --variants autocast,bf16
section "throughput: ours against transformers.Trainer (FEVER)" 120 throughput
section "meter: measured against estimated" 100 meter
if [ "${GPU_CHECK_COMPILE:-1}" = 1 ] && [ ${#TINY[@]} -eq 0 ]; then
  section "MFU: the same with each block compiled (torch.compile)" 150 mfu --variants compile --batch 32
fi
echo "(total $(($(date +%s) - START)) s)" >&2
# Exit status 1 when a section failed or was cut.
"$PY" bench/gpu_check.py --summary "$SUMMARY" summary
