"""Frame preprocessing at camera resolution: "area" (exact cv2.INTER_AREA, what models saved
before FrameSpec.interpolation existed use) against "area_fast" (2x2 box halvings, then
INTER_AREA; what new models use), on one OpenCV thread.

    python benchmarks/preprocess.py [--inputs 1920x1080 ...] [--models 64 96 112 224]
                                    [--modes stretch crop] [--repeats 200] [--json out.json]
                                    [--against OLD_PREPROCESS_PY]

Per input size (WxH) x model size (square) x resize mode, for each interpolation: the median
wall time of ``preprocess_frame`` (BGR uint8 -> normalised float32 CHW) in ms over ``--repeats``
calls after 5 untimed ones, the two interpolations interleaved call by call so load on the
machine hits both alike. Then "area_fast"'s distance from "area": the max and mean absolute
difference of ``resize_frame`` in uint8 units on a natural-like frame (``natural_frame``: smooth
1/f texture, hard-edged shapes, sensor noise) and on uniform noise (the worst case for any
change of filter), and the max absolute difference after normalisation (natural frame), in
the model's input units. Prints a markdown table; ``--json`` also writes every number.

``--against FILE`` times another version of edgeact/preprocess.py as well (``git show
REV:edgeact/preprocess.py > FILE``), its "area_fast" interleaved with the two above, and checks
that it gives the same "area_fast" numbers (natural frame and noise, preprocess_frame and
resize_frame), so a change of the implementation is measured before and after in one run.

With ``--model M --data D`` it measures instead what the interpolation does to a trained
frame model (weights and graph unchanged, only the spec's interpolation swapped):

    python benchmarks/preprocess.py --model student.pt --data DATASET [--split test]
                                    [--clips 48] [--upscale 1920x1080] [--json out.json]

1. accuracy per observation ratio on the split at the dataset's own frame size, as ``edgeact
   eval`` steps it (edgeact.evaluation.evaluate_stream), with "area" and with "area_fast", and
   whether the two runs' logits are identical;
2. the first ``--clips`` clips of the split, every sampled frame upscaled to ``--upscale``
   (INTER_CUBIC, as a camera at that resolution would see the scene), stepped through both:
   accuracy per ratio each way and the top-1 agreement between them per ratio. For scale, the
   model's own sensitivity: the top-1 agreement of "area" with "area" on the same clips upscaled
   by INTER_LINEAR instead (another camera, as imperceptibly different).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edgeact.preprocess import preprocess_frame, resize_frame
from edgeact.spec import FRAME_INTERPOLATIONS, FRAMES, FrameSpec

INPUTS = ("340x256", "640x480", "1280x720", "1920x1080")
MODELS = (64, 96, 112, 224)


def natural_frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGR uint8 frame with a natural image's statistics: 1/f texture (power falling with
    frequency, as in photographs), hard-edged shapes in flat colours, and sensor noise."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    radius[0, 0] = 1.0
    spectrum = rng.standard_normal((3, height, fx.shape[1])) + 1j * rng.standard_normal((3, height, fx.shape[1]))
    texture = np.fft.irfft2(spectrum / radius, s=(height, width)).transpose(1, 2, 0)  # [H,W,3]
    img = np.ascontiguousarray((texture - texture.mean()) / texture.std() * 40 + 128, np.float32)
    for _ in range(40):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(2, width // 50), max(3, width // 5)))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), colour, -1)
        else:
            cv2.circle(img, (x, y), size // 2, colour, -1)
    img += rng.normal(0, 3, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _median_ms(fns: dict, repeats: int) -> dict:
    """name -> median ms of fns[name](), the calls interleaved: the first name first each round,
    the others in turn in one order, then the reverse (each runs as often right after the first,
    whose caches it finds, as right after another)."""
    times: dict = {name: [] for name in fns}
    first, *rest = fns
    for _ in range(5):
        for fn in fns.values():
            fn()
    for i in range(repeats):
        for name in (first, *(rest if i % 2 == 0 else reversed(rest))):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def _diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max()), float(d.mean())


def load_against(path: Path):
    """Another version of edgeact/preprocess.py, as a module of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgeact_preprocess_against", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(width: int, height: int, model: int, mode: str, repeats: int, seed: int = 0, against=None) -> dict:
    rng = np.random.default_rng(seed)
    natural = natural_frame(rng, height, width)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    area = FrameSpec(size=(model, model), resize=mode, interpolation="area")
    fast = FrameSpec(size=(model, model), resize=mode, interpolation="area_fast")
    fns = {"area": lambda: preprocess_frame(natural, area), "area_fast": lambda: preprocess_frame(natural, fast)}
    if against is not None:
        fns["against"] = lambda: against.preprocess_frame(natural, fast)
    ms = _median_ms(fns, repeats)
    max_nat, mean_nat = _diff(resize_frame(natural, area), resize_frame(natural, fast))
    max_noise, mean_noise = _diff(resize_frame(noise, area), resize_frame(noise, fast))
    max_norm, _ = _diff(preprocess_frame(natural, area), preprocess_frame(natural, fast))
    row = {"input": f"{width}x{height}", "model": model, "mode": mode, "area_ms": ms["area"],
           "area_fast_ms": ms["area_fast"], "speedup": ms["area"] / ms["area_fast"],
           "natural_max": max_nat, "natural_mean": mean_nat, "noise_max": max_noise, "noise_mean": mean_noise,
           "normalised_max": max_norm}
    if against is not None:
        row["against_ms"] = ms["against"]
        row["against_identical"] = all(
            np.array_equal(fn(frame, fast), against_fn(frame, fast))
            for frame in (natural, noise)
            for fn, against_fn in ((preprocess_frame, against.preprocess_frame), (resize_frame, against.resize_frame))
        )
    return row


