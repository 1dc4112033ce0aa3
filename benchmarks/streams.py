"""Streaming runtime throughput, latency and allocations: push_many frames/s per stream count,
single-stream push() latency, and tracemalloc bytes per push, per model and backend.

    python benchmarks/streams.py [--model a.pt b.pt | --config configs/synth_pose.yaml ...]
                                 [--backends onnxruntime native] [--streams 1 4 16 64] [--json out.json]

Meant to run unchanged against two revisions of the runtime (benchmarks/compare_revisions.sh
does that), so it touches only the public API: Predictor, push, push_many, reset, close_stream,
export_onnx, save_checkpoint, build_model.

Models: each ``--model`` checkpoint, or (without --model) an untrained model per ``--config``:
the config's ``student.model`` section, ``num_classes`` 12, ``torch.manual_seed(--seed)``,
saved with ``save_checkpoint`` at ``--stride`` (default 1: every push is a model step). Each
checkpoint is exported to ONNX by the running revision's own ``export_onnx`` into a temp dir.

Inputs: real-looking clips from ``edgeact.data.synth.generate`` (12 clips of ``--frame-size``
px, seed 7), or an existing dataset via ``--data``: the BGR frames and the noisy keypoints of
the first ``--clips`` clips, concatenated into one pool and decoded before anything is timed.
A stream walks the pool in order (stream s starts at offset 13*s). A model that takes only
keypoints gets ``frame=None``; one that takes only frames gets ``keypoints=None``.

Per model and backend, with ``--threads`` threads (default 1; 0 leaves every pool at its
default) for ONNX Runtime, edgeact's kernels and, through OMP/OPENBLAS/MKL_NUM_THREADS set
before numpy is imported, numpy's BLAS:
- push: single-stream ``Predictor.push`` wall time, p50 / p99 in microseconds, over
  ``--repeats`` x ``--pushes`` pushes after ``--warmup`` untimed ones.
- push_many: for each ``--streams`` count n, each call pushes one frame to every one of n
  streams; a repeat times ceil(``--many-frames`` / n) consecutive calls (at least 3);
  frames/s = n * calls / seconds, the median over ``--repeats`` repeats (stream counts are
  interleaved within each repeat, so load drift hits every count alike).
- alloc (tracemalloc, after the timings, as it slows every allocation): per push, the
  *transient* bytes (tracemalloc's peak during the push minus the traced memory just before
  it; ``reset_peak`` before each push) and the *retained* bytes (growth of traced memory over
  ``--alloc-calls`` pushes, after gc, divided by the pushes); the same for push_many calls of
  ``--alloc-streams`` streams. tracemalloc sees Python objects and numpy buffers; it does not
  see C/C++ allocations (ONNX Runtime's arena, edgeact._C's own buffers, OpenCV's scratch).

A model or backend that fails (export, load, a push) is recorded as ``{"error": ...}`` and the
run goes on; the exit status is then 1.

Timings: warm-up first, medians and tails, the machine printed. Numbers from one run only are
comparable with each other; compare revisions with benchmarks/compare_revisions.sh.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ["configs/synth_pose.yaml", "configs/synth_rgb.yaml"]
NUM_CLASSES = 12
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", type=Path, help="checkpoint(s) (.pt) to export and benchmark")
    parser.add_argument("--config", nargs="+", type=Path, help="without --model: configs whose student.model is "
                        f"built untrained (default: {' '.join(DEFAULT_CONFIGS)} of this repository)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the untrained models")
    parser.add_argument("--stride", type=int, default=1, help="spec stride the untrained models are saved with")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "native"])
    parser.add_argument("--streams", nargs="+", type=int, default=[1, 4, 16, 64], help="push_many stream counts")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads (0: the runtime's default)")
    parser.add_argument("--data", type=Path, help="dataset dir (default: 12 generated synthetic clips)")
    parser.add_argument("--frame-size", type=int, default=112, help="frame size of the generated clips")
    parser.add_argument("--clips", type=int, default=4, help="clips whose frames make the input pool")
    parser.add_argument("--warmup", type=int, default=30, help="untimed pushes first (push_many: a tenth, >= 3)")
    parser.add_argument("--pushes", type=int, default=400, help="timed single-stream pushes per repeat")
    parser.add_argument("--many-frames", type=int, default=1024, help="frames per push_many repeat")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of the push and push_many timings")
    parser.add_argument("--alloc-calls", type=int, default=300, help="traced calls per allocation measurement")
    parser.add_argument("--alloc-streams", type=int, default=16, help="streams of the traced push_many")
    parser.add_argument("--verify-steps", type=int, default=2, help="export_onnx verification steps")
    parser.add_argument("--label", default="", help="free text stored in the JSON (e.g. the revision)")
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    args = parser.parse_args(argv)
    for name in ("pushes", "many_frames", "repeats", "alloc_calls", "alloc_streams", "verify_steps", "clips"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.threads < 0 or any(n < 1 for n in args.streams):
        parser.error("--warmup and --threads must be >= 0 and --streams counts >= 1")
    return args


if __name__ == "__main__":
    # numpy's BLAS (the native backend's pose encoder runs on it) sizes its thread pool at import:
    # with --threads N, it gets N threads like the runtimes. Left multi-threaded on a shared
    # 2-core machine, it made native push_many at 16+ streams swing 2-10x with the load.
    _threads = parse_args(sys.argv[1:]).threads
    if _threads:
        for _var in BLAS_THREAD_VARS:
            os.environ[_var] = str(_threads)

import numpy as np  # noqa: E402
from machine_info import cpu_name  # noqa: E402


# --- machine -----------------------------------------------------------------------------------


def machine() -> dict:
    import onnxruntime

    import edgeact

    info = {
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "edgeact": getattr(edgeact, "__version__", None),
        "edgeact_file": edgeact.__file__,
        "load_avg_start": os.getloadavg(),
        "started": time.time(),
    }
    try:
        from edgeact import _C

        info["edgeact_C_file"] = _C.__file__
    except ImportError as exc:  # the native backend will say so itself
        info["edgeact_C_file"] = f"(not importable: {exc})"
    return info


def _machine_line(m: dict) -> str:
    return (f"{m['cpu']}; {m['logical_cpus']} logical cores ({m['affinity_cpus']} usable); Python {m['python']}; "
            f"numpy {m['numpy']}; onnxruntime {m['onnxruntime']}; edgeact {m['edgeact']} from {m['edgeact_file']}; "
            f"load avg {m['load_avg_start'][0]:.2f}")


# --- models and inputs -------------------------------------------------------------------------


def untrained_checkpoint(config: Path, out_dir: Path, seed: int, stride: int) -> Path:
    """The config's student model, untrained, num_classes 12, saved with save_checkpoint."""
    import torch
    import yaml

    from edgeact.checkpoint import save_checkpoint
    from edgeact.data.synth import CLASS_NAMES
    from edgeact.models import build_model

    cfg = dict(yaml.safe_load(config.read_text())["student"]["model"])
    cfg["num_classes"] = NUM_CLASSES
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    return save_checkpoint(out_dir / f"{config.stem}.pt", model, list(CLASS_NAMES[:NUM_CLASSES]), stride=stride)


