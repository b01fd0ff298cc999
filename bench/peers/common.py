"""Data and bookkeeping shared by torch_models.py and keras_models.py.

The data protocol is the one bench/compare.sh uses for nn and for the reference
scripts of the seed CNN and the MLP: MNIST from the four gzipped IDX files, pixels
as float32 in [0, 1], training on the first 48,000 training images, validation on
the last 12,000 (what Keras's `validation_split=0.2` holds out, and nn-cli's default
split), test accuracy on the 10,000 test images.
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time
from pathlib import Path

import numpy as np

BATCH = 128
N_TRAIN = 48_000
MODELS = ("cnn2", "lstm", "gru", "resnet")
# The learning rate of each model, the same in nn, PyTorch and Keras: Adam 1e-3, but
# 2e-3 for the recurrent models (nn's lstm preset default, used for the GRU as well).
DEFAULT_LR = {"cnn2": 1e-3, "lstm": 2e-3, "gru": 2e-3, "resnet": 1e-3}

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def read_idx_gz(path):
    """One IDX file of unsigned bytes as a numpy array of its declared shape."""
    raw = gzip.open(path, "rb").read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist_splits(data_dir, limit=None):
    """(x_train, y_train, x_val, y_val, x_test, y_test): x float32 [n, 28, 28] in [0, 1],
    y int64. `limit` (smoke tests only) keeps the first `limit` training samples and at
    most `limit` validation and test samples."""
    d = Path(data_dir or os.environ.get("MNIST_DIR") or Path(__file__).resolve().parents[3] / "shared/data/mnist")
    xtr, ytr, xte, yte = (read_idx_gz(d / f) for f in IDX_FILES)
    if xtr.shape != (60_000, 28, 28) or xte.shape != (10_000, 28, 28):
        raise SystemExit(f"{d}: unexpected MNIST shapes {xtr.shape}, {xte.shape}")
    scale = lambda a: a.astype(np.float32) / np.float32(255.0)  # noqa: E731
    parts = [scale(xtr[:N_TRAIN]), ytr[:N_TRAIN].astype(np.int64), scale(xtr[N_TRAIN:]),
             ytr[N_TRAIN:].astype(np.int64), scale(xte), yte.astype(np.int64)]
    if limit:
        parts = [p[:limit] for p in parts]
    return parts


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


class Noise:
    """CPU seconds that other processes used during a section (busy time of the whole
    machine from /proc/stat less this process's own), and steal time: a flag for runs
    disturbed by other work on a shared machine."""

    @staticmethod
    def snap():
        hz = os.sysconf("SC_CLK_TCK")
        try:
            f = [int(v) for v in open("/proc/stat").readline().split()[1:]]
        except OSError:
            f = [0] * 8
        own = os.times()
        busy = (f[0] + f[1] + f[2] + f[5] + f[6]) / hz
        return busy, (f[7] if len(f) > 7 else 0) / hz, own.user + own.system

    @staticmethod
    def since(a, b=None):
        b = b or Noise.snap()
        return {"foreign_cpu_s": round(max((b[0] - a[0]) - (b[2] - a[2]), 0.0), 3), "steal_s": round(b[1] - a[1], 3)}


def timed_median(fn, warmup, runs):
    """Median wall seconds of `runs` calls of fn() after `warmup` untimed calls, and the
    last result."""
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out, times


def finish(info, n_train):
    """Adds the summary keys bench/compare.sh reads (train_s_median,
    train_samples_per_s, ...) from the per-epoch records."""
    tr = [e["train_s"] for e in info["epochs"]]
    info["train_s_median"] = statistics.median(tr)
    info["train_samples_per_s"] = n_train / statistics.median(tr)
    info["val_s_median"] = statistics.median([e["val_s"] for e in info["epochs"]])
    info["epoch_derived_step_ms"] = statistics.median(tr) / (n_train / BATCH) * 1e3
    return info


def report(info, n_train, whole, json_path):
    """Finishes `info` (finish), adds the whole run's noise since `whole`, prints
    the summary as one JSON line and writes everything to `json_path` if given."""
    finish(info, n_train)
    info["whole_run_noise"] = Noise.since(whole)
    print(json.dumps({k: v for k, v in info.items() if k != "epochs"}), flush=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(info, f, indent=1)


def parse_args(description, threads_help=None):
    """The flags both peer scripts take (--model, --epochs, --threads, --seed, --lr,
    --data-dir, --json, --limit); returns the arguments and the learning rate (the
    model's default when --lr is not given)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", choices=MODELS, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help=threads_help)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--lr", type=float, default=None, help="default: 1e-3, 2e-3 for lstm and gru")
    ap.add_argument("--data-dir", default=None, help="folder of the MNIST .gz files")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--limit", type=int, default=None, help="smoke tests only: train on N samples")
    args = ap.parse_args()
    return args, (args.lr if args.lr is not None else DEFAULT_LR[args.model])
