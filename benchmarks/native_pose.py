"""push() latency of a pose-only student on backend native vs onnxruntime vs torch, one run.

    python benchmarks/native_pose.py --model run/student.onnx,run/student.pt [--model ...]
        [--data DIR] [--frames 400] [--threads 1] [--json out.json]

``--model ONNX[,PT]``: the exported step (native, onnxruntime) and, if given, its checkpoint
(torch). Keypoints: the test clips of ``--data`` when their people and joints fit the model,
else a seeded synthetic walk of the model's skeleton in pixels (timing does not depend on what
the joints do; missing joints and people are included either way).

Every backend gets ``--threads``. Each round pushes the same ``--frames`` frames through a fresh
stream of every backend in turn (interleaved, so a noisy neighbour hits them alike), after a
warm-up round. Reported: p50/p90 of the pushes that stepped the model (``Prediction.stepped``;
a model of stride s steps on every s-th frame) and p50 of all pushes, the ratios other/native
of the stepped p50; parity of native's and onnxruntime's logits over the warm-up stream by the
project's rule (edgeact.parity: error against the float64 model within 8x PyTorch float32's own)
and their largest difference from torch float32 (what a user comparing backends sees); whether
native's logits are bitwise equal at 1 and 2 threads. Numbers, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgeact import Predictor, kernels
from edgeact.data import open_dataset
from edgeact.parity import ParityCheck, float64_twin
from edgeact.preprocess import preprocess_keypoints
from edgeact.spec import read_spec
from machine_info import cpu_name

ROUNDS = 7
TARGET = 1.5  # native's stepped push p50 at least this much ahead of onnxruntime's


def _keypoints(spec, data: str | None, frames: int) -> tuple[np.ndarray, str]:
    """[frames, P, J, dims + 1] in pixels and where they came from."""
    kp = spec.keypoints
    if data:
        clips = [c.noisy_keypoints for c in open_dataset(data).split("test")]
        if clips and clips[0].shape[1:] == (kp.people, kp.joints, kp.dims + 1):
            stream = np.concatenate(clips)
            return np.resize(stream, (frames, *stream.shape[1:])).astype(np.float32), f"{data} (test split)"
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 500, (kp.people, kp.joints, kp.dims))
    walk = base + np.cumsum(rng.normal(0, 3, (frames, kp.people, kp.joints, kp.dims)), axis=0)
    visibility = (rng.uniform(0, 1, (frames, kp.people, kp.joints, 1)) > 0.1).astype(np.float64)
    if kp.people > 1:
        visibility[frames // 3: frames // 2, -1] = 0.0  # the last person leaves for a while
    return np.concatenate([walk * visibility, visibility], axis=-1).astype(np.float32), "synthetic walk"


def _push_all(predictor: Predictor, kp: np.ndarray, times: list[int] | None, stream: str) -> list:
    out = []
    for frame in kp:
        start = time.perf_counter_ns()
        pred = predictor.push(keypoints=frame, stream=stream)
        elapsed = time.perf_counter_ns() - start
        if times is not None:
            times.append((elapsed, pred.stepped))
        out.append(pred)
    predictor.reset(stream)
    return out


def _exact_logits(pt_path: str, spec, kp: np.ndarray) -> np.ndarray:
    """The float64 model's logits at the steps a Predictor takes (every stride-th frame)."""
    import torch

    from edgeact.checkpoint import load_checkpoint

    model = float64_twin(load_checkpoint(pt_path)[0])
    state, out = model.init_state(1), []
    for frame in kp[::spec.stride]:
        x = torch.from_numpy(preprocess_keypoints(frame, spec.keypoints))[None].double()
        with torch.no_grad():
            logits, state = model.step({"keypoints": x}, state)
        out.append(logits[0].numpy())
    return np.stack(out)


def _stats(samples: list[tuple[int, bool]]) -> dict[str, float]:
    stepped = np.array([t for t, s in samples if s]) / 1e3
    every = np.array([t for t, _ in samples]) / 1e3
    return {"stepped_p50_us": float(np.median(stepped)), "stepped_p90_us": float(np.percentile(stepped, 90)),
            "all_p50_us": float(np.median(every)), "stepped_pushes": int(stepped.size)}


