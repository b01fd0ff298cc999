#!/usr/bin/env bash
# nn's GPT next to its PyTorch reference (bench/peers/torch_gpt.py) on the same
# token windows: nn-cli fit trains the BPE tokenizer and the model, then the torch
# script reads the tokenizer.json nn saved, rebuilds the same training and
# validation windows (contiguous row split: no --holdout-groups, which torch_gpt.py
# does not reproduce) and trains the same architecture with the same Adam lr, batch
# size, context and epochs. Prints tokens/s and validation loss of both and the ratios.
#
# Usage: bench/gpt.sh [DATA.csv.gz] (default $NN_DATA_DIR/kjv/verses.csv.gz)
# Environment: NN (nn-cli binary, default target/release/nn-cli), PY (python with
# torch and tokenizers, default target/peers-venv/bin/python), THREADS (2), EPOCHS (1),
# CONTEXT (64), D_MODEL (64), HEADS (4), LAYERS (2), BPE (2048), BATCH (32), LR (0.003),
# OUT (work folder, default a fresh temporary one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-${NN_DATA_DIR:-/work/shared/data}/kjv/verses.csv.gz}
data=$(cd "$(dirname "$data")" && pwd)/$(basename "$data") # the torch run works in bench/peers
NN=${NN:-$root/target/release/nn-cli}
PY=${PY:-$root/target/peers-venv/bin/python}
THREADS=${THREADS:-2} EPOCHS=${EPOCHS:-1} CONTEXT=${CONTEXT:-64} D_MODEL=${D_MODEL:-64}
HEADS=${HEADS:-4} LAYERS=${LAYERS:-2} BPE=${BPE:-2048} BATCH=${BATCH:-32} LR=${LR:-0.003}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"

echo "== nn ($NN, $THREADS threads) on $data"
"$NN" --threads "$THREADS" fit --model gpt --data "text:$data" --text-column text \
  --test-split 0.1 --validation-split 0.1 --tokenizer "bpe:$BPE" --context "$CONTEXT" \
  --d-model "$D_MODEL" --heads "$HEADS" --layers "$LAYERS" --batch-size "$BATCH" \
  --optimizer adam --lr "$LR" --epochs "$EPOCHS" --seed 42 --out "$OUT/nn" | tee "$OUT/nn.log"
nn_tokens=$(sed -n 's/.*; \([0-9]*\) training tokens.*/\1/p' "$OUT/nn.log")
nn_params=$(sed -n 's/^model gpt: \([0-9]*\) parameters.*/\1/p' "$OUT/nn.log")
# history.csv: epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,train_seconds,val_seconds
read -r nn_tps nn_val < <("$PY" -c 'import csv,statistics,sys; r=list(csv.DictReader(open(sys.argv[1])))
print(int(sys.argv[2]) / statistics.median(float(e["train_seconds"]) for e in r), r[-1]["val_loss"])' \
  "$OUT/nn/history.csv" "$nn_tokens")

echo "== torch ($PY, $THREADS threads)"
(cd "$root/bench/peers" && "$PY" torch_gpt.py --data "$data" --tokenizer "$OUT/nn/tokenizer.json" \
  --test-split 0.1 --validation-split 0.1 --context "$CONTEXT" --d-model "$D_MODEL" --heads "$HEADS" \
  --layers "$LAYERS" --batch-size "$BATCH" --lr "$LR" --epochs "$EPOCHS" --threads "$THREADS" \
  --nn-params "$nn_params" --json "$OUT/torch.json") | tee "$OUT/torch.log"
read -r t_tps t_whole t_val t_tokens < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(d["train_tokens_per_s_median"], d["train_tokens_per_s_whole"], d["val_loss"], d["train_tokens"])' "$OUT/torch.json")

echo "== summary ($THREADS threads; $nn_params parameters; training tokens nn $nn_tokens, torch $t_tokens)"
awk -v a="$nn_tps" -v b="$t_tps" -v c="$t_whole" -v va="$nn_val" -v vb="$t_val" 'BEGIN {
  printf "tokens/s  nn %.0f (epoch)  torch %.0f (median step) / %.0f (epoch)  nn/torch %.2f (vs epoch %.2f)\n", a, b, c, a / b, a / c
  printf "val loss  nn %.4f  torch %.4f nats/token  nn/torch %.3f\n", va, vb, va / vb }'
echo "files in $OUT"