def table(rows: list[dict]) -> str:
    against = all("against_ms" in r for r in rows)
    lines = ["| input | model | mode | area ms | area_fast ms | speed-up | natural max / mean | "
             "noise max / mean | normalised max |" + (" against: area_fast ms | identical |" if against else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if against else "")]
    for r in rows:
        lines.append(f"| {r['input']} | {r['model']} | {r['mode']} | {r['area_ms']:.3f} | {r['area_fast_ms']:.3f} | "
                     f"{r['speedup']:.1f}x | {r['natural_max']:.0f} / {r['natural_mean']:.2f} | "
                     f"{r['noise_max']:.0f} / {r['noise_mean']:.2f} | {r['normalised_max']:.3f} |"
                     + (f" {r['against_ms']:.3f} | {'yes' if r['against_identical'] else 'NO'} |" if against else ""))
    return "\n".join(lines)


class _Respecified:
    """A Runner whose spec declares another frame interpolation; the weights and graph are the same."""

    def __init__(self, runner, interpolation: str):
        from dataclasses import replace

        self.runner = runner
        self.spec = replace(runner.spec, frames=replace(runner.spec.frames, interpolation=interpolation))

    def init_state(self, batch: int = 1):
        return self.runner.init_state(batch)

    def step(self, inputs, state):
        return self.runner.step(inputs, state)


def model_agreement(model: Path, data: Path, split: str, clips: int, upscale: tuple[int, int]) -> dict:
    from edgeact.backends import load_backend
    from edgeact.data import open_dataset
    from edgeact.data.clip_store import ClipStore
    from edgeact.data.sampling import Sampling, sample_indices
    from edgeact.evaluation import RATIOS, cutoff_steps, evaluate_stream

    runner = load_backend(model)
    try:
        spec = runner.spec
        if spec.frames is None or spec.keypoints is not None:
            raise SystemExit(f"{model}: --model must take frames only (it takes {', '.join(spec.input_names)}).")
        variants = {name: _Respecified(runner, name) for name in FRAME_INTERPOLATIONS}
        dataset = open_dataset(data)
        split_clips = dataset.split(split)
        sampling = Sampling(stride=spec.stride)
        native = {}
        for name, variant in variants.items():
            result = evaluate_stream(variant, ClipStore(split_clips), list(spec.classes), sampling)
            native[name] = {"accuracy": result.metrics()["accuracy"], "logits": result.logits}
        identical = bool(np.array_equal(native["area"]["logits"], native["area_fast"]["logits"]))

        width, height = upscale
        chosen = split_clips[:clips]
        runs = {"area": (variants["area"], cv2.INTER_CUBIC), "area_fast": (variants["area_fast"], cv2.INTER_CUBIC),
                "area, linear camera": (variants["area"], cv2.INTER_LINEAR)}
        predictions = {name: np.zeros((len(chosen), len(RATIOS)), np.int64) for name in runs}
        for c, clip in enumerate(chosen):
            indices = sample_indices(clip.num_frames, sampling)
            frames = clip.frames()[indices]
            cuts = cutoff_steps(len(indices)) - 1
            for name, (variant, camera_interpolation) in runs.items():
                state = variant.init_state(1)
                for t, frame in enumerate(frames):
                    camera = cv2.resize(frame, (width, height), interpolation=camera_interpolation)
                    logits, state = variant.step({FRAMES: preprocess_frame(camera, variant.spec.frames)[None]}, state)
                    predictions[name][c, cuts == t] = int(np.argmax(logits[0]))
        labels = np.array([clip.label for clip in chosen])
        area = predictions["area"]
        return {
            "model": str(model), "data": str(data), "split": split, "model_size": list(spec.frames.size),
            "frame_size": list(split_clips[0].frames()[0].shape[:2]), "ratios": list(RATIOS),
            "native": {"num_clips": len(split_clips), "identical_logits": identical,
                       **{name: native[name]["accuracy"] for name in variants}},
            "upscaled": {"size": f"{width}x{height}", "num_clips": len(chosen),
                         **{name: (predictions[name] == labels[:, None]).mean(0).tolist() for name in variants},
                         "agreement": (area == predictions["area_fast"]).mean(0).tolist(),
                         "baseline_agreement": (area == predictions["area, linear camera"]).mean(0).tolist()},
        }
    finally:
        runner.close()


