"""ONNX step graph -> precision graphs (fp32, fp16 mixed, int8 Q/DQ) -> TensorRT engines, each
held to an accuracy gate against PyTorch.

    python -m build_engines student.onnx --precision fp32 fp16 int8 \\
        --calib-data data/ --eval-data data/ --out engines/

For every precision: build the precision graph (precision.py), stream it over the evaluation
split next to the reference (gate.py: the checkpoint beside the graph, else the fp32 graph),
and keep it under ``<out>/<stem>.<precision>.onnx`` only when it meets its target (trying
tiers that keep more of the graph in higher precision first); with TensorRT importable, also
build ``<stem>.<precision>.engine`` (engine.py) and gate the engine the same way. The report
(``build_report.json`` and a table, ``build_report.txt``) is written either way. Without
TensorRT the precision graphs, the reports and the CPU latency of each graph are produced.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from build_engines.gate import TARGETS, judge, reference_checkpoint, stream, table
from build_engines.precision import PRECISIONS, fp16_graph, fp16_tiers, fp32_graph, int8_graph, int8_tiers
from build_engines.precision import ops_run_in_float32_by_onnxruntime, read_precision
from edgeact.errors import EdgeActError, InputError

TARGET_DEVICES = ("datacenter", "jetson")


class BuildError(EdgeActError):
    """A precision could not be built, or missed its accuracy target."""


@dataclass
class BuildOptions:
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    calib_data: Path | None = None
    calib_split: str = "train"
    calib_clips: int = 32
    calib_method: str = "percentile"
    eval_data: Path | None = None
    split: str = "test"
    eval_clips: int | None = None
    max_streams: int = 16
    target: str = "datacenter"
    out: Path | None = None
    reference: Path | None = None
    accuracy_gate: bool = True
    latency_pushes: int = 300
    keypoints: str = "noisy_keypoints"  # the clips' keypoint view (exact "keypoints" for synthetic data)
    seed: int = 0

    def check(self, model: Path) -> None:
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise InputError(f"precisions must be some of {list(PRECISIONS)}, got {list(self.precisions)}.")
        if self.eval_data is None:
            raise InputError("--eval-data is needed: every precision is streamed over an evaluation split "
                             "next to the reference.")
        if "int8" in self.precisions and self.calib_data is None:
            raise InputError("int8 needs --calib-data (clips to record the step's inputs and states on).")
        if self.target not in TARGET_DEVICES:
            raise InputError(f"target must be one of {list(TARGET_DEVICES)}, got {self.target!r}.")
        if self.max_streams < 1 or self.calib_clips < 1:
            raise InputError("max_streams and calib_clips must be >= 1.")
        if model.suffix.lower() != ".onnx" or not model.is_file():
            raise InputError(f"the model must be an exported .onnx step graph, got {model}.")


@dataclass
class BuildResult:
    outputs: dict[str, Path] = field(default_factory=dict)  # precision -> the graph (or engine) kept
    report: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r["gate"]["passed"] for r in self.report.get("results", []))


def build(model: str | Path, options: BuildOptions, *, log=print) -> BuildResult:
    from edgeact.backends import load_backend
    from edgeact.data import open_dataset
    from edgeact.spec import read_spec
    from edgeact.data.clip_store import ClipStore

    model = Path(model)
    options.check(model)
    spec = read_spec(model)
    precision, _ = read_precision(model)
    if precision != "fp32":
        raise InputError(f"{model} is already a {precision} graph; build from the fp32 export (`edgeact export`).")
    out = Path(options.out or model.parent)
    out.mkdir(parents=True, exist_ok=True)
    stem = model.stem

    dataset = open_dataset(options.eval_data)
    clips = dataset.split(options.split)[: options.eval_clips]
    if not clips:
        raise InputError(f"{options.eval_data} has no clips in split {options.split!r}.")
    if list(dataset.classes) != list(spec.classes):
        raise InputError(f"{model} predicts {list(spec.classes)}, but {options.eval_data} has {list(dataset.classes)}.")
    store = ClipStore(clips, keypoint_view=options.keypoints, keypoint_spec=spec.keypoints)
    checkpoint = options.reference or reference_checkpoint(model, spec.weights_sha256)
    if checkpoint is not None:
        reference_runner, reference_name = load_backend(checkpoint, "torch", device="cpu"), f"PyTorch {checkpoint.name}"
    else:
        reference_runner, reference_name = load_backend(model, "onnxruntime", device="cpu"), f"fp32 graph {model.name}"
    log(f"build_engines: reference {reference_name}; evaluating on {len(store)} clips of {options.eval_data} "
        f"({options.split})")
    reference = stream(reference_runner, store, spec.classes, reference_name)
    reference_runner.close()

    calibration = None
    results, outputs = [], {}
    for p in options.precisions:
        started = time.perf_counter()
        if p == "int8" and calibration is None:
            from build_engines.calibration import record

            calibration = record(model, options.calib_data, split=options.calib_split, clips=options.calib_clips,
                                 seed=options.seed, keypoints=options.keypoints)
            log(f"build_engines: int8 calibration: {calibration.steps} steps of {calibration.clips} clips "
                f"({options.calib_split}), states included")
        final = out / f"{stem}.{p}.onnx"
        result = _build_precision(model, p, final, calibration, options, store, spec, reference, log)
        result["seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
        if result["gate"]["passed"] or not options.accuracy_gate:
            outputs[p] = final
    _latency(outputs, results, store, options.latency_pushes)
    engines = _engines(outputs, results, options, out, stem, store, spec, reference, log)
    outputs.update(engines)
    report = {"model": str(model), "reference": reference_name, "eval": {"data": str(options.eval_data),
              "split": options.split, "clips": len(store)}, "targets": TARGETS,
              "calibration": None if calibration is None else {"clips": calibration.clips, "steps": calibration.steps,
                                                               "split": options.calib_split,
                                                               "method": options.calib_method},
              "accuracy_gate": options.accuracy_gate, "results": results}
    (out / "build_report.json").write_text(json.dumps(report, indent=1))
    text = table(results)
    (out / "build_report.txt").write_text(text + "\n")
    log(text)
    return BuildResult(outputs, report)


def _build_precision(model: Path, precision: str, final: Path, calibration, options: BuildOptions, store, spec,
                     reference, log) -> dict:
    """Try the precision's tiers in order; the first that passes the gate goes under ``final``."""
    from edgeact.backends import load_backend

    if precision == "fp32":
        tiers, make = iter([{}]), lambda path, kept, tier: fp32_graph(model, path)
    elif precision == "fp16":
        tiers, make = fp16_tiers(model), lambda path, kept, tier: fp16_graph(model, path, kept=kept, tier=tier)
    else:
        tiers = int8_tiers(model, calibration, method=options.calib_method)
        make = lambda path, kept, tier: int8_graph(model, path, calibration, kept=kept, tier=tier,  # noqa: E731
                                                   method=options.calib_method)
    final.unlink(missing_ok=True)
    tried = []
    with tempfile.TemporaryDirectory(dir=final.parent) as tmp:
        for tier, kept in enumerate(tiers):
            graph = make(Path(tmp) / f"tier{tier}.onnx", kept, tier)
            runner = load_backend(graph.path, "onnxruntime", device="cpu", threads=1)
            gate = judge(stream(runner, store, spec.classes, f"{precision} graph (tier {tier})"), reference, precision)
            runner.close()
            counts = {reason: len(nodes) for reason, nodes in kept.items()}
            log(f"build_engines: {precision} tier {tier} (higher precision kept: {counts or 'nothing'}) "
                f"{'meets' if gate.passed else 'misses'} its target; agreement min {min(gate.agreement):.1%}, "
                f"AUC {gate.auc:.4f} vs {gate.reference_auc:.4f}")
            tried.append((graph, gate))
            if gate.passed:
                break
        graph, gate = tried[-1]
        if gate.passed or not options.accuracy_gate:
            shutil.move(str(graph.path), final)
        else:
            log(f"build_engines: {precision} refused: {'; '.join(gate.failures)}; nothing written to {final} "
                "(--no-accuracy-gate keeps the last tier anyway)")
    result = {"precision": precision, "path": str(final) if final.exists() else None, "tier": graph.tier,
              "kept_higher": graph.kept, "tiers_tried": [{"tier": g.tier, "min_agreement": min(r.agreement),
                                                          "auc": r.auc} for g, r in tried],
              "gate": gate.to_dict(), "backend": "onnxruntime"}
    if precision == "fp16" and final.exists():
        result["run_in_float32_by_onnxruntime_cpu"] = ops_run_in_float32_by_onnxruntime(final)
    return result


