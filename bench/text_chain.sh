#!/usr/bin/env bash
# The King James Version chain of issue 18, measured: a small GPT pretrained on the
# training chapters' verses, then verses classified into the 8 divisions (50 labels
# per class, and all labels) from scratch, fully fine-tuned, with LoRA, and as a
# linear probe, 3 seeds each; test accuracy on held-out chapters (the same chapters
# for every run: --holdout-groups book,chapter --split-seed 1).
#
#   cargo build --release -p nn-cli
#   NN_DATA_DIR=/work/shared/data bench/text_chain.sh [OUT_DIR]
#
# Environment: EPOCHS_LM (pretraining epochs, default 3), EPOCHS_FEW (50 per class,
# default 10), EPOCHS_ALL (all labels, default 1), SEEDS (50 per class, default
# "1 2 3"), SEEDS_ALL (all labels, default "1": one epoch of all labels takes minutes
# on 2 threads), REGIMES (default "few all"), METHODS (default "scratch full lora probe").
set -euo pipefail
NN=${NN:-target/release/nn-cli}
KJV=${NN_DATA_DIR:?set NN_DATA_DIR}/kjv/verses.csv.gz
OUT=${1:-runs/kjv}
EPOCHS_LM=${EPOCHS_LM:-3}
EPOCHS_FEW=${EPOCHS_FEW:-10}
EPOCHS_ALL=${EPOCHS_ALL:-1}
SEEDS=${SEEDS:-1 2 3}
SEEDS_ALL=${SEEDS_ALL:-1}
REGIMES=${REGIMES:-few all}
METHODS=${METHODS:-scratch full lora probe}
POOLING=${POOLING:-mean}
TAG=""
[ "$POOLING" = mean ] || TAG="-ct"
mkdir -p "$OUT"
SPLIT=(--holdout-groups book,chapter --test-split 0.1 --split-seed 1)
SIZE=(--context 64 --d-model 64 --heads 4 --layers 2)

# (a) Pretraining on the training chapters (90 %); validation: their last 10 % of verses.
if [ ! -f "$OUT/gpt/model.json" ]; then
  "$NN" --threads 2 fit --data "text:$KJV" --text-column text "${SPLIT[@]}" --validation-split 0.1 \
    --model gpt --tokenizer bpe:2048 "${SIZE[@]}" --epochs "$EPOCHS_LM" --batch-size 32 --lr 3e-3 \
    --verbose 2 --out "$OUT/gpt" | tee "$OUT/gpt.log"
fi

# (b) Classification into the 8 divisions.
classify() { # name seed epochs per_class_flag extra...
  local name=$1$TAG seed=$2 epochs=$3 per=$4; shift 4
  "$NN" --threads 2 fit --data "csv:$KJV" --text-column text --target division "${SPLIT[@]}" \
    --validation-split 0.05 --model transformer-classifier --pooling "$POOLING" $per --epochs "$epochs" \
    --batch-size 32 --seed "$seed" --verbose 2 "$@" > "$OUT/$name-$seed.log"
  echo "$name seed $seed: $(grep -o 'test accuracy: [0-9.]*' "$OUT/$name-$seed.log") $(grep -o 'trainable parameters: .*' "$OUT/$name-$seed.log")"
}
for regime in $REGIMES; do
  if [ $regime = few ]; then E=$EPOCHS_FEW; PER="--per-class 50"; S=$SEEDS; else E=$EPOCHS_ALL; PER=""; S=$SEEDS_ALL; fi
  for seed in $S; do
    for m in $METHODS; do
      case $m in
        scratch) classify "$regime-scratch" "$seed" "$E" "$PER" --tokenizer "$OUT/gpt/tokenizer.json" "${SIZE[@]}" --lr 1e-3 ;;
        full) classify "$regime-full" "$seed" "$E" "$PER" --init-from "$OUT/gpt" --lr 3e-4 ;;
        lora) classify "$regime-lora" "$seed" "$E" "$PER" --init-from "$OUT/gpt" --lora-rank 4 --lr 3e-3 ;;
        probe) classify "$regime-probe" "$seed" "$E" "$PER" --init-from "$OUT/gpt" --freeze body --lr 3e-3 ;;
        *) echo "unknown method $m" >&2; exit 2 ;;
      esac
    done
  done
done | tee -a "$OUT/summary.txt"
