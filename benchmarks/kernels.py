"""Benchmark edgeact's compiled kernels against torch eager, ONNX Runtime and numpy.

    python benchmarks/kernels.py [--quick] [--threads N] [--json out.json]

Cases
- LSTM / GRU step (input_size = hidden_size in {256, 512, 1024}, batch 1 and 8): edgeact._C
  (float32, bfloat16 and int8 weights) vs nn.LSTMCell/nn.GRUCell under torch.inference_mode(), vs the
  same cell exported (torch.onnx.export, dynamo=False, opset 17) and run by ONNX Runtime with
  IO binding, vs numpy (one GEMM over [x, h]). Every backend gets the same thread count.
  A numpy sgemv over a float32 matrix of the LSTM's weight size is the memory-bandwidth
  reference: a batch-1 step streams all weights once, so GB/s = packed bytes / step time.
- Temporal shift (online, one frame) at the shift points of TSM-MobileNetV2 224 and of
  ResNet-50 (fold = C // 8): edgeact's in-place swap vs torch slice+cat (the MIT online-TSM
  form) vs numpy slice+concatenate.

Each case warms up, then backends are timed in interleaved rounds (so a noisy neighbour hits
them alike); medians and p90 of per-call wall time are reported, with ratios other/edgeact.
These are numbers, not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every backend (default 1)")
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    parser.add_argument("--only", choices=["recurrent", "shift"], help="run one group of cases")
    parser.add_argument("--seconds", type=float, help="timed seconds per backend and case (default 0.6, quick 0.1)")
    parser.add_argument("--hidden", type=int, nargs="+", help="recurrent hidden sizes (default 256 512 1024)")
    parser.add_argument("--batch", type=int, nargs="+", help="recurrent batch sizes (default 1 8)")
    return parser.parse_args(argv)


ARGS = _parse_args(sys.argv[1:] if __name__ == "__main__" else [])
# Thread pools of numpy's BLAS, torch and MKL read these at import, so set them first.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402

from edgeact import _C  # noqa: E402

ROUNDS = 5
MOBILENET_V2_SHIFTS = [(24, 56)] + [(32, 28)] * 2 + [(64, 14)] * 3 + [(96, 14)] * 2 + [(160, 7)] * 2
RESNET50_SHIFTS = [(256, 56), (512, 28), (1024, 14), (2048, 7)]
TARGETS = {"lstm_torch": 5.0, "lstm_ort": 1.5, "shift_torch": 3.0}


# --- timing ------------------------------------------------------------------------------------


def _time_interleaved(backends: dict[str, Callable[[], object]], seconds: float) -> dict[str, dict[str, float]]:
    """Warm each backend up, then time them in ROUNDS interleaved rounds of seconds/ROUNDS each."""
    samples: dict[str, list[int]] = {name: [] for name in backends}
    for fn in backends.values():
        deadline = time.perf_counter() + min(0.2, seconds / 2)
        for _ in range(20):
            fn()
        while time.perf_counter() < deadline:
            fn()
    for _ in range(ROUNDS):
        for name, fn in backends.items():
            deadline = time.perf_counter_ns() + int(seconds / ROUNDS * 1e9)
            times = samples[name]
            while True:
                start = time.perf_counter_ns()
                fn()
                end = time.perf_counter_ns()
                times.append(end - start)
                if end > deadline and len(times) >= 10:
                    break
    return {
        name: {
            "median_us": float(np.median(t)) / 1e3,
            "p90_us": float(np.percentile(t, 90)) / 1e3,
            "min_us": float(np.min(t)) / 1e3,
            "calls": len(t),
        }
        for name, t in samples.items()
    }


# --- machine -----------------------------------------------------------------------------------


def _machine() -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads_used": ARGS.threads,
        "numpy": np.__version__,
        "edgeact_build": _C.build_info(),
    }
    try:
        lscpu = json.loads(subprocess.run(["lscpu", "-J"], capture_output=True, text=True, check=True).stdout)
        fields = {row["field"].rstrip(":"): row["data"] for row in lscpu["lscpu"]}
        for key in ("Model name", "Core(s) per socket", "Socket(s)", "Thread(s) per core", "L1d cache", "L2 cache", "L3 cache"):
            info[key.lower().replace(" ", "_").replace("(s)", "s")] = fields.get(key)
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        info["model_name"] = platform.processor()
    return info


# --- recurrent cells ---------------------------------------------------------------------------


def _numpy_step(cell: str, w: np.ndarray, b: np.ndarray, hidden: int, batch: int, input_size: int):
    """A reasonable numpy step: one GEMM over [x, h] (weights pre-concatenated), then the gates."""
    xh = np.zeros((batch, input_size + hidden), np.float32)
    gates = np.empty((batch, w.shape[0]), np.float32)
    h = np.zeros((batch, hidden), np.float32)
    c = np.zeros((batch, hidden), np.float32)
    x = np.random.default_rng(0).standard_normal((batch, input_size), dtype=np.float32)

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    if cell == "LSTM":

        def step():
            xh[:, :input_size] = x
            xh[:, input_size:] = h
            np.dot(xh, w.T, out=gates)
            np.add(gates, b, out=gates)
            i, f, g, o = np.split(gates, 4, axis=1)
            c[...] = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h[...] = sigmoid(o) * np.tanh(c)

    else:
        # GRU: n needs W_hn h apart from W_in x, so the hidden part of n is its own GEMM.
        w_rz, w_in, w_hn = w[: 2 * hidden], w[2 * hidden :, :input_size], w[2 * hidden :, input_size:]
        b_rz, b_in, b_hn = b[: 2 * hidden], b[2 * hidden : 3 * hidden], b[3 * hidden :]

        def step():
            xh[:, :input_size] = x
            xh[:, input_size:] = h
            rz = sigmoid(xh @ w_rz.T + b_rz)
            r, z = rz[:, :hidden], rz[:, hidden:]
            n = np.tanh(x @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
            h[...] = (1 - z) * n + z * h

    return step


def _onnx_session(module, example: tuple, path: Path):
    import onnxruntime as ort
    import torch

    names = ["x", "h", "c"][: len(example)]
    outputs = ["h_new", "c_new"][: len(example) - 1]
    args = (example[0], example[1]) if len(example) == 2 else (example[0], (example[1], example[2]))
    with warnings.catch_warnings():  # the legacy exporter is asked for on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, args, str(path), input_names=names, output_names=outputs, opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = ARGS.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    binding = session.io_binding()
    for name, value in zip(names, example):
        binding.bind_cpu_input(name, value.numpy())
    for name in outputs:
        binding.bind_output(name)
    return lambda: session.run_with_iobinding(binding)


def _recurrent_case(cell: str, hidden: int, batch: int, seconds: float, tmp: Path) -> dict[str, object]:
    import torch

    input_size = hidden
    torch.manual_seed(0)
    module = getattr(torch.nn, f"{cell}Cell")(input_size, hidden).eval()
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    layers = [[sd["weight_ih"]], [sd["weight_hh"]], [sd["bias_ih"]], [sd["bias_hh"]]]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, input_size), dtype=np.float32)
    h = np.zeros((1, batch, hidden), np.float32)
    c = np.zeros((1, batch, hidden), np.float32)
    state = (h, c) if cell == "LSTM" else (h,)

    ours = getattr(_C, cell)(*layers, threads=ARGS.threads)
    ours_bf16 = getattr(_C, cell)(*layers, threads=ARGS.threads, weights_dtype="bfloat16")
    ours_int8 = getattr(_C, cell)(*layers, threads=ARGS.threads, weights_dtype="int8")
    h2, c2 = h.copy(), c.copy()
    state_bf16 = (h2, c2) if cell == "LSTM" else (h2,)
    h3, c3 = h.copy(), c.copy()
    state_int8 = (h3, c3) if cell == "LSTM" else (h3,)

    xt = torch.from_numpy(x)
    ht, ct = torch.zeros(batch, hidden), torch.zeros(batch, hidden)
    torch_state = (ht, ct) if cell == "LSTM" else ht

    def torch_step():
        with torch.inference_mode():
            return module(xt, torch_state)

    example = (xt, ht, ct) if cell == "LSTM" else (xt, ht)
    gates = 4 if cell == "LSTM" else 3
    w = np.concatenate([sd["weight_ih"], sd["weight_hh"]], axis=1)
    if cell == "LSTM":
        b = sd["bias_ih"] + sd["bias_hh"]
    else:
        b = np.concatenate([sd["bias_ih"][: 2 * hidden] + sd["bias_hh"][: 2 * hidden], sd["bias_ih"][2 * hidden :], sd["bias_hh"][2 * hidden :]])

    # BLAS reference: one sgemv over a matrix of the same size as the cell's weights.
    gemv_w = np.ascontiguousarray(w)
    gemv_v = rng.standard_normal(w.shape[1], dtype=np.float32)
    gemv_out = np.empty(w.shape[0], np.float32)

    backends = {
        "edgeact": lambda: ours.step(x, *state),
        "edgeact_bf16": lambda: ours_bf16.step(x, *state_bf16),
        "edgeact_int8": lambda: ours_int8.step(x, *state_int8),
        "torch": torch_step,
        "onnxruntime": _onnx_session(module, example, tmp / f"{cell}_{hidden}_{batch}.onnx"),
        "numpy": _numpy_step(cell, w, b, hidden, batch, input_size),
        "numpy_sgemv": lambda: np.dot(gemv_w, gemv_v, out=gemv_out),
    }
    timings = _time_interleaved(backends, seconds)
    base = timings["edgeact"]["median_us"]
    for name, t in timings.items():
        t["ratio_vs_edgeact"] = t["median_us"] / base
    weight_bytes = gates * hidden * (input_size + hidden) * 4
    return {
        "cell": cell,
        "hidden": hidden,
        "input_size": input_size,
        "batch": batch,
        "threads": ARGS.threads,
        "weight_bytes_fp32": weight_bytes,
        "edgeact_packed_bytes": ours.packed_nbytes,
        "edgeact_isa": ours.isa,
        "edgeact_GBps": ours.packed_nbytes / (base * 1e3),
        "edgeact_bf16_GBps": ours_bf16.packed_nbytes / (timings["edgeact_bf16"]["median_us"] * 1e3),
        "edgeact_int8_GBps": ours_int8.packed_nbytes / (timings["edgeact_int8"]["median_us"] * 1e3),
        "sgemv_GBps": gemv_w.nbytes / (timings["numpy_sgemv"]["median_us"] * 1e3),
        "timings": timings,
    }


# --- temporal shift ----------------------------------------------------------------------------


def _shift_case(net: str, channels: int, size: int, batch: int, seconds: float) -> dict[str, object]:
    import torch

    fold = channels // 8
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels, size, size), dtype=np.float32)
    cache = np.zeros((batch, fold, size, size), np.float32)
    xt = torch.from_numpy(x.copy())
    torch_cache = [torch.zeros(batch, fold, size, size)]
    np_cache = [cache.copy()]

    def torch_shift():  # MIT online TSM (online_demo/mobilenet_v2_tsm.py): slice + cat
        with torch.inference_mode():
            x1, x2 = xt[:, :fold], xt[:, fold:]
            out = torch.cat((torch_cache[0], x2), dim=1)
            torch_cache[0] = x1
            return out

    def numpy_shift():
        out = np.concatenate((np_cache[0], x[:, fold:]), axis=1)
        np_cache[0] = x[:, :fold].copy()  # x is the caller's buffer, reused for the next frame
        return out

    timings = _time_interleaved(
        {
            "edgeact": lambda: _C.temporal_shift_online_(x, cache, fold),
            "torch": torch_shift,
            "numpy": numpy_shift,
        },
        seconds,
    )
    base = timings["edgeact"]["median_us"]
    for t in timings.values():
        t["ratio_vs_edgeact"] = t["median_us"] / base
    return {"net": net, "channels": channels, "size": size, "fold": fold, "batch": batch, "timings": timings,
            "edgeact_GBps": 4 * cache.nbytes / (base * 1e3)}  # read + write of both blocks


# --- report ------------------------------------------------------------------------------------


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))


def _fmt(t: dict[str, float]) -> str:
    return f"{t['median_us']:.1f}/{t['p90_us']:.1f}"


def main() -> int:
    seconds = ARGS.seconds or (0.1 if ARGS.quick else 0.6)
    import torch

    torch.set_num_threads(ARGS.threads)
    import onnxruntime

    machine = _machine()
    machine.update({"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "load_avg_start": os.getloadavg()})
    print(f"CPU: {machine.get('model_name')} | {machine.get('cores_per_socket')} cores x {machine.get('sockets')} socket, "
          f"{machine.get('threads_per_core')} thread/core, {machine['logical_cpus']} logical | "
          f"L1d {machine.get('l1d_cache')}, L2 {machine.get('l2_cache')}, L3 {machine.get('l3_cache')}")
    build = machine["edgeact_build"]
    print(f"edgeact._C: simd(build)={build['simd']} kernel_isa(run)={build['kernel_isa']} flags='{build['cxx_flags']}' | "
          f"threads={ARGS.threads} | torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, numpy {np.__version__} | "
          f"load avg {machine['load_avg_start'][0]:.2f}")
    print("times: median/p90 microseconds per call; ratio = backend median / edgeact median (>1: edgeact faster)")

    results: dict[str, object] = {"machine": machine, "args": {k: str(v) for k, v in vars(ARGS).items()},
                                  "targets": TARGETS, "recurrent": [], "shift": []}
    if ARGS.only in (None, "recurrent"):
        hiddens = ARGS.hidden or ([256, 512] if ARGS.quick else [256, 512, 1024])
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for cell in ("LSTM", "GRU"):
                for hidden in hiddens:
                    for batch in ARGS.batch or (1, 8):
                        r = _recurrent_case(cell, hidden, batch, seconds, Path(tmp))
                        results["recurrent"].append(r)
                        t = r["timings"]
                        rows.append([cell, hidden, batch, _fmt(t["edgeact"]), _fmt(t["edgeact_bf16"]),
                                     _fmt(t["edgeact_int8"]), _fmt(t["torch"]),
                                     _fmt(t["onnxruntime"]), _fmt(t["numpy"]),
                                     f"{t['torch']['ratio_vs_edgeact']:.2f}", f"{t['onnxruntime']['ratio_vs_edgeact']:.2f}",
                                     f"{t['numpy']['ratio_vs_edgeact']:.2f}", f"{t['edgeact_bf16']['ratio_vs_edgeact']:.2f}",
                                     f"{t['edgeact_int8']['ratio_vs_edgeact']:.2f}",
                                     f"{r['edgeact_GBps']:.1f}", f"{r['sgemv_GBps']:.1f}"])
                        print(f"  {cell} h={hidden} b={batch}: edgeact {t['edgeact']['median_us']:.1f} us", file=sys.stderr)
        _print_table("Recurrent step (input_size = hidden)",
                     ["cell", "hidden", "batch", "edgeact", "ea-bf16", "ea-int8", "torch", "ort", "numpy", "torch/ea",
                      "ort/ea", "numpy/ea", "bf16/ea", "int8/ea", "ea GB/s", "sgemv GB/s"], rows)

    if ARGS.only in (None, "shift"):
        rows = []
        cases = [("MobileNetV2", c, s) for c, s in MOBILENET_V2_SHIFTS] + [("ResNet-50", c, s) for c, s in RESNET50_SHIFTS]
        if ARGS.quick:
            cases = cases[:1] + cases[3:4] + cases[10:11] + cases[-1:]
        seen = {}
        for net, channels, size in cases:
            key = (net, channels, size)
            if key not in seen:  # repeated shift points have equal shapes: time once, count twice
                seen[key] = _shift_case(net, channels, size, 1, seconds)
            results["shift"].append(seen[key])
        for (net, channels, size), r in seen.items():
            t = r["timings"]
            count = sum(1 for c in cases if c == (net, channels, size))
            rows.append([net, f"{channels}x{size}x{size}", r["fold"], count, _fmt(t["edgeact"]), _fmt(t["torch"]), _fmt(t["numpy"]),
                         f"{t['torch']['ratio_vs_edgeact']:.2f}", f"{t['numpy']['ratio_vs_edgeact']:.2f}", f"{r['edgeact_GBps']:.1f}"])
        for net in ("MobileNetV2", "ResNet-50"):
            entries = [r for r in results["shift"] if r["net"] == net]
            if entries:
                total = {b: sum(r["timings"][b]["median_us"] for r in entries) for b in ("edgeact", "torch", "numpy")}
                results[f"shift_total_{net}"] = total
                rows.append([net, "all points/frame", "", len(entries), f"{total['edgeact']:.1f}", f"{total['torch']:.1f}",
                             f"{total['numpy']:.1f}", f"{total['torch'] / total['edgeact']:.2f}",
                             f"{total['numpy'] / total['edgeact']:.2f}", ""])
        _print_table("Temporal shift, online, batch 1, fold = C//8",
                     ["net", "C x H x W", "fold", "n", "edgeact", "torch", "numpy", "torch/ea", "numpy/ea", "ea GB/s"], rows)

    machine["load_avg_end"] = os.getloadavg()
    _print_targets(results)
    if ARGS.json:
        ARGS.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {ARGS.json}")
    return 0


def _print_targets(results: dict) -> None:
    print("\nTargets (one run):")
    for r in results["recurrent"]:
        if (r["cell"], r["hidden"], r["batch"]) == ("LSTM", 512, 1):
            t = r["timings"]
            for key, backend in (("lstm_torch", "torch"), ("lstm_ort", "onnxruntime")):
                for ours in ("edgeact", "edgeact_bf16", "edgeact_int8"):
                    ratio = t[backend]["median_us"] / t[ours]["median_us"]
                    verdict = "met" if ratio >= TARGETS[key] else "NOT met"
                    print(f"  LSTM h=512 b=1 {ours} vs {backend}: {ratio:.2f}x (target >= {TARGETS[key]}x) {verdict}")
            print(f"  LSTM h=512 b=1 streams {r['edgeact_packed_bytes'] / 2**20:.2f} MiB/step: edgeact "
                  f"{r['edgeact_GBps']:.1f} GB/s = {100 * r['edgeact_GBps'] / r['sgemv_GBps']:.0f}% of numpy sgemv "
                  f"({r['sgemv_GBps']:.1f} GB/s); bf16 {r['edgeact_bf16_GBps']:.1f} GB/s of bf16 weights, int8 "
                  f"{r['edgeact_int8_GBps']:.1f} GB/s of int8 weights and scales")
    if results["shift"]:
        ratios = [r["timings"]["torch"]["ratio_vs_edgeact"] for r in results["shift"]]
        worst = min(ratios)
        print(f"  temporal shift vs torch slice+cat: worst {worst:.2f}x, geomean "
              f"{float(np.exp(np.mean(np.log(ratios)))):.2f}x (target >= {TARGETS['shift_torch']}x) "
              f"{'met' if worst >= TARGETS['shift_torch'] else 'NOT met at every point'}")
    load = results["machine"]["load_avg_start"][0], results["machine"]["load_avg_end"][0]
    if max(load) > 0.5 + ARGS.threads:
        print(f"  note: load average {load[0]:.2f} -> {load[1]:.2f}: other processes shared the CPU; medians are noisy")


if __name__ == "__main__":
    sys.exit(main())
