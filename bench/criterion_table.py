#!/usr/bin/env python3
"""Print a markdown table of criterion results: medians, in the unit the group reports.

Usage: bench/criterion_table.py GROUP [TARGET_DIR]
  e.g. bench/criterion_table.py gemm_f32   (reads target/criterion/gemm_f32/*/*/new/;
  TARGET_DIR defaults to $CARGO_TARGET_DIR, else ./target)

Rows are benchmark parameters (e.g. shapes), columns the function names (e.g.
`gemm/1t`). A group with `Throughput::Elements` prints G-elements per second from the
median time (for the GEMM group an element is a FLOP, so the figures are GFLOP/s)
when that is at least 1, else elements (samples) per second and the median time;
other groups print the median time in ms.
"""
import json
import os
import sys

group = sys.argv[1]
target = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("CARGO_TARGET_DIR", "target")
root = os.path.join(target, "criterion", group)
cells, rows, cols = {}, [], []
for dirpath, _, files in sorted(os.walk(root)):
    if not dirpath.endswith(os.path.join("new")) or "benchmark.json" not in files:
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        bench = json.load(f)
    with open(os.path.join(dirpath, "estimates.json")) as f:
        median_ns = json.load(f)["median"]["point_estimate"]
    func, param = bench.get("function_id") or "", bench.get("value_str") or ""
    if not param:
        func, param = group, func
    throughput = bench.get("throughput") or {}
    if "Elements" in throughput and throughput["Elements"] / median_ns >= 1:
        value = f"{throughput['Elements'] / median_ns:.1f}"
    elif "Elements" in throughput:  # samples: a rate per second, and the median time
        value = f"{throughput['Elements'] / median_ns * 1e9:,.0f}/s ({median_ns / 1e6:.3f} ms)"
    elif "Bytes" in throughput:
        value = f"{throughput['Bytes'] / median_ns:.2f} GB/s"
    else:
        value = f"{median_ns / 1e6:.3f} ms"
    cells[(param, func)] = value
    if param not in rows:
        rows.append(param)
    if func not in cols:
        cols.append(func)
if not cells:
    sys.exit(f"no criterion results under {root}")
print("| | " + " | ".join(cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for r in rows:
    print(f"| {r} | " + " | ".join(cells.get((r, c), "") for c in cols) + " |")
