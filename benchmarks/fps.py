"""Per-frame latency of edgeact.Predictor per observation ratio, per backend, vs recomputing.

    python benchmarks/fps.py --model run/student.onnx --model run/student.pt [--data DIR]

For each model file (its backend chosen by suffix, or --backend) the script streams clips of a
dataset through ``Predictor.push`` and reports, per observation ratio r = 0.1 .. 1.0 (the frames
in the r-th tenth of each clip): push() latency p50/p99 and the FPS it allows, per-stage
medians (preprocess / inference / postprocess), accuracy at r, and the time to decision. The
*recompute* baseline is what a model without carried state must do: at each frame, run the
whole prefix seen so far again; its cost grows with r while the streaming step stays flat.
Then multi-stream throughput with ``push_many`` for 1, 4, 16 streams.

Timings: warm-up first, medians and tails, the machine printed. Numbers from one run only are
comparable with each other.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeact import Predictor
from edgeact.data import open_dataset
from edgeact.data.sampling import observation_cutoff
from edgeact.predictor import DecisionPolicy
from edgeact.preprocess import preprocess_frame, preprocess_keypoints
from machine_info import cpu_name

RATIOS = [round(0.1 * i, 1) for i in range(1, 11)]


def machine() -> str:
    import onnxruntime

    return (f"{cpu_name()}; {os.cpu_count()} logical cores; Python {platform.python_version()}; "
            f"onnxruntime {onnxruntime.__version__}")


def _inputs(p: Predictor, clip):
    frames = clip.frames() if p.spec.frames else [None] * clip.num_frames
    kps = clip.noisy_keypoints if p.spec.keypoints else [None] * clip.num_frames
    return list(zip(frames, kps))


def stream_clips(p: Predictor, clips, warmup: int) -> dict:
    """Push every frame of every clip; collect latency per ratio bucket and decisions."""
    items = _inputs(p, clips[0])
    for frame, kp in items[:warmup]:
        p.push(frame, keypoints=kp, stream="warmup")
    p.close_stream("warmup")
    buckets = {r: [] for r in RATIOS}
    stages = {"preprocess": [], "inference": [], "postprocess": []}
    correct = {r: 0 for r in RATIOS}
    decision_frames, decision_ms, decided_right = [], [], 0
    for n, clip in enumerate(clips):
        stream = f"clip{n}"
        items = _inputs(p, clip)
        cutoffs = {r: observation_cutoff(len(items), r) for r in RATIOS}
        bucket_of = np.searchsorted(sorted(set(cutoffs.values())), np.arange(1, len(items) + 1))
        by_cut = {c: r for r, c in sorted(cutoffs.items(), reverse=True)}
        edges = sorted(by_cut)
        elapsed = 0.0
        first_decision = None
        for t, (frame, kp) in enumerate(items, start=1):
            start = time.perf_counter()
            pred = p.push(frame, keypoints=kp, stream=stream)
            took = (time.perf_counter() - start) * 1e3
            elapsed += took
            buckets[by_cut[edges[bucket_of[t - 1]]]].append(took)
            for k in stages:
                stages[k].append(pred.timings_ms[k])
            for r, c in cutoffs.items():
                if c == t:
                    correct[r] += pred.index == clip.label
            if pred.decided and first_decision is None:
                first_decision = (t, elapsed, pred.decision_index == clip.label)
        if first_decision:
            decision_frames.append(first_decision[0] / len(items))
            decision_ms.append(first_decision[1])
            decided_right += first_decision[2]
        p.close_stream(stream)
    return {
        "latency_ms": {r: _stats(v) for r, v in buckets.items() if v},
        "stages_ms": {k: float(np.median(v)) for k, v in stages.items()},
        "accuracy": {r: correct[r] / len(clips) for r in RATIOS},
        "decided": len(decision_frames) / len(clips),
        "decision_accuracy": decided_right / max(1, len(decision_frames)),
        "decision_ratio_median": float(np.median(decision_frames)) if decision_frames else None,
        "time_to_decision_ms_median": float(np.median(decision_ms)) if decision_ms else None,
    }


def recompute_baseline(p: Predictor, clip, per_ratio: int = 3) -> dict:
    """Latency of re-running the whole prefix (zero state, every step) at frames of each ratio."""
    backend, spec = p.runner, p.spec
    data = []
    for frame, kp in _inputs(p, clip):
        step = {}
        if spec.frames:
            step["frames"] = preprocess_frame(frame, spec.frames)[None]
        if spec.keypoints:
            step["keypoints"] = preprocess_keypoints(kp, spec.keypoints)[None]
        data.append(step)
    out = {}
    for r in RATIOS:
        cut = observation_cutoff(len(data), r)
        times = []
        for _ in range(per_ratio):
            start = time.perf_counter()
            state = backend.init_state(1)
            for step in data[:cut:spec.stride]:
                _, state = backend.step(step, state)
            times.append((time.perf_counter() - start) * 1e3)
        out[r] = _stats(times)
    return out


def multistream(model: str, backend: str, clip, counts: list[int], frames: int, threads: int | None) -> dict:
    out = {}
    for n in counts:
        p = Predictor(model, backend, threads=threads)
        items = _inputs(p, clip)
        def payload(t):
            frame, kp = items[t % len(items)]
            return {s: {"frame": frame, "keypoints": kp} for s in range(n)}
        for t in range(3):
            p.push_many(payload(t))
        times = []
        for t in range(frames):
            start = time.perf_counter()
            p.push_many(payload(t))
            times.append(time.perf_counter() - start)
        median = float(np.median(times))
        out[n] = {"step_ms_median": median * 1e3, "frames_per_s": n / median}
        p.close()
    return out


def _stats(values: list[float]) -> dict:
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "n": int(arr.size)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="model file (repeatable)")
    parser.add_argument("--backend", default="auto", help="backend for every --model (default: by suffix)")
    parser.add_argument("--data", help="dataset dir (default: a small generated synthetic set)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--streams", default="1,4,16", help="stream counts for push_many throughput")
    parser.add_argument("--stream-frames", type=int, default=30, help="timed push_many calls per count")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's)")
    parser.add_argument("--no-recompute", action="store_true", help="skip the recompute-the-window baseline")
    parser.add_argument("--threshold", type=float, default=0.8, help="decision threshold")
    parser.add_argument("--json", help="write all numbers to this JSON file")
    args = parser.parse_args(argv)

    print(f"machine: {machine()}")
    tmp = None
    if args.data is None:
        from edgeact.data.synth import generate

        first = Predictor(args.model[0], args.backend)
        size = first.spec.frames.size[0] if first.spec.frames else 112
        tmp = tempfile.TemporaryDirectory()
        args.data = str(generate(Path(tmp.name) / "ds", 60, seed=7, size=size))
        print(f"data: generated 60 synthetic clips at {size}px")
    clips = list(open_dataset(args.data).split(args.split))[: args.clips]
    results = {"machine": machine(), "data": args.data, "clips": len(clips), "models": {}}
    policy = DecisionPolicy(threshold=args.threshold)
    for model in args.model:
        p = Predictor(model, args.backend, policy=policy, threads=args.threads)
        name = f"{Path(model).name} [{p.backend}]"
        res = stream_clips(p, clips, args.warmup)
        if not args.no_recompute:
            longest = max(clips, key=lambda c: c.num_frames)
            res["recompute_ms"] = recompute_baseline(p, longest)
        counts = [int(c) for c in args.streams.split(",") if c]
        res["multistream"] = multistream(model, args.backend, clips[0], counts, args.stream_frames, args.threads)
        results["models"][name] = res
        _print_model(name, res)
        p.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    if tmp:
        tmp.cleanup()
    return 0


def _print_model(name: str, res: dict) -> None:
    print(f"\n== {name}")
    stages = ", ".join(f"{k} {v:.2f}" for k, v in res["stages_ms"].items())
    print(f"median per-stage ms: {stages}")
    header = f"{'ratio':>5} | {'push p50 ms':>11} | {'p99 ms':>7} | {'FPS@p50':>7} | {'acc':>5}"
    if "recompute_ms" in res:
        header += f" | {'recompute p50 ms':>16} | {'x slower':>8}"
    print(header)
    print("-" * len(header))
    for r in RATIOS:
        lat = res["latency_ms"].get(r)
        if not lat:
            continue
        row = f"{r:>5.1f} | {lat['p50']:>11.2f} | {lat['p99']:>7.2f} | {1e3 / lat['p50']:>7.0f} | {res['accuracy'][r]:>5.2f}"
        if "recompute_ms" in res:
            rec = res["recompute_ms"][r]["p50"]
            row += f" | {rec:>16.2f} | {rec / lat['p50']:>8.1f}"
        print(row)
    ttd = res["time_to_decision_ms_median"]
    print(f"decided on {res['decided']:.0%} of clips, {res['decision_accuracy']:.0%} of decisions right; "
          f"median decision at {res['decision_ratio_median'] if res['decision_ratio_median'] is not None else float('nan'):.2f} "
          f"of the clip, {ttd if ttd is not None else math.nan:.1f} ms of compute")
    for n, m in res["multistream"].items():
        print(f"push_many {n:>3} streams: {m['step_ms_median']:.2f} ms per call, {m['frames_per_s']:.0f} frames/s")


if __name__ == "__main__":
    sys.exit(main())
