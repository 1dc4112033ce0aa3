"""Soak test: does the streaming runtime hold its memory and its latency over 100,000 pushes?

    python benchmarks/soak.py [--model student.pt] [--onnx student.onnx] [--backends torch onnxruntime native]
                              [--pushes 100000] [--streams 16] [--intervals 20] [--json out.json] [--smoke]

Per backend, two phases on one Predictor each:
- single: ``--pushes`` ``push(keypoints=...)`` calls on one stream at a time;
- many: ``--pushes`` frames through ``push_many`` over ``--streams`` streams (pushes / streams calls).
Throughout, a seeded schedule (``--seed``) resets streams (p=``--reset-p`` per stream and call),
closes them and opens fresh ones under new ids (p=``--close-p``); a fresh stream is sometimes
reset before its first push (a no-op by contract). Stream ids are new ints, so a leak per stream
id would show.

Each phase is cut into ``--intervals`` equal intervals. At the end of each the process RSS is read
(psutil if installed, else /proc/self/statm) and the interval's p50 wall time per frame of the
push/push_many call alone (the schedule's resets and closes are not timed) is taken from a buffer
allocated before the phase, so the benchmark itself adds nothing per push. The first
``--warmup-intervals`` intervals are warm-up (arena growth, the pool reaching its size, caches).

- RSS growth % = (RSS at the end - RSS after warm-up) / RSS after warm-up; target < 1 %.
- p50 drift % = (last interval's p50 - first post-warm-up interval's p50) / the latter; target
  |drift| < 5 %. The spread of the post-warm-up interval p50s (max/min - 1) is printed beside it:
  on a shared machine it says how much of a drift is load, not the runtime.

``--tracemalloc`` traces Python allocations from the end of warm-up to the end of each phase and
prints the top growth by line (slow; for finding a leak, not for the latency numbers).

Model: ``--model`` a checkpoint (.pt: the torch backend; exported to ONNX for the others unless
``--onnx`` is given), or by default a tiny untrained pose + LSTM model built here (torch seed
``--seed``), so a fresh clone runs it. Keypoint inputs are a seeded pool of 64 arrays: half the
model's exact float32 shape (the fast path), half float64 with NaN at invisible joints and a
different person count (the general path).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy is imported
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_name  # noqa: E402

BACKENDS = ("torch", "onnxruntime", "native")
RSS_GROWTH_TARGET_PCT = 1.0
P50_DRIFT_TARGET_PCT = 5.0
TINY_POSE = {  # the pose + LSTM model of tests/benchmarks/test_streams_benchmark.py
    "inputs": ["keypoints"], "num_classes": 12,
    "pose": {"joints": 18, "people": 2, "center_joints": [8, 11], "joint_channels": [8, 8],
             "relation_channels": [8, 8], "dim": 16},
    "head": {"name": "lstm", "hidden": 16},
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint (.pt); default: a tiny untrained pose model")
    parser.add_argument("--onnx", type=Path, help="ONNX export of --model (default: exported here)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--pushes", type=int, default=100_000, help="frames pushed per phase")
    parser.add_argument("--streams", type=int, default=16, help="streams of the push_many phase")
    parser.add_argument("--intervals", type=int, default=20)
    parser.add_argument("--warmup-intervals", type=int, default=2)
    parser.add_argument("--reset-p", type=float, default=0.002, help="per stream and call")
    parser.add_argument("--close-p", type=float, default=0.001, help="per stream and call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true", help="trace Python allocations after warm-up")
    parser.add_argument("--smoke", action="store_true", help="3,000 pushes a phase, 4 streams, 6 intervals")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.smoke:
        args.pushes, args.streams, args.intervals, args.warmup_intervals = 3000, 4, 6, 1
    if not 0 < args.warmup_intervals < args.intervals - 1:
        parser.error("--warmup-intervals must leave at least two intervals after it")
    return args


def rss_bytes() -> int:
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process().memory_info().rss


def tiny_checkpoint(out_dir: Path, seed: int) -> Path:
    import torch

    from edgeact.checkpoint import save_checkpoint
    from edgeact.data.synth import CLASS_NAMES
    from edgeact.models import build_model

    torch.manual_seed(seed)
    model = build_model(TINY_POSE).eval()
    return save_checkpoint(out_dir / "tiny_pose.pt", model, CLASS_NAMES[: TINY_POSE["num_classes"]])


def keypoint_pool(spec, rng: np.random.Generator, n: int = 64) -> list[np.ndarray]:
    kp = spec.keypoints
    if kp is None:
        raise SystemExit("soak.py drives keypoint models; this model takes no keypoints.")
    pool = []
    for i in range(n):
        people = kp.people if i % 2 == 0 else max(1, kp.people + int(rng.integers(-1, 2)))
        arr = rng.normal(0.5, 0.2, (people, kp.joints, kp.dims + 1))
        arr[:, :, kp.dims] = rng.random((people, kp.joints)) > 0.2  # visibility 0 or 1
        if i % 2 == 0:
            pool.append(arr.astype(np.float32))
        else:
            arr[:, :, :kp.dims][arr[:, :, kp.dims] == 0] = np.nan  # as pose estimators emit
            pool.append(arr)
    return pool


class Schedule:
    """Seeded stream churn: resets, closes and fresh ids, drawn before each timed call."""

    def __init__(self, p, rng: np.random.Generator, streams: int, reset_p: float, close_p: float):
        self.p, self.rng, self.reset_p, self.close_p = p, rng, reset_p, close_p
        self.keys = list(range(streams))
        self.next_id = streams
        self.counts = {"resets": 0, "closes": 0, "opened": streams}

    def step(self) -> None:
        n = len(self.keys)
        for i in np.flatnonzero(self.rng.random(n) < self.reset_p):
            self.p.reset(self.keys[i])
            self.counts["resets"] += 1
        for i in np.flatnonzero(self.rng.random(n) < self.close_p):
            if self.keys[i] in self.p.streams:  # a fresh id not pushed yet is not open
                self.p.close_stream(self.keys[i])
                self.counts["closes"] += 1
            self.keys[i] = self.next_id
            self.next_id += 1
            self.counts["opened"] += 1
            if self.rng.random() < 0.5:
                self.p.reset(self.keys[i])  # before its first push: nothing to do


def run_phase(p, pool: list[np.ndarray], streams: int, args, rng: np.random.Generator) -> dict:
    calls = math.ceil(args.pushes / streams)
    bounds = [round(calls * (i + 1) / args.intervals) for i in range(args.intervals)]
    wall_ns = np.full(calls, -1, np.int64)  # written now: np.empty's pages would fault in during the run, 8 B of RSS a call
    schedule = Schedule(p, rng, streams, args.reset_p, args.close_p)
    picks = rng.integers(0, len(pool), (calls, streams))
    rss, snapshot, top_growth = [rss_bytes()], None, None
    started = time.perf_counter()
    call = 0
    for interval, end in enumerate(bounds):
        while call < end:
            schedule.step()
            keys, row = schedule.keys, picks[call]
            if streams == 1:
                t0 = time.perf_counter_ns()
                p.push(keypoints=pool[row[0]], stream=keys[0])
            else:
                items = {k: {"keypoints": pool[j]} for k, j in zip(keys, row)}
                t0 = time.perf_counter_ns()
                p.push_many(items)
            wall_ns[call] = time.perf_counter_ns() - t0
            call += 1
        rss.append(rss_bytes())
        if args.tracemalloc and interval == args.warmup_intervals - 1:
            tracemalloc.start(8)
            snapshot = tracemalloc.take_snapshot()
    if snapshot is not None:
        diff = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")
        tracemalloc.stop()
        top_growth = [str(stat) for stat in diff[:10]]
    starts = [0, *bounds[:-1]]
    p50_us = [float(np.median(wall_ns[a:b])) / streams / 1e3 for a, b in zip(starts, bounds)]
    w = args.warmup_intervals
    post = p50_us[w:]
    result = {
        "streams": streams, "calls": calls, "frames": calls * streams, "wall_s": time.perf_counter() - started,
        "schedule": schedule.counts, "open_streams_end": len(p.streams),
        "intervals": [{"calls_end": b, "rss_bytes": r, "p50_us_per_frame": q} for b, r, q in zip(bounds, rss[1:], p50_us)],
        "rss_start_bytes": rss[0], "rss_after_warmup_bytes": rss[w], "rss_end_bytes": rss[-1],
        "rss_growth_pct": 100.0 * (rss[-1] - rss[w]) / rss[w],
        "rss_max_growth_pct": 100.0 * (max(rss[w:]) - rss[w]) / rss[w],
        "p50_first_us": post[0], "p50_last_us": post[-1],
        "p50_drift_pct": 100.0 * (post[-1] - post[0]) / post[0],
        "p50_spread_pct": 100.0 * (max(post) / min(post) - 1.0),
    }
    result["meets_targets"] = (result["rss_growth_pct"] < RSS_GROWTH_TARGET_PCT
                               and abs(result["p50_drift_pct"]) < P50_DRIFT_TARGET_PCT)
    if top_growth is not None:
        result["tracemalloc_top_growth"] = top_growth
    return result


def soak_backend(backend: str, pt: Path | None, onnx: Path, args) -> dict:
    from edgeact import Predictor

    model = pt if backend == "torch" else onnx
    if model is None:
        raise SystemExit("the torch backend needs a checkpoint: pass --model.")
    out = {"model": str(model)}
    for phase, streams in (("single", 1), ("many", args.streams)):
        rng = np.random.default_rng(args.seed)
        with Predictor(model, backend, threads=args.threads) as p:
            out[phase] = run_phase(p, keypoint_pool(p.spec, rng), streams, args, rng)
        _print_phase(backend, phase, out[phase])
    return out


def _print_phase(backend: str, phase: str, r: dict) -> None:
    mib = 1 << 20
    print(f"{backend:12s} {phase:6s} {r['frames']:7d} frames {r['streams']:2d} streams {r['wall_s']:6.1f} s | RSS MiB "
          f"start {r['rss_start_bytes'] / mib:.1f} warm {r['rss_after_warmup_bytes'] / mib:.1f} "
          f"end {r['rss_end_bytes'] / mib:.1f} growth {r['rss_growth_pct']:+.2f}% | p50 us/frame "
          f"{r['p50_first_us']:.1f} -> {r['p50_last_us']:.1f} drift {r['p50_drift_pct']:+.1f}% "
          f"(spread {r['p50_spread_pct']:.1f}%) | {r['schedule']} | "
          f"{'ok' if r['meets_targets'] else 'MISSES TARGETS'}", flush=True)
    for line in r.get("tracemalloc_top_growth", []):
        print("    " + line)


def main(argv=None) -> int:
    args = parse_args(argv)
    import onnxruntime

    import edgeact

    machine = {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "load_avg_start": os.getloadavg(),
               "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
               "edgeact": getattr(edgeact, "__version__", None), "rss_source": _rss_source()}
    print(f"machine: {machine['cpu']}; {machine['logical_cpus']} logical cores; load avg "
          f"{machine['load_avg_start'][0]:.2f}; onnxruntime {machine['onnxruntime']}; RSS from {machine['rss_source']}")
    results, errors = {}, 0
    with tempfile.TemporaryDirectory() as tmp:
        pt, onnx = args.model, args.onnx
        if pt is None and onnx is None:
            pt = tiny_checkpoint(Path(tmp), args.seed)
        if onnx is None and set(args.backends) - {"torch"}:
            from edgeact.export import export_onnx

            onnx = export_onnx(pt, Path(tmp) / "model.onnx").path
        for backend in args.backends:
            try:
                results[backend] = soak_backend(backend, pt, onnx, args)
            except Exception as exc:  # recorded; the other backends still run
                results[backend] = {"error": f"{type(exc).__name__}: {exc}"}
                errors += 1
                print(f"{backend}: {results[backend]['error']}", flush=True)
    machine["load_avg_end"] = os.getloadavg()
    report = {"machine": machine, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "targets": {"rss_growth_pct": RSS_GROWTH_TARGET_PCT, "p50_drift_pct": P50_DRIFT_TARGET_PCT},
              "results": results, "errors": errors}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if errors else 0


def _rss_source() -> str:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return "/proc/self/statm"
    return "psutil"


if __name__ == "__main__":
    sys.exit(main())