def export(checkpoint: Path, out_dir: Path, verify_steps: int) -> tuple[Path, float]:
    from edgeact.export import export_onnx

    kwargs = {}
    if "verify_steps" in inspect.signature(export_onnx).parameters:
        kwargs["verify_steps"] = verify_steps
    start = time.perf_counter()
    report = export_onnx(checkpoint, out_dir / f"{checkpoint.stem}.onnx", **kwargs)
    path = Path(getattr(report, "path", out_dir / f"{checkpoint.stem}.onnx"))
    return path, time.perf_counter() - start


def load_pool(data: Path, clips: int) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Frames and noisy keypoints of the first ``clips`` clips (test, val, then train)."""
    from edgeact.data import open_dataset

    ds = open_dataset(data)
    chosen = [c for split in ("test", "val", "train") for c in ds.split(split)][:clips]
    frames, keypoints = [], []
    for clip in chosen:
        f, k = np.asarray(clip.frames()), np.asarray(clip.noisy_keypoints)
        n = min(len(f), len(k))
        frames.extend(np.ascontiguousarray(f[i]) for i in range(n))
        keypoints.extend(np.ascontiguousarray(k[i]) for i in range(n))
    return frames, keypoints, [str(getattr(c, "clip_id", "?")) for c in chosen]


class Inputs:
    """Per-pool-index item dicts, built once (nothing is allocated for inputs while timing)."""

    def __init__(self, p, frames: list[np.ndarray], keypoints: list[np.ndarray]):
        spec = getattr(p, "spec", None)
        wants_frames = getattr(spec, "frames", True) is not None
        wants_keypoints = getattr(spec, "keypoints", True) is not None
        self.inputs = ("frames" if wants_frames else "") + ("+" if wants_frames and wants_keypoints else "") + (
            "keypoints" if wants_keypoints else "")
        self.frames = frames if wants_frames else [None] * len(frames)
        self.keypoints = keypoints if wants_keypoints else [None] * len(keypoints)
        self.items = [{"frame": f, "keypoints": k} for f, k in zip(self.frames, self.keypoints)]
        self.size = len(self.items)

    def payloads(self, keys: list, calls: int) -> list[dict]:
        """One push_many mapping per call; stream i of keys starts at pool offset 13*i."""
        distinct = min(calls, self.size)
        return [{key: self.items[(t + 13 * i) % self.size] for i, key in enumerate(keys)} for t in range(distinct)]


# --- measurements ------------------------------------------------------------------------------


def time_push(p, inp: Inputs, warmup: int, pushes: int, repeats: int) -> dict:
    stream = "push"
    for t in range(warmup):
        p.push(inp.frames[t % inp.size], keypoints=inp.keypoints[t % inp.size], stream=stream)
    per_repeat, samples = [], np.empty(repeats * pushes, dtype=np.int64)
    t = warmup
    for r in range(repeats):
        for i in range(pushes):
            frame, kp = inp.frames[t % inp.size], inp.keypoints[t % inp.size]
            start = time.perf_counter_ns()
            p.push(frame, keypoints=kp, stream=stream)
            samples[r * pushes + i] = time.perf_counter_ns() - start
            t += 1
        per_repeat.append(float(np.median(samples[r * pushes:(r + 1) * pushes])) / 1e3)
    p.close_stream(stream)
    us = samples / 1e3
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean()), "pushes": int(us.size), "p50_us_per_repeat": per_repeat}


def time_push_many(p, inp: Inputs, counts: list[int], warmup: int, frames_per_repeat: int, repeats: int) -> dict:
    setups = {}
    for n in counts:
        keys = [f"n{n}s{i}" for i in range(n)]
        calls = max(3, math.ceil(frames_per_repeat / n))
        payloads = inp.payloads(keys, calls + warmup)
        for t in range(max(1, warmup)):  # every stream is created and has stepped before timing
            p.push_many(payloads[t % len(payloads)])
        setups[n] = (keys, calls, payloads, warmup)
    rates = {n: [] for n in counts}
    for _ in range(repeats):
        for n in counts:
            keys, calls, payloads, offset = setups[n]
            m = len(payloads)
            start = time.perf_counter()
            for t in range(offset, offset + calls):
                p.push_many(payloads[t % m])
            rates[n].append(n * calls / (time.perf_counter() - start))
            setups[n] = (keys, calls, payloads, offset + calls)
    out = {}
    for n in counts:
        keys, calls, _, _ = setups[n]
        for key in keys:
            p.close_stream(key)
        out[str(n)] = {"frames_per_s": float(np.median(rates[n])), "frames_per_s_per_repeat": rates[n],
                       "streams": n, "calls_per_repeat": calls}
    return out


def trace_allocations(p, inp: Inputs, streams: int, calls: int, warmup: int) -> dict:
    """tracemalloc bytes per call: transient (peak above the pre-call level) and retained."""
    keys = ["alloc"] if streams == 1 else [f"alloc{i}" for i in range(streams)]
    payloads = inp.payloads(keys, warmup + 20 + calls)
    single = streams == 1
    key = keys[0]

    def call(t):
        payload = payloads[t % len(payloads)]
        if single:
            item = payload[key]
            return p.push(item["frame"], keypoints=item["keypoints"], stream=key)
        return p.push_many(payload)

    for t in range(max(1, warmup)):
        call(t)
    transient = np.zeros(calls, dtype=np.int64)  # preallocated: recording adds no traced bytes
    gc.collect()
    tracemalloc.start()
    try:
        for t in range(warmup, warmup + 20):  # first traced calls may fill caches
            call(t)
        gc.collect()
        start_level = tracemalloc.get_traced_memory()[0]
        for i in range(calls):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = call(warmup + 20 + i)
            peak = tracemalloc.get_traced_memory()[1]
            del result
            transient[i] = peak - before
        gc.collect()
        end_level = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    for k in keys:
        p.close_stream(k)
    retained = (end_level - start_level) / calls
    return {"transient_bytes_p50": float(np.median(transient)), "transient_bytes_max": float(transient.max()),
            "retained_bytes_per_call": float(retained), "retained_bytes_per_frame": float(retained / streams),
            "transient_bytes_per_frame_p50": float(np.median(transient)) / streams,
            "streams": streams, "calls": calls}


def bench_model(onnx: Path, backend: str, inp_pool, args) -> dict:
    from edgeact import Predictor

    threads = args.threads or None
    load_start = time.perf_counter()
    p = Predictor(onnx, backend, threads=threads)
    load_s = time.perf_counter() - load_start
    try:
        inp = Inputs(p, *inp_pool)
        res = {"backend": getattr(p, "backend", backend), "inputs": inp.inputs, "load_s": load_s}
        res["push"] = time_push(p, inp, args.warmup, args.pushes, args.repeats)
        res["push_many"] = time_push_many(p, inp, args.streams, max(3, args.warmup // 10), args.many_frames,
                                          args.repeats)
        res["alloc"] = {
            "push": trace_allocations(p, inp, 1, args.alloc_calls, args.warmup),
            f"push_many_{args.alloc_streams}": trace_allocations(p, inp, args.alloc_streams, args.alloc_calls,
                                                                  max(3, args.warmup // 10)),
        }
    finally:
        p.close()
    return res


# --- report ------------------------------------------------------------------------------------


def _print_result(name: str, res: dict) -> None:
    push, alloc = res["push"], res["alloc"]
    many = "  ".join(f"{n}:{m['frames_per_s']:.0f}" for n, m in res["push_many"].items())
    print(f"{name:<12} {res['backend']:<12} push p50 {push['p50_us']:8.1f} us  p99 {push['p99_us']:8.1f} us | "
          f"push_many frames/s {many}")
    for what, a in alloc.items():
        print(f"{'':<12} {'':<12} {what:<13} transient p50 {a['transient_bytes_p50']:9.0f} B (max "
              f"{a['transient_bytes_max']:.0f})  retained {a['retained_bytes_per_call']:8.1f} B/call")


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))  # export only; no torch thread pool spinning while timing
    info = machine()
    info["threads"] = args.threads
    info["blas_thread_env"] = {var: os.environ.get(var) for var in BLAS_THREAD_VARS}
    print(f"machine: {_machine_line(info)}")
    results = {"label": args.label, "machine": info, "args": json.loads(json.dumps(vars(args), default=str)),
               "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgeact-streams-") as tmp:
        tmp = Path(tmp)
        if args.data is None:
            from edgeact.data.synth import generate

            args.data = generate(tmp / "data", NUM_CLASSES, seed=7, size=args.frame_size, workers=1)
            source = f"generated: {NUM_CLASSES} synthetic clips, {args.frame_size}px, seed 7"
        else:
            source = f"dataset {args.data}"
        pool = load_pool(args.data, args.clips)
        results["inputs"] = {"source": source, "clips": pool[2], "pool_frames": len(pool[0]),
                             "frame_shape": list(pool[0][0].shape), "keypoints_shape": list(pool[1][0].shape)}
        print(f"inputs: {source}; {len(pool[0])} frames of {len(pool[2])} clips, frames "
              f"{tuple(pool[0][0].shape)}, keypoints {tuple(pool[1][0].shape)}")
        sources = args.model or args.config or [REPO / c for c in DEFAULT_CONFIGS]
        print(f"threads {args.threads or 'runtime default'}; repeats {args.repeats}; "
              f"pushes/repeat {args.pushes}; push_many frames/repeat {args.many_frames}")
        for i, source in enumerate(sources):
            name = source.stem if source.stem not in results["models"] else f"{source.stem}.{i}"
            entry = results["models"][name] = {"source": str(source), "backends": {}}
            work = tmp / f"model{i}"
            work.mkdir()
            try:
                ckpt = source if args.model else untrained_checkpoint(source, work, args.seed, args.stride)
                onnx, entry["export_s"] = export(ckpt, work, args.verify_steps)
                entry["onnx_bytes"] = onnx.stat().st_size
            except Exception as exc:  # a revision that cannot build or export this model: say so, go on
                entry["error"] = _error(exc)
                print(f"{name:<12} model/export failed: {entry['error']}")
                continue
            for backend in args.backends:
                try:
                    res = bench_model(onnx, backend, pool[:2], args)
                except Exception as exc:  # e.g. a backend this revision cannot run the model on
                    entry["backends"][backend] = {"error": _error(exc)}
                    print(f"{name:<12} {backend:<12} failed: {_error(exc)}")
                    continue
                entry["backends"][backend] = res
                _print_result(name, res)
    info["load_avg_end"] = os.getloadavg()
    results["errors"] = sum(1 for m in results["models"].values()
                            for r in [m, *m["backends"].values()] if "error" in r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