def agreement_table(r: dict) -> str:
    native, up = r["native"], r["upscaled"]
    lines = [f"model {r['model']} ({r['model_size'][0]}x{r['model_size'][1]}), {r['split']} split of {r['data']}: "
             f"{native['num_clips']} clips at {r['frame_size'][1]}x{r['frame_size'][0]} (logits identical both ways: "
             f"{'yes' if native['identical_logits'] else 'no'}); {up['num_clips']} clips upscaled to {up['size']}",
             "",
             "| ratio | native: area | native: area_fast | upscaled: area | upscaled: area_fast | "
             "upscaled: top-1 agreement | baseline: area, linear camera |",
             "|---|---|---|---|---|---|---|"]
    columns = (native["area"], native["area_fast"], up["area"], up["area_fast"], up["agreement"],
               up["baseline_agreement"])
    for i, ratio in enumerate(r["ratios"]):
        lines.append(f"| {ratio:.1f} | " + " | ".join(f"{c[i]:.4f}" for c in columns) + " |")
    lines.append("| mean (AUC) | " + " | ".join(f"{sum(c) / len(c):.4f}" for c in columns) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", nargs="+", default=list(INPUTS), help="input frame sizes, WxH")
    parser.add_argument("--models", nargs="+", type=int, default=list(MODELS), help="square model input sizes")
    parser.add_argument("--modes", nargs="+", default=["stretch", "crop"], choices=["stretch", "crop"])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    parser.add_argument("--against", type=Path,
                        help="another edgeact/preprocess.py: time its area_fast too and check it gives the same numbers")
    parser.add_argument("--model", type=Path, help="a trained frame model: measure accuracy both ways instead")
    parser.add_argument("--data", type=Path, help="with --model: its dataset")
    parser.add_argument("--split", default="test", help="with --model: the split (default: test)")
    parser.add_argument("--clips", type=int, default=48, help="with --model: clips to upscale (default: 48)")
    parser.add_argument("--upscale", default="1920x1080", help="with --model: camera size WxH (default: 1920x1080)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine_info import cpu_name

    cv2.setNumThreads(1)
    if args.model:
        if not args.data:
            parser.error("--model needs --data")
        upscale = tuple(int(v) for v in args.upscale.lower().split("x"))
        result = model_agreement(args.model, args.data, args.split, args.clips, upscale)
        print(agreement_table(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
            print(f"wrote {args.json}")
        return 0
    against = load_against(args.against) if args.against else None
    rows = []
    for size in args.inputs:
        width, height = (int(v) for v in size.lower().split("x"))
        for model in args.models:
            for mode in args.modes:
                rows.append(measure(width, height, model, mode, args.repeats, against=against))
    machine = {"cpu": cpu_name(), "opencv": cv2.__version__, "numpy": np.__version__, "opencv_threads": 1}
    print(f"machine: {machine['cpu']}; OpenCV {machine['opencv']}, 1 thread; median of {args.repeats} calls")
    print("times: preprocess_frame (resize + normalise); differences: area_fast - area, uint8 units "
          "(resize_frame), normalised: model-input units (preprocess_frame, natural frame)"
          + (f"; against: area_fast of {args.against}, interleaved with both" if against else "") + "\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "repeats": args.repeats, "rows": rows}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