def _latency(outputs: dict[str, Path], results: list[dict], store, pushes: int) -> None:
    """Median push() that steps the model, for each kept graph on this CPU (one thread), measured
    interleaved in one run."""
    if pushes < 1 or not outputs:
        return
    from edgeact import Predictor

    spec = None
    predictors = {}
    for precision, path in outputs.items():
        predictors[precision] = Predictor(path, "onnxruntime", device="cpu", threads=1)
        spec = predictors[precision].spec
    clip = store.clips[0]
    frames = clip.frames() if spec.frames else [None] * clip.num_frames
    keypoints = getattr(clip, store.keypoint_view)
    times = {p: [] for p in predictors}
    for t in range(pushes * spec.stride):  # only pushes that step the model are timed
        for precision, predictor in predictors.items():
            i = t % clip.num_frames
            if i == 0:
                predictor.reset()
            started = time.perf_counter()
            prediction = predictor.push(frames[i], keypoints=keypoints[i] if spec.keypoints else None)
            if prediction.stepped:
                times[precision].append(time.perf_counter() - started)
    medians = {p: statistics.median(t[len(t) // 10:]) for p, t in times.items()}  # the first tenth warms up
    for result in results:
        median = medians.get(result["precision"])
        if median is not None:
            result["cpu_push_ms_p50"] = round(1e3 * median, 4)
            if "fp32" in medians:
                result["cpu_push_vs_fp32"] = round(median / medians["fp32"], 3)
    for predictor in predictors.values():
        predictor.close()


def _engines(outputs, results, options: BuildOptions, out: Path, stem: str, store, spec, reference, log) -> dict:
    """TensorRT engines from the kept graphs, each gated like its graph; or one line saying why not."""
    if importlib.util.find_spec("tensorrt") is None:
        log("build_engines: TensorRT is not installed here: the precision graphs above are what a TensorRT 10.x "
            "(JetPack) or 11.x device builds engines from; run this command there (docs/deploy.md).")
        return {}
    from build_engines.engine import build_engine, engine_is_current
    from edgeact.backends import load_backend

    engines = {}
    for result in results:
        graph = outputs.get(result["precision"])
        if graph is None:
            continue
        engine = out / f"{stem}.{result['precision']}.engine"
        if engine_is_current(engine, graph, options.max_streams, options.target) is not True:
            build_engine(graph, engine, max_batch=options.max_streams, target=options.target)
        runner = load_backend(engine, "tensorrt")
        gate = judge(stream(runner, store, spec.classes, f"{result['precision']} engine"), reference,
                     result["precision"])
        runner.close()
        sidecar = Path(str(engine) + ".json")
        data = json.loads(sidecar.read_text())
        data["accuracy"] = gate.to_dict()
        sidecar.write_text(json.dumps(data, indent=1))
        result["engine"] = {"path": str(engine), "gate": gate.to_dict()}
        log(f"build_engines: {engine.name}: agreement min {min(gate.agreement):.1%}, "
            f"{'meets' if gate.passed else 'misses'} the {result['precision']} target")
        if gate.passed or not options.accuracy_gate:
            engines[f"{result['precision']}_engine"] = engine
        else:
            engine.unlink()
            sidecar.unlink()
    return engines
