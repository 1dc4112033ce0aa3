"""Per-frame latency of edgeact.Predictor per observation ratio, per backend, vs recomputing.

    python benchmarks/fps.py                      # the model `edgeact demo` trained (demo/run)
    python benchmarks/fps.py --model run/student.onnx --model run/student.pt [--data DIR]
        [--backend all] [--input-size 1920x1080] [--json out.json] [--plot out.png] [--smoke]

Each model file runs on every backend that takes it (``--backend all``, the default: an .onnx
on onnxruntime and native, a .pt on torch, an .engine on tensorrt, where installed), each in a
fresh process, so that its peak RSS is its own. The clips of a dataset stream through
``Predictor.push`` one frame at a time, and per observation ratio r = 0.1 .. 1.0 (the frames in
the r-th tenth of each clip) the script reports:

- push() latency, split by what the push did. A model of stride s steps on every s-th frame;
  the other pushes only carry the last prediction over (``Prediction.stepped`` says which).
  Stepped pushes: p50 and p99; carried pushes: p50. FPS is what a camera could feed at those
  p50 costs (one stepped and s - 1 carried pushes per s frames).
- accuracy at r (top-1 after the last frame of the r-th tenth), and how many clips were
  decided by then (``DecisionPolicy(threshold=--threshold)``) and decided right.
- the baselines, measured in the same run on the same artifact and backend. Each model step of
  a recomputing server costs: preprocess the new frame (once; it keeps the window's inputs
  preprocessed), then run the model from scratch over
  * ``window_8``, ``window_16``: the last W (strided) inputs, a sliding window, the way
    DeepStream and MMAction2 demos serve action recognition; fewer than W early in a clip;
  * ``prefix``: everything seen so far (full-prefix recompute).
  Timed ``--repeats`` times at the last model step of each ratio of the longest clip; keeping
  the window (a ring buffer) is not timed, which favours the baselines. How the model runs
  over a window: a .pt (torch) runs the model's offline forward over it in one batched call,
  as those demos do; an exported graph (.onnx, .engine) has only the step form, so a fresh
  zero state is stepped over the window with ``Runner.step`` (one runtime call per input).
  Right before each ratio's baselines, that same frame is pushed for ``--repeats`` stride
  cycles on a stream of its own (after one cycle of warm-up) and its stepped pushes timed: the
  "paired push" column, measured within a fraction of a second of the baselines so that load
  drift hits both alike (timed between the baselines' repeats, it ran with their cold caches,
  up to 30% slower). The "x" columns are baseline p50 / paired push p50; on a quiet machine
  the paired push matches the stepped column. With the same step graph on both sides,
  a window of W costs about W model steps, so x_W stays near W x (step / push): below W
  wherever push() costs more than the bare step.

Then, per run: per-stage medians (stepped and carried pushes apart), time to decision (median
fraction of the clip, frames, camera seconds at the clip's fps, and compute ms pushed until
then), SDK overhead, multi-stream throughput with ``push_many`` (whole stride cycles timed),
and peak RSS. SDK overhead is a stepped push() end to end vs the bare runner call
``Runner.step`` on the same preprocessed input, at the model's own input size and with a
1920x1080 frame (frame models only). ``Runner.step`` validates its arrays and allocates the
next state, which push()'s state pool does not, so the runtime call as push() makes it, its
inference stage (wall clock, as the Predictor measures it), is reported beside them.

``--input-size WxH`` turns the dataset's frames into camera frames of that size before each
push (outside the timing): stretched for a model that stretches (``resize: stretch``),
padded to the aspect then scaled for one that centre-crops, so that preprocessing recovers
what the model was trained on. Keypoint models take no frames; for them it does not apply.

Timings: warm-up first, medians and tails, the machine printed. Numbers from one run only are
comparable with each other. ``--clock cpu`` times with this process's CPU time instead of the
wall clock: on a shared machine a long measurement (a window of 16 steps) is preempted more
often than a short one (a push), which inflates the baselines; CPU time does not count the
waiting. It fits CPU runtimes only (a GPU step waits without CPU time), and the per-stage
medians stay wall clock (the Predictor measures them). Every runtime gets ``--threads`` threads
(default 1). ``--smoke`` is a tiny run (2 clips, few repeats) that checks the script and its
JSON, not the timings. docs/benchmarks.md shows the output and what it measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import math
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgeact import Predictor
from edgeact.backends import BACKENDS, is_available, resolve_backend
from edgeact.data import open_dataset
from edgeact.data.sampling import observation_cutoff
from edgeact.predictor import DecisionPolicy
from edgeact.preprocess import preprocess_frame, preprocess_keypoints
from edgeact.spec import FRAMES, KEYPOINTS, read_spec
from machine_info import cpu_name

RATIOS = [round(0.1 * i, 1) for i in range(1, 11)]
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
now = CLOCKS["wall"]  # the clock every timing reads; run_one sets --clock (one run per process)
WINDOWS = (8, 16)
BASELINES = tuple(f"window_{w}" for w in WINDOWS) + ("prefix",)
FULL_HD = (1920, 1080)
DEMO_MODEL = Path("demo/run/student.onnx")  # where `edgeact demo` (default --out demo) exports its model
DEMO_DATA = Path("demo/data")


def machine() -> str:
    import onnxruntime

    return (f"{cpu_name()}; {os.cpu_count()} logical cores; Python {platform.python_version()}; "
            f"onnxruntime {onnxruntime.__version__}")


# -- inputs ------------------------------------------------------------------------------------
def camera_frame(frame: np.ndarray, size: tuple[int, int] | None, resize: str) -> np.ndarray:
    """A dataset frame as a camera of ``size`` (W, H) would give it; None keeps it as it is."""
    if size is None or frame.shape[1::-1] == size:
        return frame
    width, height = size
    if resize == "crop":  # pad to the camera's aspect; the model's centre crop takes the padding off
        h, w = frame.shape[:2]
        target_w, target_h = max(w, round(h * width / height)), max(h, round(w * height / width))
        top, left = (target_h - h) // 2, (target_w - w) // 2
        frame = cv2.copyMakeBorder(frame, top, target_h - h - top, left, target_w - w - left,
                                   cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def clip_inputs(p: Predictor, clip, size: tuple[int, int] | None = None):
    """(frame, keypoints) per frame of ``clip``, as push() takes them; frames made lazily."""
    frames = clip.frames() if p.spec.frames else None
    kps = clip.noisy_keypoints if p.spec.keypoints else None
    for t in range(clip.num_frames):
        yield at_size(p, (frames[t] if frames is not None else None, kps[t] if kps is not None else None), size)


def at_size(p: Predictor, item: tuple, size: tuple[int, int] | None) -> tuple:
    """A (frame, keypoints) item with its frame as a camera of ``size`` gives it. Kept at the
    dataset's size until used, so that a few 1080p frames at a time are in memory (peak RSS)."""
    frame, kp = item
    return (camera_frame(frame, size, p.spec.frames.resize) if frame is not None else None), kp


