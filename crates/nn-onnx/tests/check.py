"""Checks nn's ONNX exports with the `onnx` package and ONNX Runtime.

Run by crates/nn-onnx/tests/onnx_runtime.rs (through $NN_ONNX_PYTHON, a python with
onnx, onnxruntime and numpy):

    python check.py CASES.json

CASES.json lists cases {"name", "onnx", "inputs", "input_shape", "expected",
"output_shape", "class_names"}: the .onnx file, the raw input features and nn's
predictions as little-endian float32 files (row-major, [N, ...shape]). For each case
the model must pass onnx.checker.check_model(full_check=True), carry the class
names, and ONNX Runtime must reproduce nn's outputs when fed batches of 1, 7 and the
rest. Prints one JSON object: name -> {"max_abs_diff", "samples", "batches"}.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def check(case):
    model = onnx.load(case["onnx"])
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    if case.get("class_names") is not None:
        assert json.loads(props["class_names"]) == case["class_names"], props
    graph_input = model.graph.input[0]
    batch_dim = graph_input.type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch", batch_dim
    x = np.fromfile(case["inputs"], dtype="<f4").reshape([-1] + case["input_shape"])
    want = np.fromfile(case["expected"], dtype="<f4").reshape([-1] + case["output_shape"])
    assert len(x) == len(want) and len(x) >= 100, (len(x), len(want))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(case["onnx"], opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    got = []
    sizes = [1, 7]
    start, batches = 0, []
    while start < len(x):
        n = sizes[len(batches)] if len(batches) < len(sizes) else 32
        part = x[start:start + n]
        (y,) = sess.run(None, {name: part})
        assert y.shape == (len(part), *case["output_shape"]), (y.shape, case["output_shape"])
        got.append(y)
        batches.append(len(part))
        start += n
    got = np.concatenate(got)
    assert np.all(np.isfinite(got)), case["name"]
    return {
        "max_abs_diff": float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))),
        "samples": int(len(x)),
        "batches": batches[:3],
    }


def main():
    cases = json.load(open(sys.argv[1]))
    print(json.dumps({c["name"]: check(c) for c in cases}))


if __name__ == "__main__":
    main()
