#!/usr/bin/env python3
"""Keras 3 / TensorFlow (CPU) side of bench/compare.sh for the models beyond the seed
CNN and the MLP: cnn2, lstm, gru and resnet, layer for layer as nn builds them (see
torch_models.py for the architectures and the protocol, which are the same here).

Keras specifics: `model.fit` on the first 48,000 training images with the last 12,000
as `validation_data` (exactly what `validation_split=0.2` holds out; validation batch
128), shuffle=True, verbose=0, Keras's default initialisers, BatchNormalization with
its defaults (momentum 0.99, epsilon 1e-3, as nn's), GRU with its default
reset_after=True (nn implements that form), default jit_compile ("auto": off on a
CPU-only machine); `--threads` intra-op threads, 1 inter-op thread.

Per epoch (a callback): train-pass seconds (epoch begin -> validation begin),
validation seconds, then test accuracy with model.evaluate at batch 1000 (outside
both). Step time: fresh model, train_on_batch on one batch of 128 (10 warm-up + 50
timed). Inference: model.predict(batch_size=1000) on the test set (1 warm-up, median
of 3) and single-sample latency of model(x, training=False) (20 warm-up, median of 200; predict_on_batch
recorded too).

`--limit N`: smoke tests only (N training samples, at most N validation and test
samples, a shorter step bench).

Example: python3 bench/peers/keras_models.py --model resnet --epochs 3 --threads 2 --json keras-resnet.json
"""
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402


def resnet(classes=10):
    conv = lambda f, k, s=1, name=None: layers.Conv2D(  # noqa: E731
        f, k, strides=s, padding="same", use_bias=False, name=name)
    inp = keras.Input((28, 28, 1), name="image")
    x = conv(32, 3, name="stem_conv")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate((32, 64, 128), start=1):
        p = f"stage{stage}"
        y = conv(filters, 3, 2, f"{p}_conv1")(x)
        y = layers.BatchNormalization(name=f"{p}_bn1")(y)
        y = layers.ReLU(name=f"{p}_relu1")(y)
        y = conv(filters, 3, 1, f"{p}_conv2")(y)
        y = layers.BatchNormalization(name=f"{p}_bn2")(y)
        s = conv(filters, 1, 2, f"{p}_proj")(x)
        s = layers.BatchNormalization(name=f"{p}_proj_bn")(s)
        x = layers.ReLU(name=f"{p}_out")(layers.Add(name=f"{p}_add")([y, s]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inp, layers.Dense(classes, activation="softmax", name="head")(x))


def build(name, lr):
    if name == "cnn2":
        m = keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, padding="valid", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="valid", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ])
    elif name in ("lstm", "gru"):
        rnn = layers.LSTM(128) if name == "lstm" else layers.GRU(128, reset_after=True)
        m = keras.Sequential([keras.Input((28, 28)), rnn, layers.Dense(10, activation="softmax")])
    elif name == "resnet":
        m = resnet()
    else:
        raise ValueError(name)
    m.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


def main():
    args, lr = common.parse_args(__doc__.split("\n")[0], "intra-op threads (inter-op: 1)")
    B = common.BATCH

    default_intra = tf.config.threading.get_intra_op_parallelism_threads()
    default_inter = tf.config.threading.get_inter_op_parallelism_threads()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed)

    xtr, ytr, xva, yva, xte, yte = common.mnist_splits(args.data_dir, args.limit)
    if args.model in ("cnn2", "resnet"):
        xtr, xva, xte = (a.reshape(-1, 28, 28, 1) for a in (xtr, xva, xte))
    n_train = len(xtr)

    model = build(args.model, lr)
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    fixed = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    whole = common.Noise.snap()
    info = {
        "framework": "keras/tensorflow", "version": f"tf {tf.__version__} / keras {keras.__version__}",
        "numpy": np.__version__, "python": platform.python_version(), "cpu": common.cpu_name(),
        "model": args.model, "params": int(model.count_params()), "trainable_params": trainable,
        "non_trainable_params": fixed,
        "threads": f"intra {tf.config.threading.get_intra_op_parallelism_threads()}, "
                   f"inter {tf.config.threading.get_inter_op_parallelism_threads()}",
        "default_threads": f"intra {default_intra}, inter {default_inter} (0: TF picks)",
        "seed": args.seed, "lr": lr, "batch": B, "limit": args.limit,
        "n_train": n_train, "n_val": len(xva), "n_test": len(xte), "epochs": [],
    }

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.s0, self.t0 = common.Noise.snap(), time.perf_counter()

        def on_test_begin(self, logs=None):
            self.t1 = time.perf_counter()

        def on_test_end(self, logs=None):
            self.t2, self.noise = time.perf_counter(), common.Noise.since(self.s0)

        def on_epoch_end(self, epoch, logs=None):
            te = self.model.evaluate(xte, yte, batch_size=1000, verbose=0, return_dict=True)
            rec = {"epoch": epoch + 1, "train_s": self.t1 - self.t0, "val_s": self.t2 - self.t1,
                   "train_loss": float(logs["loss"]), "train_acc": float(logs["accuracy"]),
                   "val_loss": float(logs["val_loss"]), "val_acc": float(logs["val_accuracy"]),
                   "test_loss": float(te["loss"]), "test_acc": float(te["accuracy"]), **self.noise}
            info["epochs"].append(rec)
            print(json.dumps(rec), flush=True)

    print(json.dumps({k: v for k, v in info.items() if k != "epochs"}), flush=True)
    model.fit(xtr, ytr, batch_size=B, epochs=args.epochs, validation_data=(xva, yva), shuffle=True,
              verbose=0, callbacks=[Timer()])
    info["jit_compile"] = str(getattr(model, "jit_compile", "n/a"))

    # Training step on a fresh model, one fixed batch of 128.
    warm, timed = (2, 5) if args.limit else (10, 50)
    keras.utils.set_random_seed(args.seed)
    m2 = build(args.model, lr)
    xb, yb = xtr[:B], ytr[:B]
    _, _, steps = common.timed_median(lambda: m2.train_on_batch(xb, yb), warm, timed)
    info["step_ms_median"] = statistics.median(steps) * 1e3
    info["step_ms_min"], info["step_ms_max"] = min(steps) * 1e3, max(steps) * 1e3

    # Inference with the trained model.
    pass_s, probs, _ = common.timed_median(lambda: model.predict(xte, batch_size=1000, verbose=0), 1, 3)
    info["infer_batch1000_pass_s"] = pass_s
    info["infer_batch1000_samples_per_s"] = len(xte) / pass_s
    info["infer_test_acc"] = float((probs.argmax(1) == yte).mean())
    for _ in range(20):
        model(xte[:1], training=False)
    lat = []
    for i in range(200):
        xi = xte[i % len(xte) : i % len(xte) + 1]
        t0 = time.perf_counter()
        model(xi, training=False)
        lat.append((time.perf_counter() - t0) * 1e3)
    info["single_latency_ms_median"] = statistics.median(lat)
    info["single_latency_ms_p90"] = sorted(lat)[int(0.9 * len(lat))]
    for _ in range(20):  # for reference: the same through predict_on_batch
        model.predict_on_batch(xte[:1])
    lat = []
    for i in range(200):
        xi = xte[i % len(xte) : i % len(xte) + 1]
        t0 = time.perf_counter()
        model.predict_on_batch(xi)
        lat.append((time.perf_counter() - t0) * 1e3)
    info["single_latency_predict_on_batch_ms_median"] = statistics.median(lat)

    common.report(info, n_train, whole, args.json)


if __name__ == "__main__":
    main()
