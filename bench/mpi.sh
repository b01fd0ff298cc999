#!/usr/bin/env bash
# Data-parallel training side by side: 1 process × 2 threads, then `mpirun -np 2`
# ranks × 1 thread, twice each, on MNIST (batch 128, 3 epochs). Prints each run's
# epoch times (from history.csv), the final val accuracy, and the all-reduce line rank
# 0 prints. Needs nn-cli built with `--features mpi` and Open MPI's mpirun.
#
#   bench/mpi.sh [DATA_DIR] [NN_CLI]     (defaults: ../shared/data, target/release/nn-cli)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data}/mnist"
nn="${2:-${CARGO_TARGET_DIR:-target}/release/nn-cli}"
"$nn" --version | grep -q "MPI: compiled in" || { echo "error: $nn was built without --features mpi" >&2; exit 1; }
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for m in mlp cnn; do
  for rep in 1 2; do
    "$nn" --threads 2 fit --data "mnist:$data" --model "$m" --epochs 3 --batch-size 128 --verbose 0 --no-test \
      --out "$work/$m-1x2-$rep" >"$work/$m-1x2-$rep.log" 2>&1
    mpirun "${root[@]}" -np 2 "$nn" --threads 1 fit --data "mnist:$data" --model "$m" --epochs 3 --batch-size 128 \
      --verbose 0 --no-test --out "$work/$m-2x1-$rep" >"$work/$m-2x1-$rep.log" 2>&1
  done
  for cfg in 1x2 2x1; do
    for rep in 1 2; do
      printf '%s %s run %s, s per epoch: ' "$m" "$cfg" "$rep"
      python3 - "$work/$m-$cfg-$rep/history.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(" ".join("%.2f" % float(r["train_seconds"]) for r in rows), " val_accuracy", rows[-1]["val_accuracy"][:6])
PY
      grep "data-parallel" "$work/$m-$cfg-$rep.log" || true
    done
  done
done
