"""Writes ONNX graphs the way PyTorch's torch.onnx.export writes common models
(NCHW images, Gemm with transB, Flatten in C,H,W order), built with onnx.helper,
and ONNX Runtime's outputs on seeded inputs, for tests/import_runtime.rs.

usage: python import_graphs.py OUT_DIR  -> prints a JSON list of cases
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

out_dir = sys.argv[1]
rng = np.random.default_rng(0)


def w(*shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(name, nodes, inits, in_shape, out_shape, opset=17, props=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])
    g = helper.make_graph(nodes, name, [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch")
    m.ir_version = 8
    if props:
        helper.set_model_props(m, props)
    onnx.checker.check_model(m, full_check=True)
    return m


cases = []


def add(name, m, in_shape, n=100):
    path = f"{out_dir}/{name}.onnx"
    onnx.save(m, path)
    x = rng.uniform(-1.5, 1.5, size=(n, *in_shape)).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs, start, sizes = [], 0, [1, 7]
    while start < n:
        k = sizes.pop(0) if sizes else 32
        outs.append(sess.run(None, {"x": x[start:start + k]})[0])
        start += k
    y = np.concatenate(outs).reshape(n, -1).astype(np.float32)
    x.tofile(f"{out_dir}/{name}.x")
    y.tofile(f"{out_dir}/{name}.y")
    cases.append({"name": name, "file": path, "input_shape": list(in_shape), "n": n,
                  "x": f"{out_dir}/{name}.x", "y": f"{out_dir}/{name}.y", "outputs": int(y.shape[1])})


# An MLP as torch writes nn.Sequential(Linear, ReLU, Linear, Tanh, Linear, Softmax):
# Gemm with transB = 1 (weights [out, in]).
add("torch_mlp", model("mlp", [
    helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1, alpha=1.0, beta=1.0),
    helper.make_node("Relu", ["h1"], ["r1"]),
    helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], transB=1),
    helper.make_node("Tanh", ["h2"], ["t2"]),
    helper.make_node("Gemm", ["t2", "w3", "b3"], ["h3"], transB=1, alpha=0.5, beta=2.0),
    helper.make_node("Softmax", ["h3"], ["y"], axis=1),
], [init("w1", w(16, 12)), init("b1", w(16)), init("w2", w(8, 16)), init("b2", w(8)),
    init("w3", w(4, 8)), init("b3", w(4))], [12], [4],
    props={"class_names": json.dumps(["a", "b", "c", "d"])}), [12])

# MatMul + Add (torch's Linear on 3-d input, or with bias as a separate Add), Sigmoid,
# LeakyRelu, Elu, constants applied per feature, Dropout and Identity.
add("matmul_add", model("matmul", [
    helper.make_node("Sub", ["x", "mean"], ["s"]),
    helper.make_node("Div", ["s", "std"], ["d"]),
    helper.make_node("MatMul", ["d", "w1"], ["m1"]),
    helper.make_node("Add", ["m1", "b1"], ["a1"]),
    helper.make_node("LeakyRelu", ["a1"], ["l1"], alpha=0.1),
    helper.make_node("Dropout", ["l1"], ["do"]),
    helper.make_node("MatMul", ["do", "w2"], ["m2"]),
    helper.make_node("Add", ["b2", "m2"], ["a2"]),
    helper.make_node("Elu", ["a2"], ["e2"], alpha=0.7),
    helper.make_node("Mul", ["e2", "scale"], ["sc"]),
    helper.make_node("Identity", ["sc"], ["id"]),
    helper.make_node("Sigmoid", ["id"], ["y"]),
], [init("mean", w(10)), init("std", np.abs(w(10)) + 0.5), init("w1", w(10, 9)), init("b1", w(9)),
    init("w2", w(9, 5)), init("b2", w(5)), init("scale", np.float32(1.5))], [10], [5], opset=13), [10])

# A small CNN as torch writes it: Conv → Relu → MaxPool → Flatten (C,H,W order) → Gemm
# → Softmax, NCHW.
add("torch_cnn", model("cnn", [
    helper.make_node("Conv", ["x", "cw", "cb"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
    helper.make_node("Relu", ["c"], ["r"]),
    helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Flatten", ["p"], ["f"], axis=1),
    helper.make_node("Gemm", ["f", "fw", "fb"], ["g"], transB=1),
    helper.make_node("Softmax", ["g"], ["y"], axis=1),
], [init("cw", w(4, 3, 3, 3)), init("cb", w(4)), init("fw", w(10, 4 * 4 * 5)), init("fb", w(10))],
    [3, 8, 10], [10]), [3, 8, 10])

# A deeper NCHW graph: strided Conv with asymmetric explicit pads (ZeroPadding2D),
# BatchNormalization, a residual Add, AveragePool with pads (count_include_pad 0 and
# 1), Concat over channels, per-channel constants, GlobalAveragePool, Max, Reshape
# to [N, -1], Gemm.
add("nchw_resnet_like", model("resnet_like", [
    helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], kernel_shape=[3, 3], pads=[0, 1, 2, 1], strides=[2, 1]),
    helper.make_node("BatchNormalization", ["c0", "g", "be", "mu", "var"], ["bn"], epsilon=1e-3),
    helper.make_node("Relu", ["bn"], ["r0"]),
    helper.make_node("Conv", ["r0", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("Add", ["c1", "r0"], ["res"]),
    helper.make_node("Sigmoid", ["res"], ["s"]),
    helper.make_node("AveragePool", ["s"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
    helper.make_node("AveragePool", ["s"], ["ap1"], kernel_shape=[2, 2], pads=[1, 0, 0, 1], strides=[1, 1],
                     count_include_pad=1),
    helper.make_node("Max", ["ap", "ap1"], ["mx"]),
    helper.make_node("Concat", ["mx", "s"], ["cat"], axis=1),
    helper.make_node("Mul", ["cat", "chs"], ["cm"]),
    helper.make_node("Add", ["cm", "chb"], ["ca"]),
    helper.make_node("Conv", ["ca", "w2", "b2"], ["c2"], kernel_shape=[1, 1], auto_pad="SAME_UPPER"),
    helper.make_node("Tanh", ["c2"], ["t2"]),
    helper.make_node("GlobalAveragePool", ["t2"], ["gap"]),
    helper.make_node("Reshape", ["gap", "shape"], ["flat"]),
    helper.make_node("Gemm", ["flat", "fw", "fb"], ["y"]),
], [init("w0", w(6, 2, 3, 3)), init("b0", w(6)), init("g", np.abs(w(6)) + 0.5), init("be", w(6)),
    init("mu", w(6)), init("var", np.abs(w(6)) + 0.5), init("w1", w(6, 6, 3, 3, scale=0.2)),
    init("chs", w(12, 1, 1)), init("chb", w(1, 12, 1, 1)), init("w2", w(5, 12, 1, 1)), init("b2", w(5)),
    init("shape", np.array([-1, 5], dtype=np.int64)), init("fw", w(5, 3)), init("fb", w(3))],
    [2, 9, 7], [3]), [2, 9, 7])

# GlobalMaxPool and a Flatten of a 1×1 map; Gemm without bias.
add("global_max", model("gmax", [
    helper.make_node("Conv", ["x", "w0"], ["c0"], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("GlobalMaxPool", ["c0"], ["g"]),
    helper.make_node("Flatten", ["g"], ["f"]),
    helper.make_node("Gemm", ["f", "fw"], ["y"]),
], [init("w0", w(4, 1, 2, 2)), init("fw", w(4, 2))], [1, 6, 6], [2], opset=15), [1, 6, 6])

# Recurrent operators over [N, time, features] rows: Transpose to time-major, LSTM
# (ONNX gate order i, o, f, c; input and recurrent biases), GRU (linear_before_reset
# = 1) on LSTM's sequence, the last state squeezed, Gemm.
T, F, U, V = 5, 3, 4, 2
add("recurrent", model("recurrent", [
    helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
    helper.make_node("LSTM", ["xt", "lw", "lr", "lb"], ["ly", ""], hidden_size=U),
    helper.make_node("Squeeze", ["ly", "ax1"], ["ls"]),
    helper.make_node("GRU", ["ls", "gw", "gr", "gb"], ["", "gh"], hidden_size=V, linear_before_reset=1),
    helper.make_node("Squeeze", ["gh", "ax0"], ["h"]),
    helper.make_node("Gemm", ["h", "fw", "fb"], ["y"], transB=1),
], [init("lw", w(1, 4 * U, F)), init("lr", w(1, 4 * U, U)), init("lb", w(1, 8 * U)),
    init("gw", w(1, 3 * V, U)), init("gr", w(1, 3 * V, V)), init("gb", w(1, 6 * V)),
    init("ax0", np.array([0], dtype=np.int64)), init("ax1", np.array([1], dtype=np.int64)),
    init("fw", w(3, V)), init("fb", w(3))], [T, F], [3]), [T, F])

print(json.dumps(cases))
