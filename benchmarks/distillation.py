"""Does distillation help, and where? Students with and without it, on one held-out set.

    python benchmarks/distillation.py --data HELDOUT \\
        --group "feature KD=runs/pose_kd_s0,runs/pose_kd_s1,runs/pose_kd_s2" \\
        --group "no KD=runs/pose_nokd_s0,runs/pose_nokd_s1,runs/pose_nokd_s2" \\
        --baseline "no KD"

Each run directory's ``student.pt`` is evaluated on the streaming path (``edgeact eval``, torch
backend, per clip) once; the result is kept as ``RUN/eval-<data name>-<split>.json``. A run given
as ``RUN@DATA`` is evaluated on its own dataset; with ``--folds`` a group's runs are the folds
of a cross-validation (``--group "KD=runs/f0@sbu.npz#fold0,runs/f1@sbu.npz#fold1,..."``): their
test clips are pooled into one evaluation, and groups pair fold by fold. Per group,
the table gives the mean accuracy over its runs at r = 0.1 ... 1.0, the AUC as mean +- standard
deviation over runs, and the mean training time (teacher + student, from the run's metrics.json).
Against ``--baseline`` it gives the mean difference per ratio with a 95% interval from a paired
bootstrap over clips (the same clips, runs paired in the order given, usually by seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgeact.evaluation import RATIOS, evaluate_model


def correct_per_clip(run: Path, data: Path, split: str, threads: int | None) -> np.ndarray:
    """[clips, ratios] booleans for the run's student on ``data``; evaluated once, then cached."""
    cache = run / f"eval-{data.resolve().name}-{split}.json"
    if not cache.is_file():
        metrics = evaluate_model(run / "student.pt", data, split=split, backend="torch", threads=threads,
                                 per_clip=True)
        cache.write_text(json.dumps(metrics) + "\n")
    clips = json.loads(cache.read_text())["clips"]
    return np.array([[p == c["label"] for p in c["predictions"]] for c in clips])


def train_minutes(run: Path) -> float:
    seconds = json.loads((run / "metrics.json").read_text())["train"]["seconds"]
    return sum(seconds.get(stage, 0.0) for stage in ("teacher", "student")) / 60


def bootstrap_interval(diff: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% interval of the mean over clips of ``diff`` [clips, ratios], resampling clips."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(rounds, len(diff)))
    means = diff[picks].mean(1)  # [rounds, ratios]
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


def parse_group(text: str) -> tuple[str, list[tuple[Path, Path | None]]]:
    """LABEL=RUN[@DATA][,RUN[@DATA]...] -> (label, [(run, its own data or None)])."""
    label, sep, dirs = text.partition("=")
    if not sep or not label or not dirs:
        raise SystemExit(f"--group must be LABEL=RUN[@DATA][,RUN[@DATA]...], got {text!r}")
    runs = []
    for entry in dirs.split(","):
        run, _, data = entry.partition("@")
        runs.append((Path(run), Path(data) if data else None))
        if not (runs[-1][0] / "student.pt").is_file():
            raise SystemExit(f"{run} has no student.pt")
    return label, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="held-out dataset (runs given as RUN@DATA use their own)")
    parser.add_argument("--folds", action="store_true", help="a group's runs are cross-validation folds: pool "
                        "their test clips")
    parser.add_argument("--split", default="test")
    parser.add_argument("--group", action="append", required=True, metavar="LABEL=RUN[,RUN...]")
    parser.add_argument("--baseline", help="label of the group the others are compared with")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    groups = dict(parse_group(g) for g in args.group)
    if args.baseline is not None and args.baseline not in groups:
        raise SystemExit(f"--baseline {args.baseline!r} is not one of the groups: {', '.join(groups)}")
    for label, runs in groups.items():
        if any(data is None for _, data in runs) and args.data is None:
            raise SystemExit(f"group {label!r} has runs without @DATA and there is no --data")
    per_run = {label: [correct_per_clip(run, data or args.data, args.split, args.threads) for run, data in runs]
               for label, runs in groups.items()}
    # [runs, clips, ratios]; folds are one run over the pooled test clips of all folds
    correct = {label: np.concatenate(c)[None] if args.folds else np.stack(c) for label, c in per_run.items()}
    clips = {c.shape[1] for c in correct.values()}
    if len(clips) != 1:
        raise SystemExit(f"the groups were evaluated on different numbers of clips: {sorted(clips)}")

    ratios = " | ".join(f"{r:.1f}" for r in RATIOS)
    sources = sorted({str(data or args.data) for runs in groups.values() for _, data in runs})
    where = "the folds' test clips pooled" if args.folds else f"{', '.join(sources)} [{args.split}]"
    print(f"{where}, {clips.pop()} clips; accuracy is the mean over runs\n")
    print(f"| group | runs | train min | {ratios} | AUC |")
    print("|---|---|---|" + "---|" * (len(RATIOS) + 1))
    for label, runs in groups.items():
        acc = correct[label].mean(1)  # [runs, ratios]
        auc = acc.mean(1)
        cells = " | ".join(f"{a:.3f}" for a in acc.mean(0))
        minutes = np.mean([train_minutes(r) for r, _ in runs])
        print(f"| {label} | {len(runs)} | {minutes:.1f} | {cells} | {auc.mean():.3f} +- {auc.std():.3f} |")
    if args.baseline is None:
        return 0
    print(f"\ndifference from '{args.baseline}' (mean over paired runs; 95% paired bootstrap interval over clips)\n")
    print(f"| group | {ratios} | AUC |")
    print("|---|" + "---|" * (len(RATIOS) + 1))
    base = correct[args.baseline]
    for label in groups:
        if label == args.baseline:
            continue
        if len(correct[label]) != len(base):
            print(f"| {label} | runs cannot be paired ({len(correct[label])} vs {len(base)}) |")
            continue
        diff = (correct[label].astype(float) - base).mean(0)  # [clips, ratios], averaged over paired runs
        diff = np.concatenate([diff, diff.mean(1, keepdims=True)], 1)  # the AUC column
        low, high = bootstrap_interval(diff)
        cells = " | ".join(f"{m:+.3f} [{lo:+.2f}, {hi:+.2f}]" for m, lo, hi in zip(diff.mean(0), low, high))
        print(f"| {label} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
