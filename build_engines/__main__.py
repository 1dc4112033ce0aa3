"""``python -m build_engines MODEL.onnx --precision fp32 fp16 int8 ...`` (also ``edgeact build``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from build_engines import TARGET_DEVICES, BuildOptions, build
from build_engines.precision import PRECISIONS
from edgeact.data.sampling import KEYPOINT_VIEWS
from edgeact.errors import EdgeActError


def parser(prog: str = "python -m build_engines") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Build precision graphs (and, with TensorRT, engines) from an "
                                "exported step graph; each is held to an accuracy gate against PyTorch.")
    p.add_argument("model", type=Path, help="the fp32 step graph from `edgeact export` (a .pt beside it with the "
                   "same weights is the reference)")
    p.add_argument("--precision", nargs="+", default=list(PRECISIONS), choices=PRECISIONS, dest="precisions")
    p.add_argument("--calib-data", type=Path, help="dataset to calibrate int8 on (its --calib-split)")
    p.add_argument("--calib-split", default="train")
    p.add_argument("--calib-clips", type=int, default=32, help="clips streamed to record calibration steps")
    p.add_argument("--calib-method", default="percentile", choices=("minmax", "percentile", "entropy"),
                   help="how activation ranges are set from the calibration steps (percentile: the 99.999th, robust "
                   "to outliers; it beat minmax on both synth students)")
    p.add_argument("--eval-data", type=Path, required=True, help="dataset of the accuracy gate")
    p.add_argument("--split", default="test", help="split of --eval-data the gate streams")
    p.add_argument("--eval-clips", type=int, help="at most this many clips of the split")
    p.add_argument("--max-streams", type=int, default=16, help="an engine's largest batch (its profile's max)")
    p.add_argument("--target", default="datacenter", choices=TARGET_DEVICES)
    p.add_argument("--out", type=Path, help="output directory (default: beside the model)")
    p.add_argument("--reference", type=Path, help="the PyTorch checkpoint to compare with (default: the .pt beside "
                   "the model, else the fp32 graph)")
    p.add_argument("--no-accuracy-gate", action="store_true", help="keep precisions that miss their target")
    p.add_argument("--latency-pushes", type=int, default=300, help="pushes per graph for the CPU latency (0: skip)")
    p.add_argument("--keypoints", default="noisy_keypoints", choices=KEYPOINT_VIEWS,
                   help="the clips' keypoint view (synthetic data: as an estimator sees them, or exact)")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m build_engines") -> int:
    args = parser(prog).parse_args(argv)
    options = BuildOptions(precisions=tuple(args.precisions), calib_data=args.calib_data, calib_split=args.calib_split,
                           calib_clips=args.calib_clips, calib_method=args.calib_method, eval_data=args.eval_data,
                           split=args.split, eval_clips=args.eval_clips, max_streams=args.max_streams,
                           target=args.target, out=args.out, reference=args.reference,
                           accuracy_gate=not args.no_accuracy_gate, latency_pushes=args.latency_pushes,
                           keypoints=args.keypoints)
    try:
        result = build(args.model, options, log=lambda line: print(line, flush=True))
    except EdgeActError as exc:
        print(f"build_engines: error: {exc}", file=sys.stderr)
        return 2
    return 0 if result.passed or not options.accuracy_gate else 1


if __name__ == "__main__":
    sys.exit(main())