def model_input(p: Predictor, frame: np.ndarray | None, kp: np.ndarray | None) -> dict[str, np.ndarray]:
    """One frame's preprocessed model input, batch of 1 (what Runner.step takes)."""
    step = {}
    if p.spec.frames:
        step[FRAMES] = preprocess_frame(frame, p.spec.frames)[None]
    if p.spec.keypoints:
        step[KEYPOINTS] = preprocess_keypoints(kp, p.spec.keypoints)[None]
    return step


def model_inputs(p: Predictor, clip, size: tuple[int, int] | None = None) -> list[dict[str, np.ndarray]]:
    """The preprocessed inputs of the frames the model steps on (every stride-th)."""
    return [model_input(p, *item) for t, item in enumerate(clip_inputs(p, clip, size)) if t % p.spec.stride == 0]


def ratio_of_frame(num_frames: int) -> list[float]:
    """The observation ratio each frame (0-based) falls in: the first r whose cutoff reaches it."""
    cutoffs = [observation_cutoff(num_frames, r) for r in RATIOS]
    return [RATIOS[next(i for i, c in enumerate(cutoffs) if c > t)] for t in range(num_frames)]


# -- streaming ---------------------------------------------------------------------------------
def stream_clips(p: Predictor, clips, warmup: int, size: tuple[int, int] | None) -> dict:
    """Push every frame of every clip; latency per ratio (stepped / carried), stages, decisions."""
    for n, (frame, kp) in enumerate(clip_inputs(p, clips[0], size)):
        if n == warmup:
            break
        p.push(frame, keypoints=kp, stream="warmup")
    p.close_stream("warmup")
    lat = {r: {"stepped": [], "carried": []} for r in RATIOS}
    stages = {"stepped": {}, "carried": {}}
    correct = dict.fromkeys(RATIOS, 0)
    decided = {r: [0, 0] for r in RATIOS}  # clips decided by r, decided right by r
    decisions = []  # (fraction of clip, frames, camera seconds, compute ms)
    for n, clip in enumerate(clips):
        stream = f"clip{n}"
        ratio_at = ratio_of_frame(clip.num_frames)
        cutoffs = {r: observation_cutoff(clip.num_frames, r) for r in RATIOS}
        elapsed, first = 0.0, None
        for t, (frame, kp) in enumerate(clip_inputs(p, clip, size), start=1):
            start = now()
            pred = p.push(frame, keypoints=kp, stream=stream)
            took = (now() - start) * 1e3
            elapsed += took
            kind = "stepped" if pred.stepped else "carried"
            lat[ratio_at[t - 1]][kind].append(took)
            for k, v in pred.timings_ms.items():
                stages[kind].setdefault(k, []).append(v)
            if pred.decided and first is None:
                first = (t / clip.num_frames, t, t / clip.fps if clip.fps else None, elapsed,
                         pred.decision_index == clip.label)
                decisions.append(first[:4])
            for r, cut in cutoffs.items():
                correct[r] += cut == t and pred.index == clip.label
        for r, cut in cutoffs.items():
            if first is not None and first[1] <= cut:
                decided[r][0] += 1
                decided[r][1] += first[4]
        p.close_stream(stream)
    columns = list(zip(*decisions)) if decisions else [[]] * 4
    return {
        "latency_ms": {r: {k: _stats(v) for k, v in lat[r].items()} for r in RATIOS},
        "stages_ms": {kind: {k: float(np.median(v)) for k, v in s.items()} for kind, s in stages.items()},
        "accuracy": {r: correct[r] / len(clips) for r in RATIOS},
        "decision": {
            "by_ratio": {r: {"decided": d / len(clips), "decided_right": right / len(clips)}
                         for r, (d, right) in decided.items()},
            "median_ratio": _median(columns[0]),
            "median_frames": _median(columns[1]),
            "median_camera_s": _median([c for c in columns[2] if c is not None]),
            "median_compute_ms": _median(columns[3]),
        },
    }


