#!/usr/bin/env bash
# Side-by-side comparison with PyTorch and Keras (issues 8 and 17): trains each model on
# MNIST with nn-cli and with PyTorch and Keras reference scripts, same data split
# (48,000 train / 12,000 validation / 10,000 test, pixels in [0, 1]), batch 128, Adam,
# 2 threads, one after another in this run, and prints per model: median seconds per
# training epoch, training samples/s, test accuracy, peak RSS, inference samples/s at
# batch 1000, single-sample latency, and nn / peer ratios.
#
# Models: cnn (the seed CNN) and mlp (784-128-10) with the scripts in ../shared/peers;
# cnn2 (two Conv2D layers, 32 and 64 filters), lstm and gru (LSTM(128) / GRU(128) over
# the 28 image rows) and resnet (nn's resnet preset) with bench/peers/{torch,keras}_models.py
# and, for nn, examples/models/cnn2.json, the lstm preset, examples/models/gru.json and
# the resnet preset. Learning rate 1e-3, 2e-3 for lstm and gru (the lstm preset's
# default), the same in all three frameworks.
#
# Usage: bench/compare.sh [EPOCHS] [MODELS]     e.g. bench/compare.sh 3 "cnn mlp"
#        bench/compare.sh 3 all                 (cnn mlp cnn2 lstm gru resnet)
# The peers run from a local virtual environment (.venv-peers, a few GB) that this
# script creates on first use; CI never runs this script. Set PEERS="torch" to skip Keras.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-3}"
models="${2:-cnn mlp}"
[ "$models" = all ] && models="cnn mlp cnn2 lstm gru resnet"
for m in $models; do
  case "$m" in cnn|mlp|cnn2|lstm|gru|resnet) ;; *) echo "unknown model $m (cnn mlp cnn2 lstm gru resnet)" >&2; exit 2;; esac
done
case " $models " in *" cnn "*|*" mlp "*) peers_dir="$(cd ../shared/peers && pwd)";; esac
data="${NN_DATA_DIR:-$(cd .. && pwd)/shared/data}/mnist"
peers="${PEERS:-torch keras}"
out="$(mktemp -d)"
venv=.venv-peers
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy torch tensorflow-cpu
fi
cargo build --release -q -p nn-cli
nn=target/release/nn-cli
measure() { # name, command...: runs it under GNU time, keeps stdout and peak RSS
  local name="$1"; shift
  /usr/bin/time -v "$@" >"$out/$name.log" 2>"$out/$name.time" || { cat "$out/$name.log" "$out/$name.time"; exit 1; }
  sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p' "$out/$name.time" >"$out/$name.rss"
}
lr_of() { case "$1" in lstm|gru) echo 2e-3;; *) echo 1e-3;; esac; }
nn_model_of() { case "$1" in cnn2|gru) echo "examples/models/$1.json";; *) echo "$1";; esac; }
for m in $models; do
  lr="$(lr_of "$m")"
  measure "nn-$m" "$nn" --threads 2 fit --data "mnist:$data" --model "$(nn_model_of "$m")" --epochs "$epochs" \
    --batch-size 128 --lr "$lr" --out "$out/nn-$m"
  "$nn" --threads 2 evaluate --model "$out/nn-$m" --data "mnist:$data" --timing >"$out/nn-$m.eval"
  for p in $peers; do
    case "$m" in
      cnn|mlp) script=("$peers_dir/${p}_mnist.py") ;;  # Adam 1e-3 built in
      *) script=("bench/peers/${p}_models.py" --lr "$lr") ;;
    esac
    measure "$p-$m" "$venv/bin/python" "${script[@]}" --model "$m" --epochs "$epochs" --threads 2 \
      --data-dir "$data" --json "$out/$p-$m.json"
  done
done
python3 - "$out" "$epochs" "$models" "$peers" <<'PY'
import csv, json, os, re, statistics, sys
out, epochs, models, peers = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
def rss(name):
    return int(open(os.path.join(out, name + ".rss")).read().strip() or 0) / 1024
rows = []
for m in models:
    hist = list(csv.DictReader(open(os.path.join(out, f"nn-{m}", "history.csv"))))
    train_s = statistics.median(float(r["train_seconds"]) for r in hist)
    log = open(os.path.join(out, f"nn-{m}.log")).read()
    acc = float(re.findall(r"test accuracy: ([0-9.]+)", log)[-1])
    ev = open(os.path.join(out, f"nn-{m}.eval")).read()
    sps, lat = re.search(r"inference: ([0-9]+) samples/s .* latency ([0-9.]+) ms", ev).groups()
    nn = dict(framework="nn", train_s=train_s, samples_s=48000 / train_s, acc=acc * 100, rss=rss(f"nn-{m}"),
              infer=float(sps), lat=float(lat))
    rows.append((m, nn))
    for p in peers:
        j = json.load(open(os.path.join(out, f"{p}-{m}.json")))
        rows.append((m, dict(framework=p, train_s=j["train_s_median"], samples_s=j["train_samples_per_s"],
                             acc=j["epochs"][-1]["test_acc"] * 100, rss=rss(f"{p}-{m}"),
                             infer=j["infer_batch1000_samples_per_s"], lat=j["single_latency_ms_median"]), ))
lrs = ", ".join(f"{m} {'2e-3' if m in ('lstm', 'gru') else '1e-3'}" for m in models)
print(f"\n{epochs} epochs, batch 128, Adam (lr: {lrs}), 2 threads, MNIST (48,000 train / 12,000 val / 10,000 test)\n")
print("| model | framework | s per training epoch (median) | train samples/s | test accuracy % | peak RSS MiB | inference samples/s @1000 | single-sample latency ms | epoch time nn / this |")
print("|---|---|---|---|---|---|---|---|---|")
for m in models:
    nn = next(r for mm, r in rows if mm == m and r["framework"] == "nn")
    for mm, r in rows:
        if mm != m:
            continue
        ratio = nn["train_s"] / r["train_s"]
        print(f"| {m} | {r['framework']} | {r['train_s']:.2f} | {r['samples_s']:,.0f} | {r['acc']:.2f} | {r['rss']:.0f} | "
              f"{r['infer']:,.0f} | {r['lat']:.3f} | {ratio:.2f} |")
PY
echo "(raw logs in $out)"
