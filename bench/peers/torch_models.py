#!/usr/bin/env python3
"""PyTorch (CPU, eager) side of bench/compare.sh for the models beyond the seed CNN
and the MLP, layer for layer as nn builds them (examples/models/cnn2.json,
examples/models/gru.json, and nn-cli's `lstm` and `resnet` presets):

  cnn2    Conv2D 32 3x3 valid ReLU -> MaxPool 2 -> Conv2D 64 3x3 valid ReLU -> MaxPool 2
          -> Flatten -> Dropout 0.5 -> Dense 10                       (34,826 parameters)
  lstm    the 28 image rows as 28 steps of 28 features -> LSTM(128), last output
          -> Dense 10                                                 (81,674)
  gru     the same with GRU(128) (PyTorch's GRU is Keras's reset_after=True form) (61,962)
  resnet  nn's resnet preset: stem Conv2D 32 3x3 same (no bias) -> BN -> ReLU; three
          basic blocks of 32, 64, 128 filters, each Conv2D 3x3 stride 2 same -> BN ->
          ReLU -> Conv2D 3x3 same -> BN, plus a Conv2D 1x1 stride 2 -> BN projection,
          added, ReLU; global average pooling -> Dense 10  (309,162 trainable +
          1,408 BN moving statistics)

Protocol (the same in keras_models.py and for nn in bench/compare.sh): MNIST with
pixels in [0, 1]; train on the first 48,000 training images, validate on the last
12,000 at batch 128, test on the 10,000 test images; Adam (default betas and eps)
at lr 1e-3, 2e-3 for lstm and gru; batch 128, reshuffled every epoch; softmax
cross-entropy (here CrossEntropyLoss on logits); each framework's default
initialisation; `--threads` intra-op threads.

Details that make the models the same function as nn's:
  * BatchNormalization: Keras's momentum 0.99 is PyTorch's momentum 0.01, epsilon 1e-3.
  * `same` padding with stride 2 is TensorFlow's: the odd pixel of padding goes
    after (bottom, right), so those convolutions pad explicitly with F.pad.
  * PyTorch's LSTM has two bias vectors where Keras and nn have one: bias_hh is set
    to zero and frozen, so that the trainable parameters are the same 80,384. (The
    GRU's two bias vectors are both used by the reset_after form, as in Keras.)

Measured and written as JSON (`--json FILE`): per epoch train-pass and validation
seconds, losses and accuracies, test accuracy (outside both times); a training-step
time on a fresh model at batch 128 (10 warm-up + 50 timed); inference throughput on
the test set at batch 1000 (1 warm-up, median of 3 passes) and single-sample
latency (20 warm-up, median of 200).

`--limit N` trains on the first N samples (and validates and tests on at most N) with
a shorter step bench: for smoke tests only, never for figures.

Example: python3 bench/peers/torch_models.py --model lstm --epochs 3 --threads 2 --json torch-lstm.json
"""
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Conv2dTfSame(nn.Conv2d):
    """A Conv2d with TensorFlow's `same` padding: output size ceil(in / stride), the
    total padding split with the smaller half before. Symmetric cases use the
    convolution's own padding; asymmetric ones pad first."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__(cin, cout, k, stride=stride, padding=0, bias=False)

    def forward(self, x):
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: width first, then height
            out = math.ceil(size / self.stride[0])
            total = max((out - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] == pads[2] == pads[3]:
            return F.conv2d(x, self.weight, None, self.stride, pads[0])
        return F.conv2d(F.pad(x, pads), self.weight, None, self.stride, 0)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = Conv2dTfSame(cin, cout, 3, stride), bn(cout)
        self.conv2, self.bn2 = Conv2dTfSame(cout, cout, 3), bn(cout)
        self.proj, self.proj_bn = Conv2dTfSame(cin, cout, 1, stride), bn(cout)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.proj_bn(self.proj(x)))


class ResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem_conv, self.stem_bn = Conv2dTfSame(1, 32, 3), bn(32)
        self.stages = nn.Sequential(Block(32, 32, 2), Block(32, 64, 2), Block(64, 128, 2))
        self.head = nn.Linear(128, classes)

    def forward(self, x):
        x = self.stages(F.relu(self.stem_bn(self.stem_conv(x))))
        return self.head(x.mean(dim=(2, 3)))


class Recurrent(nn.Module):
    """LSTM(128) or GRU(128) over the image rows, its last output -> Dense 10."""

    def __init__(self, kind, units=128, classes=10):
        super().__init__()
        self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(28, units, batch_first=True)
        if kind == "lstm":
            with torch.no_grad():
                self.rnn.bias_hh_l0.zero_()
            self.rnn.bias_hh_l0.requires_grad_(False)
        self.head = nn.Linear(units, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def build(name):
    if name == "cnn2":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 5 * 5, 10),
        )
    if name in ("lstm", "gru"):
        return Recurrent(name)
    if name == "resnet":
        return ResNet()
    raise ValueError(name)


def param_counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Non-trainable: the BatchNorm moving statistics (not the step counters).
    fixed = sum(b.numel() for n, b in model.named_buffers() if b.is_floating_point())
    return trainable, fixed


def tensor(x, name):
    t = torch.from_numpy(x)
    return t.reshape(-1, 1, 28, 28).contiguous() if name in ("cnn2", "resnet") else t.contiguous()


@torch.inference_mode()
def evaluate(model, x, y, batch, loss_fn):
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        logits = model(x[i : i + batch])
        loss += loss_fn(logits, y[i : i + batch]).item() * len(logits)
        correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    return loss / len(x), correct / len(x)


def main():
    args, lr = common.parse_args(__doc__.split("\n")[0], None)
    B = common.BATCH

    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    xtr, ytr, xva, yva, xte, yte = common.mnist_splits(args.data_dir, args.limit)
    xtr, xva, xte = (tensor(a, args.model) for a in (xtr, xva, xte))
    ytr, yva, yte = (torch.from_numpy(a) for a in (ytr, yva, yte))
    n_train = len(xtr)

    model = build(args.model)
    trainable, fixed = param_counts(model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    whole = common.Noise.snap()
    info = {
        "framework": "pytorch", "version": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "cpu": common.cpu_name(), "model": args.model,
        "params": trainable + fixed, "trainable_params": trainable, "non_trainable_params": fixed,
        "threads": torch.get_num_threads(), "default_threads": default_threads,
        "interop_threads": torch.get_num_interop_threads(), "mkldnn": torch.backends.mkldnn.is_available(),
        "seed": args.seed, "lr": lr, "batch": B, "limit": args.limit,
        "n_train": n_train, "n_val": len(xva), "n_test": len(xte), "epochs": [],
    }
    print(json.dumps({k: v for k, v in info.items() if k != "epochs"}), flush=True)

    for ep in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(n_train, generator=gen)
        run_loss, run_correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
        s0 = common.Noise.snap()
        t0 = time.perf_counter()
        for i in range(0, n_train, B):
            idx = perm[i : i + B]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            opt.step()
            with torch.no_grad():
                run_loss += loss.detach() * len(idx)
                run_correct += (logits.argmax(1) == yb).sum()
        t1 = time.perf_counter()
        val_loss, val_acc = evaluate(model, xva, yva, B, loss_fn)
        t2 = time.perf_counter()
        noise = common.Noise.since(s0)
        test_loss, test_acc = evaluate(model, xte, yte, 1000, loss_fn)
        rec = {"epoch": ep, "train_s": t1 - t0, "val_s": t2 - t1,
               "train_loss": run_loss.item() / n_train, "train_acc": run_correct.item() / n_train,
               "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc, **noise}
        info["epochs"].append(rec)
        print(json.dumps(rec), flush=True)

    # Training step on a fresh model, one fixed batch of 128.
    warm, timed = (2, 5) if args.limit else (10, 50)
    torch.manual_seed(args.seed)
    m2 = build(args.model)
    opt2 = torch.optim.Adam([p for p in m2.parameters() if p.requires_grad], lr=lr)
    m2.train()
    xb, yb = xtr[:B], ytr[:B]

    def step():
        opt2.zero_grad(set_to_none=True)
        loss_fn(m2(xb), yb).backward()
        opt2.step()

    _, _, steps = common.timed_median(step, warm, timed)
    info["step_ms_median"] = statistics.median(steps) * 1e3
    info["step_ms_min"], info["step_ms_max"] = min(steps) * 1e3, max(steps) * 1e3

    # Inference with the trained model.
    model.eval()
    with torch.inference_mode():
        def full_pass():
            return torch.cat([model(xte[i : i + 1000]).argmax(1) for i in range(0, len(xte), 1000)])

        pass_s, pred, _ = common.timed_median(full_pass, 1, 3)
        info["infer_batch1000_pass_s"] = pass_s
        info["infer_batch1000_samples_per_s"] = len(xte) / pass_s
        info["infer_test_acc"] = (pred == yte).float().mean().item()
        for _ in range(20):
            model(xte[:1])
        lat = []
        for i in range(200):
            xi = xte[i % len(xte) : i % len(xte) + 1]
            t0 = time.perf_counter()
            model(xi)
            lat.append((time.perf_counter() - t0) * 1e3)
        info["single_latency_ms_median"] = statistics.median(lat)
        info["single_latency_ms_p90"] = sorted(lat)[int(0.9 * len(lat))]

    common.report(info, n_train, whole, args.json)


if __name__ == "__main__":
    main()
