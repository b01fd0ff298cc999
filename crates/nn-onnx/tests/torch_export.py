"""Exports small PyTorch models with the real torch.onnx.export (the legacy
TorchScript exporter, dynamo=False, which needs no extra packages), opsets 13 and
17 with a dynamic batch axis, and ONNX Runtime's outputs on seeded inputs, for
tests/torch_export.rs.

usage: python torch_export.py OUT_DIR  -> prints a JSON list of cases
Each case: name, file (.onnx), x and y (.npy, float32), input_shape (ONNX's, no
batch axis), n (samples), batches (the batch sizes ONNX Runtime ran, in order).
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

warnings.filterwarnings("ignore")
out_dir = sys.argv[1]
torch.manual_seed(0)
rng = np.random.default_rng(0)

# At least 100 samples, run as batches of 1, 7 and larger ones.
BATCHES = [1, 7, 32, 32, 31]
N = sum(BATCHES)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4), nn.Softmax(dim=1))

    def forward(self, x):
        return self.net(x)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.relu(self.conv(x)))))


class CnnView(nn.Module):
    """Flattened with view(size(0), -1) (Shape, Gather, Unsqueeze, Concat before
    Reshape) and a LayerNorm (decomposed below opset 17, Pow for the square)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.ln = nn.LayerNorm(6)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = y.view(y.size(0), -1)
        return torch.softmax(self.ln(self.fc(y)), dim=-1)


def perturb(m):
    # Non-trivial biases (PyTorch's defaults are small).
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
            if name.endswith("ln.weight") or name.endswith("bn.weight"):
                p.uniform_(0.5, 1.5)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.uniform_(-0.5, 0.5)
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    return m.eval()


cases = []
for name, module, in_shape in [("mlp", Mlp(), [10]), ("cnn", Cnn(), [3, 8, 8]), ("cnn_view_ln", CnnView(), [3, 8, 8])]:
    module = perturb(module)
    x = rng.standard_normal((N, *in_shape)).astype(np.float32)
    for opset in (13, 17):
        case = f"torch_{name}_opset{opset}"
        path = os.path.join(out_dir, case + ".onnx")
        torch.onnx.export(
            module,
            (torch.from_numpy(x[:2]),),
            path,
            input_names=["x"],
            output_names=["y"],
            opset_version=opset,
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        ys, start = [], 0
        for b in BATCHES:
            ys.append(sess.run(None, {"x": x[start:start + b]})[0])
            start += b
        y = np.concatenate(ys).astype(np.float32)
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        assert np.abs(ref - y).max() < 1e-4, (case, np.abs(ref - y).max())
        np.save(os.path.join(out_dir, case + "_x.npy"), x)
        np.save(os.path.join(out_dir, case + "_y.npy"), y)
        cases.append({
            "name": case,
            "file": path,
            "x": os.path.join(out_dir, case + "_x.npy"),
            "y": os.path.join(out_dir, case + "_y.npy"),
            "input_shape": in_shape,
            "n": N,
            "batches": BATCHES,
            "ops": sorted({n.op_type for n in m.graph.node}),
            "producer": f"{m.producer_name} {m.producer_version}",
        })

print(json.dumps(cases))