def bench_model(onnx_path: str, pt_path: str | None, data: str | None, frames: int, threads: int) -> dict:
    spec = read_spec(onnx_path)
    kp, source = _keypoints(spec, data, frames)
    backends = {"native": (onnx_path, "native"), "onnxruntime": (onnx_path, "onnxruntime")}
    if pt_path:
        backends["torch"] = (pt_path, "torch")
    predictors = {name: Predictor(path, backend, threads=threads) for name, (path, backend) in backends.items()}
    fused = predictors["native"].describe().get("encoders") == "native"
    logits = {name: np.stack([p.logits for p in _push_all(pred, kp, None, "warm-up") if p.stepped])
              for name, pred in predictors.items()}  # warm-up round, also the parity sample
    samples: dict[str, list] = {name: [] for name in predictors}
    for r in range(ROUNDS):
        for name, pred in predictors.items():
            _push_all(pred, kp, samples[name], f"round{r}")
    two = Predictor(onnx_path, "native", threads=2)
    bitwise = bool(np.array_equal(logits["native"], np.stack([p.logits for p in _push_all(two, kp, None, "t2")
                                                              if p.stepped])))
    timings = {name: _stats(s) for name, s in samples.items()}
    ours = timings["native"]["stepped_p50_us"]
    for name, t in timings.items():
        t["ratio_vs_native"] = t["stepped_p50_us"] / ours
    result = {"model": onnx_path, "checkpoint": pt_path, "keypoints": source, "frames": frames,
              "stride": spec.stride, "fused_pose_step": fused, "timings": timings, "threads_bitwise_equal": bitwise,
              "logits_max_abs": float(np.abs(logits["native"]).max())}
    if "torch" in logits:
        exact = _exact_logits(pt_path, spec, kp)
        result["parity"] = {}
        for name in ("native", "onnxruntime"):
            check = ParityCheck()
            for t, (truth, reference, candidate) in enumerate(zip(exact, logits["torch"], logits[name])):
                check.update(t, "logits", truth, reference, candidate)
            result["parity"][name] = {"ok": check.ok, "summary": check.summary(),
                                      "max_abs_diff_vs_torch": check.max_difference}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="ONNX[,PT] (repeatable)")
    parser.add_argument("--data", help="dataset directory whose test clips are pushed (edgeact format)")
    parser.add_argument("--frames", type=int, default=400, help="frames pushed per round and backend")
    parser.add_argument("--threads", type=int, default=1, help="threads for every backend (default 1)")
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    args = parser.parse_args(argv)
    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    build = kernels.build_info()
    machine = {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
               "kernel_isa": build["kernel_isa"], "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
               "load_avg_start": os.getloadavg()}
    print(f"CPU: {machine['cpu']} ({machine['logical_cpus']} logical) | edgeact._C kernel_isa {machine['kernel_isa']} | "
          f"threads {args.threads} | torch {torch.__version__}, onnxruntime {onnxruntime.__version__} | "
          f"load avg {machine['load_avg_start'][0]:.2f}")
    print("push() microseconds: stepped p50/p90, all p50; ratio = backend stepped p50 / native stepped p50")
    results = []
    for entry in args.model:
        onnx_path, _, pt_path = entry.partition(",")
        r = bench_model(onnx_path, pt_path or None, args.data, args.frames, args.threads)
        results.append(r)
        print(f"\n{onnx_path} (stride {r['stride']}, {r['keypoints']}, fused pose step: {r['fused_pose_step']})")
        for name, t in r["timings"].items():
            print(f"  {name:12s} {t['stepped_p50_us']:8.1f} / {t['stepped_p90_us']:8.1f}   all {t['all_p50_us']:8.1f}"
                  f"   ratio {t['ratio_vs_native']:.2f}")
        ratio = r["timings"]["onnxruntime"]["ratio_vs_native"]
        print(f"  native vs onnxruntime: {ratio:.2f}x (target >= {TARGET}x) {'met' if ratio >= TARGET else 'NOT met'}; "
              f"threads 1 vs 2 bitwise equal: {r['threads_bitwise_equal']}")
        for name, parity in r.get("parity", {}).items():
            print(f"  parity {name}: {'ok' if parity['ok'] else 'FAILED'}: {parity['summary']} "
                  f"(max |logit| {r['logits_max_abs']:.3g})")
    machine["load_avg_end"] = os.getloadavg()
    if max(machine["load_avg_start"][0], machine["load_avg_end"][0]) > 0.5 + args.threads:
        print(f"\nnote: load average {machine['load_avg_start'][0]:.2f} -> {machine['load_avg_end'][0]:.2f}: other "
              "processes shared the CPU; medians are noisy")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "args": vars(args) | {"json": str(args.json)},
                                         "results": results}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
