"""Accuracy per observation ratio of one model on every backend, or a table of training runs.

    # one student, each backend (a .pt is exported to ONNX for onnxruntime), streaming evaluation
    python benchmarks/accuracy.py --model runs/synth_pose/student.pt --data DIR [--backends torch onnxruntime]

    # the markdown table of docs/results.md from finished runs (their metrics.json)
    python benchmarks/accuracy.py --runs runs/pose_kd runs/pose_nokd

Per backend: accuracy at r = 0.1 ... 1.0, the AUC, evaluation time and clips per second, and the
largest accuracy difference from the first backend (the same artifact must give the same
numbers everywhere; a difference means a backend or the export changed the model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from edgeact.evaluation import RATIOS, evaluate_model


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "absent"
    return (f"{platform.node()} {platform.machine()} {cpus} CPUs, Python {platform.python_version()}, "
            f"torch {torch_version}")


def per_backend(args: argparse.Namespace) -> int:
    model = Path(args.model)
    print(f"# {model} on {args.data} [{args.split}]; {machine()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            path = model
            if backend == "onnxruntime" and model.suffix == ".pt":
                from edgeact.export import export_onnx

                path = export_onnx(model, Path(tmp) / (model.stem + ".onnx")).path
            results[backend] = evaluate_model(path, args.data, split=args.split, backend=backend,
                                              threads=args.threads, batch_size=args.batch_size,
                                              segments=args.segments, keypoints=args.keypoints)
    names = list(results)
    print(f"{'ratio':>5}  " + "  ".join(f"{n:>12}" for n in names))
    for i, ratio in enumerate(RATIOS):
        print(f"{ratio:>5.1f}  " + "  ".join(f"{results[n]['accuracy'][i]:>12.4f}" for n in names))
    print(f"{'AUC':>5}  " + "  ".join(f"{results[n]['auc']:>12.4f}" for n in names))
    for name in names:
        r = results[name]
        diff = max(abs(a - b) for a, b in zip(r["accuracy"], results[names[0]]["accuracy"]))
        print(f"{name}: {r['num_clips']} clips in {r['seconds']:.1f} s ({r['num_clips'] / r['seconds']:.1f} clips/s), "
              f"max |accuracy - {names[0]}| = {diff:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


def run_table(runs: list[Path]) -> str:
    """Markdown rows: run, training time (teacher + student), accuracy per ratio, AUC."""
    header = "| run | train time | " + " | ".join(f"{r:.1f}" for r in RATIOS) + " | AUC |"
    lines = [header, "|" + "---|" * (len(RATIOS) + 3)]
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        seconds = metrics["train"]["seconds"]
        spent = " + ".join(f"{seconds[s] / 60:.1f}" for s in ("teacher", "student") if s in seconds)
        cells = " | ".join(f"{a:.3f}" for a in metrics["accuracy"])
        lines.append(f"| {run.name} | {spent} min | {cells} | **{metrics['auc']:.3f}** |")
        if "teacher" in metrics:
            cells = " | ".join(f"{a:.3f}" for a in metrics["teacher"]["accuracy"])
            lines.append(f"| {run.name} teacher (offline) | | {cells} | {metrics['teacher']['auc']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="student checkpoint (.pt) or exported model")
    parser.add_argument("--data", help="dataset directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--segments", type=int, default=None, help="N-segment sampling (M3 research models)")
    parser.add_argument("--keypoints", default="noisy_keypoints", choices=("noisy_keypoints", "keypoints"))
    parser.add_argument("--json", help="write every backend's metrics to this file")
    parser.add_argument("--runs", nargs="+", type=Path, help="print the markdown table of these run directories")
    args = parser.parse_args(argv)
    if args.runs:
        print(run_table(args.runs))
        return 0
    if not (args.model and args.data):
        parser.error("--model and --data are required (or --runs)")
    return per_backend(args)


if __name__ == "__main__":
    sys.exit(main())
