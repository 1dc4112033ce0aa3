"""``edgeact train`` and ``edgeact eval``: argparse registration for edgeact/cli.py.

    edgeact train --config configs/synth_pose.yaml --data DIR --out RUN [--set student.epochs=5 ...]
    edgeact train --out RUN --resume                 # continue from RUN/last.pt
    edgeact eval --model RUN/student.pt --data DIR --split test --out metrics.json [--backend onnxruntime]

Handlers return an exit code and raise edgeact.errors types for user errors; torch is imported
only when a command runs: by ``train``, and by ``eval`` only for a backend that needs it (the
torch backend of a .pt checkpoint; ``eval`` itself is :mod:`edgeact.evaluation`, torch-free).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train a teacher and a streaming student from a YAML config",
        description="Train a (teacher and) streaming student; writes student.pt, teacher.pt, metrics.json, "
                    "accuracy.png and train.log into --out.")
    train.add_argument("--config", help="YAML config (configs/*.yaml); optional with --resume")
    train.add_argument("--data", required=True, help="dataset directory or file (an edgeact skeleton .npz, an NTU folder, ...); PATH#fold2 chooses a fold")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, value parsed as YAML (repeatable), e.g. student.epochs=5")
    train.add_argument("--resume", action="store_true", help="continue from RUN/last.pt (optimizer and RNG state)")
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    train.set_defaults(func=cmd_train)

    ev = subparsers.add_parser(
        "eval", help="accuracy per observation ratio of a deployable model (streaming)",
        description="Step every clip of a split through a backend and report accuracy at observation ratios "
                    "0.1..1.0 and their mean (AUC).")
    ev.add_argument("--model", required=True, help="student checkpoint (.pt) or exported model (.onnx, ...)")
    ev.add_argument("--data", required=True, help="dataset directory or file; PATH#fold2 chooses a fold")
    ev.add_argument("--split", default="test", help="dataset split (default: test)")
    ev.add_argument("--out", help="write the metrics to this JSON file")
    ev.add_argument("--backend", default="auto", help="auto | torch | onnxruntime | ... (default: by file type)")
    ev.add_argument("--device", default="cpu", help="backend device (default: cpu)")
    ev.add_argument("--threads", type=int, default=None, help="CPU threads of the backend")
    ev.add_argument("--batch-size", type=int, default=32, help="streams stepped together (default: 32)")
    ev.add_argument("--segments", type=int, default=None,
                    help="sample N segments per clip (M3 research models) instead of every spec.stride-th frame")
    ev.add_argument("--keypoints", default="noisy_keypoints", choices=("noisy_keypoints", "keypoints"),
                    help="keypoint view of the dataset (default: noisy_keypoints)")
    ev.add_argument("--per-clip", action="store_true", help="also list every clip's prediction at each ratio")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    from edgeact.errors import ConfigError
    from edgeact.train.config import TrainConfig, apply_overrides, load_config
    from edgeact.train.trainer import load_run_config, train

    if args.config:
        cfg = load_config(args.config, args.overrides)
    elif args.resume:
        cfg = TrainConfig.from_dict(apply_overrides(load_run_config(args.out), args.overrides), source=str(args.out))
    else:
        raise ConfigError("edgeact train needs --config (or --resume to continue a run from its last.pt).")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}.")
    metrics = train(cfg, args.data, args.out, resume=args.resume, threads=args.threads, quiet=args.quiet)
    if metrics is not None:
        teacher = f", teacher (offline) AUC {metrics['teacher']['auc']:.4f}" if "teacher" in metrics else ""
        print(f"student AUC {metrics['auc']:.4f} (streaming, test split){teacher}; outputs in {Path(args.out)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from edgeact.errors import InputError
    from edgeact.evaluation import evaluate_model, format_table
    from edgeact.train.report import write_json

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}.")
    metrics = evaluate_model(args.model, args.data, split=args.split, backend=args.backend, device=args.device,
                             threads=args.threads, batch_size=args.batch_size, segments=args.segments,
                             keypoints=args.keypoints, progress=not args.quiet and sys.stderr.isatty(),
                             per_clip=args.per_clip)
    print(f"{metrics['model']} on {args.split} ({metrics['backend']} backend):")
    print(format_table(metrics))
    if args.out:
        write_json(args.out, metrics)
    return 0
