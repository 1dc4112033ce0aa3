"""The accuracy gate for reduced-precision recurrent weights on the native backend.

    python benchmarks/int8_gate.py [--model student.onnx --data DATASET] [--split test]
                                   [--dtypes bfloat16 int8] [--clips N] [--json out.json]

Streams an evaluation split through ``backend="native"`` twice or more, with float32 weights
(the reference) and with each of ``--dtypes`` (``weights_dtype`` of :class:`edgeact.kernels.LSTM`),
as deployment runs it (every ``spec.stride``-th frame, states carried), and judges each against
the reference with the engines' gate (``build_engines/gate.py``): top-1 agreement per
observation ratio 0.1 ... 1.0 at least 99.5%, the FP16 engines' target. It prints the table and
exits 1 when a dtype misses the target. Without ``--model`` it gates the demo's model
(``demo/run/student.onnx`` over ``demo/data``, written by ``edgeact demo``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # build_engines/ is a top-level package of the repository
    sys.path.insert(0, str(ROOT))

TARGET = {"agreement": 0.995, "auc_drop": None}  # as build_engines' fp16 (and fp32) target
DEMO_MODEL = Path("demo/run/student.onnx")
DEMO_DATA = Path("demo/data")


def gate(model: Path, data: Path, *, split: str = "test", dtypes=("bfloat16", "int8"), clips: int | None = None,
         keypoints: str = "noisy_keypoints", log=print) -> dict:
    """Agreement of each weights dtype with float32 weights over ``split`` of ``data``."""
    from build_engines import gate as engine_gate
    from edgeact.backends import load_backend
    from edgeact.data import open_dataset
    from edgeact.data.clip_store import ClipStore
    from edgeact.errors import InputError
    from edgeact.spec import read_spec

    spec = read_spec(model)
    dataset = open_dataset(data)
    chosen = dataset.split(split)[:clips]
    if not chosen:
        raise InputError(f"{data} has no clips in split {split!r}.")
    if list(dataset.classes) != list(spec.classes):
        raise InputError(f"{model} predicts {list(spec.classes)}, but {data} has {list(dataset.classes)}.")
    store = ClipStore(chosen, keypoint_view=keypoints, keypoint_spec=spec.keypoints)

    def run(dtype: str):
        runner = load_backend(model, "native", threads=1, weights_dtype=dtype)
        start = time.perf_counter()
        try:
            return engine_gate.stream(runner, store, spec.classes, f"native {dtype} weights"), time.perf_counter() - start
        finally:
            runner.close()

    reference, seconds = run("float32")
    log(f"int8_gate: {model} on {len(store)} clips of {data} ({split}); float32 reference streamed in {seconds:.1f} s")
    results = []
    for dtype in dtypes:
        evaluated, seconds = run(dtype)
        judged = engine_gate.judge(evaluated, reference, f"{dtype} weights", TARGET)
        results.append({"precision": dtype, "backend": "native", "seconds": seconds, "gate": judged.to_dict()})
    return {"model": str(model), "data": str(data), "split": split, "clips": len(store), "target": TARGET,
            "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append",
                        help=f"an exported .onnx (repeatable; default: the demo's, {DEMO_MODEL})")
    parser.add_argument("--data", type=Path, action="append",
                        help=f"its evaluation dataset (one per --model; default {DEMO_DATA})")
    parser.add_argument("--split", default="test")
    parser.add_argument("--clips", type=int, help="at most this many clips of the split")
    from edgeact.backends.native import WEIGHTS_DTYPES

    reduced = [dtype for dtype in WEIGHTS_DTYPES if dtype != "float32"]  # the reference's is float32
    parser.add_argument("--dtypes", nargs="+", default=reduced, choices=reduced)
    parser.add_argument("--keypoints", default="noisy_keypoints", help="the clips' keypoint view (default noisy)")
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    args = parser.parse_args(argv)
    models = args.model or [DEMO_MODEL]
    datas = args.data or ([DEMO_DATA] if not args.model else [])
    if len(datas) != len(models):
        parser.error(f"give one --data per --model ({len(models)} models, {len(datas)} datasets).")
    if not args.model and not DEMO_MODEL.is_file():
        parser.error(f"no --model given and the demo's model {DEMO_MODEL} is not here; run `edgeact demo` first.")

    from build_engines.gate import table

    reports, passed = [], True
    for model, data in zip(models, datas):
        report = gate(model, data, split=args.split, dtypes=args.dtypes, clips=args.clips, keypoints=args.keypoints)
        print(table(report["results"]))
        for res in report["results"]:
            verdict = "meets" if res["gate"]["passed"] else "misses"
            print(f"{res['precision']} weights {verdict} the target (agreement >= {TARGET['agreement']:.1%} at every "
                  f"ratio): min {min(res['gate']['agreement']):.2%}, {res['gate']['disagreements']} disagreeing "
                  f"reads ({res['gate']['near_ties']} near ties)")
            passed &= res["gate"]["passed"]
        reports.append(report)
    if args.json:
        args.json.write_text(json.dumps({"reports": reports, "passed": passed}, indent=1))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
