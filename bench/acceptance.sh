#!/usr/bin/env bash
# Acceptance runs on real data (issue 7): trains with the release nn-cli and checks
# test accuracy against the targets; prints seconds per training epoch and peak RSS.
#
# Usage: bench/acceptance.sh [DATA_DIR]   (default: $NN_DATA_DIR, else ../shared/data)
# Needs GNU time (/usr/bin/time, Debian package `time`) for peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-${NN_DATA_DIR:-../shared/data}}"
cargo build --release -q -p nn-cli
bin=target/release/nn-cli
threads="${NN_THREADS:-2}"
fail=0
printf '| command | test accuracy | target | s per training epoch | peak RSS MiB |\n|---|---|---|---|---|\n'
run() {
  local target="$1"; shift
  local log rss acc secs
  log=$(mktemp)
  /usr/bin/time -v "$bin" --threads "$threads" fit "$@" >"$log" 2>&1 || { cat "$log"; fail=1; return; }
  acc=$(sed -n 's/.*test accuracy: \([0-9.]*\).*/\1/p' "$log" | tail -1)
  secs=$(sed -n 's/.*(\([0-9.]*\) s per training epoch).*/\1/p' "$log" | tail -1)
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p' "$log")
  printf '| `nn-cli fit %s` | %s | ≥ %s | %s | %s |\n' "$*" "$acc" "$target" "$secs" "$((rss / 1024))"
  if ! awk -v a="$acc" -v t="$target" 'BEGIN { exit !(a >= t) }'; then
    echo "FAILED: test accuracy $acc below $target for: nn-cli fit $*"; cat "$log"; fail=1
  fi
  rm -f "$log"
}
run 0.95 --data digits
run 0.90 --data "csv:$data/iris/iris.csv" --epochs 50 --batch-size 16
run 0.93 --data "csv:$data/breast_cancer/breast_cancer.csv"
run 0.965 --data "mnist:$data/mnist" --model mlp --epochs 5 --batch-size 128
run 0.98 --data "mnist:$data/mnist" --model cnn --epochs 3 --batch-size 128
exit $fail