# -- baselines ---------------------------------------------------------------------------------
class Recompute:
    """Runs the model from scratch over a window of preprocessed inputs (the baselines' work)."""

    def __init__(self, runner):
        self.runner = runner
        model = getattr(runner.runtime, "model", None) if runner.name == "torch" else None
        self.offline = model if hasattr(model, "forward_offline") else None
        self.method = ("torch forward_offline over the window, one batched call" if self.offline is not None
                       else "a zero state stepped over the window with Runner.step")

    def __call__(self, window: list[dict[str, np.ndarray]]) -> None:
        if self.offline is None:
            state = self.runner.init_state(1)
            for step in window:
                _, state = self.runner.step(step, state)
            return
        import torch

        device = next(self.offline.parameters()).device
        with torch.inference_mode():
            batch = {k: torch.from_numpy(np.concatenate([w[k] for w in window])[None]).to(device) for k in window[0]}
            self.offline.forward_offline(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # done, not just queued (push() waits for its logits too)


def baselines(p: Predictor, clip, repeats: int, size: tuple[int, int] | None) -> tuple[dict, dict, str]:
    """Per baseline, per ratio: ms to preprocess the newest frame and recompute the model over the
    window, at the last model step of that ratio's frames of ``clip``; and, just before them (so
    that load drift hits both alike), stepped push() of that frame on a stream of its own."""
    recompute = Recompute(p.runner)
    stride = p.spec.stride
    steps = model_inputs(p, clip, size)
    seen = {r: -(-observation_cutoff(clip.num_frames, r) // stride) for r in RATIOS}  # steps run by r
    newest = {(n - 1) * stride for n in seen.values()}
    raw = {t: item for t, item in enumerate(clip_inputs(p, clip)) if t in newest}  # made camera frames when used
    recompute(steps[: WINDOWS[0]])  # warm-up
    out, pushes = {name: {} for name in BASELINES}, {}
    for r in RATIOS:
        done = steps[: seen[r]]
        frame, kp = at_size(p, raw[(seen[r] - 1) * stride], size)
        windows = {**{f"window_{w}": done[-w:] for w in WINDOWS}, "prefix": done}
        times = {name: [] for name in ("push", *windows)}
        for t in range((repeats + 1) * stride):  # the first stride cycle warms up
            start = now()
            pred = p.push(frame, keypoints=kp, stream="paired")
            took = (now() - start) * 1e3
            if pred.stepped and t >= stride:
                times["push"].append(took)
        for _ in range(repeats):
            for name, window in windows.items():
                start = now()
                model_input(p, frame, kp)  # a recomputing server preprocesses each new frame once too
                recompute(window)
                times[name].append((now() - start) * 1e3)
        pushes[r] = _stats(times["push"])
        for name, window in windows.items():
            out[name][r] = {**_stats(times[name]), "steps": len(window)}
    p.close_stream("paired")
    return out, pushes, recompute.method


def sdk_overhead(p: Predictor, clip, stepped_pushes: int) -> dict:
    """Stepped push() end to end vs Runner.step on the same preprocessed input: at the model's
    input size, pushes interleaved with Runner.step (a stride cycle, then one step) so that load
    drift hits both alike; then, for a frame model, pushes of 1920x1080 frames. The runtime call
    is the same whatever the camera's size, so both divide by the one Runner.step timed warm
    (timed between 1080p pushes, whose frames flush the caches, it ran up to 2x slower)."""
    sizes = {"model_size": p.spec.frames.size[::-1] if p.spec.frames else None}
    if p.spec.frames:
        sizes["1920x1080"] = FULL_HD
    stride = p.spec.stride
    items = list(itertools.islice(clip_inputs(p, clip), stride * 4))
    steps = [model_input(p, *at_size(p, items[t], sizes["model_size"])) for t in range(0, len(items), stride)]
    state = p.runner.init_state(1)
    out, bare_ms = {"model_size": None, "1920x1080": None}, []
    for name, size in sizes.items():
        push_ms, inference_ms = [], []
        for n in range(stepped_pushes + 2):  # the first two: warm-up
            for t in range(n * stride, (n + 1) * stride):
                frame, kp = at_size(p, items[t % len(items)], size)
                start = now()
                pred = p.push(frame, keypoints=kp, stream="overhead")
                took = (now() - start) * 1e3
                if pred.stepped:
                    push_ms.append(took)
                    inference_ms.append(pred.timings_ms["inference"])
            if name == "model_size":
                start = now()
                _, state = p.runner.step(steps[n % len(steps)], state)
                bare_ms.append((now() - start) * 1e3)
        p.close_stream("overhead")
        push, bare = float(np.median(push_ms[2:])), float(np.median(bare_ms[2:]))
        out[name] = {"input": "x".join(map(str, size)) if size else "keypoints", "push_ms": push,
                     "inference_stage_ms": float(np.median(inference_ms[2:])), "runner_step_ms": bare,
                     "ratio": push / bare}
    return out


def multistream(p: Predictor, clip, counts: list[int], calls: int, size: tuple[int, int] | None) -> dict:
    """push_many of n streams in step (all step on the same calls): whole stride cycles timed."""
    stride = p.spec.stride
    items = list(itertools.islice(clip_inputs(p, clip), 4 * stride))
    calls = -(-calls // stride) * stride
    out = {}
    for n in counts:
        def payload(t):
            frame, kp = at_size(p, items[t % len(items)], size)
            return {s: {"frame": frame, "keypoints": kp} for s in range(n)}
        for t in range(stride):  # warm-up: one cycle
            p.push_many(payload(t))
        start = now()
        for t in range(calls):
            p.push_many(payload(t))
        took = now() - start
        for s in range(n):
            p.close_stream(s)
        out[n] = {"calls": calls, "ms_per_call_mean": took * 1e3 / calls, "frames_per_s": n * calls / took}
    return out


# -- one run: a model on a backend, in its own process ------------------------------------------
def run_one(model: str, backend: str, settings: dict) -> dict:
    global now
    now = CLOCKS[settings["clock"]]
    clips = list(open_dataset(settings["data"]).split(settings["split"]))[: settings["clips"]]
    policy = DecisionPolicy(threshold=settings["threshold"])
    size = settings["input_size"]
    with Predictor(model, backend, policy=policy, threads=settings["threads"]) as p:
        size = size if p.spec.frames else None
        res = {"model": model, "backend": p.backend, "clips": len(clips), "stride": p.spec.stride,
               "inputs": [s.name for s in p.spec.data_inputs], "input_size": "x".join(map(str, size)) if size else None}
        res |= stream_clips(p, clips, settings["warmup"], size)
        longest = max(clips, key=lambda c: c.num_frames)
        res["baselines_ms"], res["paired_push_ms"], res["baseline_method"] = baselines(
            p, longest, settings["repeats"], size)
        res["speedup"] = {name: {r: res["baselines_ms"][name][r]["p50"] / res["paired_push_ms"][r]["p50"]
                                 for r in RATIOS} for name in BASELINES}
        res["sdk_overhead"] = sdk_overhead(p, clips[0], settings["overhead_pushes"])
        res["multistream"] = multistream(p, clips[0], settings["streams"], settings["stream_frames"], size)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res["peak_rss_mb"] = rss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux
    return res


def backends_for(model: str, backend: str) -> list[str]:
    """The backends to run ``model`` on: the one named, the suffix's default, or all that take it."""
    if backend != "all":
        return [resolve_backend(model, backend).name]
    suffix = Path(model).suffix.lower()
    found = [e.name for e in sorted(BACKENDS.values(), key=lambda e: e.speed_rank)
             if suffix in e.suffixes and is_available(e)]
    return found or [resolve_backend(model).name]  # none installed: resolve_backend says why


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "n": int(arr.size)}


def _median(values) -> float | None:
    return float(np.median(values)) if len(values) else None


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size takes WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"--input-size must be positive, got {text!r}")
    return width, height


# -- report ------------------------------------------------------------------------------------
def print_run(name: str, res: dict) -> None:
    print(f"\n== {name}: stride {res['stride']}, inputs {', '.join(res['inputs'])}"
          + (f", frames at {res['input_size']}" if res["input_size"] else ""))
    for kind, stages in res["stages_ms"].items():
        if stages:
            print(f"median per-stage ms, {kind} pushes: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    print(f"baselines: preprocess the new frame, then {res['baseline_method']} (per model step)")
    cols = ["ratio", "stepped p50", "p99", "carried p50", "FPS", "acc", "decided",
            *(f"{b} p50" for b in BASELINES), "paired push", *(f"x{b.split('_')[-1]}" for b in BASELINES)]
    widths = [max(6, len(c)) for c in cols]
    print(" | ".join(c.rjust(w) for c, w in zip(cols, widths)))
    print("-+-".join("-" * w for w in widths))
    stride = res["stride"]
    for r in RATIOS:
        lat = res["latency_ms"][r]
        stepped, carried = lat["stepped"], lat["carried"]
        per_frame = ((stepped["p50"] if stepped else 0) + (stride - 1) * (carried["p50"] if carried else 0)) / stride
        cells = [f"{r:.1f}", _ms(stepped, "p50"), _ms(stepped, "p99"), _ms(carried, "p50"),
                 f"{1e3 / per_frame:.0f}" if per_frame else "-", f"{res['accuracy'][r]:.2f}",
                 f"{res['decision']['by_ratio'][r]['decided']:.2f}",
                 *(f"{res['baselines_ms'][b][r]['p50']:.3f}" for b in BASELINES),
                 f"{res['paired_push_ms'][r]['p50']:.3f}", *(f"{res['speedup'][b][r]:.1f}" for b in BASELINES)]
        print(" | ".join(c.rjust(w) for c, w in zip(cells, widths)))
    d = res["decision"]
    if d["median_ratio"] is None:
        print("time to decision: no clip was decided")
    else:
        camera = f" ({d['median_camera_s']:.2f} s of camera)" if d["median_camera_s"] is not None else ""
        print(f"time to decision (medians over decided clips): {d['median_ratio']:.2f} of the clip, "
              f"{d['median_frames']:.0f} frames{camera}, {d['median_compute_ms']:.1f} ms of push() compute")
    for size, o in res["sdk_overhead"].items():
        if o:
            print(f"SDK overhead ({size}, {o['input']}): stepped push {o['push_ms']:.3f} ms vs Runner.step "
                  f"{o['runner_step_ms']:.3f} ms = {o['ratio']:.2f}x (the runtime call inside push, wall "
                  f"clock: {o['inference_stage_ms']:.3f} ms)")
    for n, m in res["multistream"].items():
        print(f"push_many {n:>3} streams: {m['ms_per_call_mean']:.3f} ms per call (mean of {m['calls']}), "
              f"{m['frames_per_s']:.0f} frames/s")
    print(f"peak RSS {res['peak_rss_mb']:.0f} MB")


def _ms(stats: dict | None, key: str) -> str:
    return f"{stats[key]:.3f}" if stats else "-"


def plot(runs: dict, path: str, clock: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (lat_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = {"streaming (stepped push)": "-o", "window W=8": "--", "window W=16": "-.", "full prefix": ":"}
    for i, (name, res) in enumerate(runs.items()):
        colour = f"C{i}"
        lines = [[res["latency_ms"][r]["stepped"]["p50"] if res["latency_ms"][r]["stepped"] else math.nan
                  for r in RATIOS]]
        lines += [[res["baselines_ms"][b][r]["p50"] for r in RATIOS] for b in BASELINES]
        for values, style in zip(lines, series.values()):
            lat_ax.plot(RATIOS, values, style, color=colour, ms=3)
        acc_ax.plot(RATIOS, [res["accuracy"][r] for r in RATIOS], "-o", color=colour, ms=3, label=name)
    lat_ax.set(yscale="log", xlabel="observation ratio", ylabel=f"ms per model step (p50, {clock} clock)",
               title="streaming push vs recompute baselines")
    acc_ax.set(xlabel="observation ratio", ylabel="top-1 accuracy", ylim=(0, 1.02), title="accuracy at ratio")
    lat_ax.legend([Line2D([], [], color="k", linestyle=style[:2].rstrip("o")) for style in series.values()],
                  list(series), fontsize=7, loc="upper left")
    acc_ax.legend(fontsize=7, title="colour: run", title_fontsize=7)
    for ax in (lat_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# -- main --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append",
                        help=f"model file (repeatable; default: the demo's, {DEMO_MODEL} and its .pt)")
    parser.add_argument("--backend", default="all",
                        help="backend for every --model: a name, auto (by suffix) or all (default: every "
                             "installed backend that runs the file)")
    parser.add_argument("--data", help="dataset dir (default: the demo's data for the demo model, else a "
                                       "small generated synthetic set)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats of each baseline recompute")
    parser.add_argument("--overhead-pushes", type=int, default=100, help="stepped pushes timed for SDK overhead")
    parser.add_argument("--input-size", type=_size, metavar="WxH",
                        help="push frames at this camera size (frame models), e.g. 1920x1080")
    parser.add_argument("--streams", default="1,4,16", help="stream counts for push_many throughput")
    parser.add_argument("--stream-frames", type=int, default=60,
                        help="timed push_many calls per count (rounded up to whole stride cycles)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of every runtime (default 1, as benchmarks/streams.py; 0: each one's default)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall (default) or cpu: this process's CPU time, for a shared machine where "
                             "wall time measures the scheduler (CPU runtimes only)")
    parser.add_argument("--threshold", type=float, default=0.8, help="decision threshold")
    parser.add_argument("--json", help="write every number to this JSON file")
    parser.add_argument("--plot", help="write latency and accuracy vs ratio to this PNG")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (2 clips, few repeats): checks, not timings")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clips, args.warmup, args.repeats, args.overhead_pushes = min(args.clips, 2), 2, 1, 3
        args.streams, args.stream_frames = args.streams.split(",")[0], 2
    if args.model is None:
        if not DEMO_MODEL.is_file():
            parser.error(f"no --model given and the demo's model {DEMO_MODEL} is not here; run `edgeact demo` "
                         f"in this directory first (it writes {DEMO_MODEL} and {DEMO_DATA}), or pass --model FILE.")
        args.model = [str(DEMO_MODEL)] + ([str(DEMO_MODEL.with_suffix(".pt"))]
                                          if DEMO_MODEL.with_suffix(".pt").is_file() else [])
        args.data = args.data or (str(DEMO_DATA) if DEMO_DATA.is_dir() else None)

    print(f"machine: {machine()}\ntiming: {args.clock} clock, runtime threads {args.threads or 'default'}", flush=True)
    tmp = None
    if args.data is None:
        from edgeact.data.synth import generate

        spec = read_spec(args.model[0])
        size = spec.frames.size[0] if spec.frames else 112
        tmp = tempfile.TemporaryDirectory()
        count = 12 if args.smoke else 60
        args.data = str(generate(Path(tmp.name) / "ds", count, seed=7, size=size, frame_range=(24, 48)))
        print(f"data: generated {count} synthetic clips at {size}px")
    settings = {"data": args.data, "split": args.split, "clips": args.clips, "threshold": args.threshold,
                "threads": args.threads or None, "warmup": args.warmup, "repeats": args.repeats,
                "overhead_pushes": args.overhead_pushes, "input_size": args.input_size, "clock": args.clock,
                "streams": [int(c) for c in args.streams.split(",") if c], "stream_frames": args.stream_frames}
    results = {"machine": machine(), "data": args.data, "split": args.split, "threads": args.threads,
               "clock": args.clock, "smoke": args.smoke, "ratios": RATIOS, "baselines": list(BASELINES), "runs": {}}
    jobs = [(m, b) for m in args.model for b in backends_for(m, args.backend)]
    spawn = multiprocessing.get_context("spawn")
    for model, backend in jobs:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:  # its own RSS, its own threads
            res = pool.submit(run_one, model, backend, settings).result()
        name = f"{Path(model).name} [{res['backend']}]"
        results["runs"][name] = res
        print_run(name, res)
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        plot(results["runs"], args.plot, args.clock)
        print(f"wrote {args.plot}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
