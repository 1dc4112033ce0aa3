"""Precision graphs: the step graph with its precision written into the graph itself.

TensorRT 11 removed weak typing (``BuilderFlag.FP16/INT8``, INT8 calibrators); on 10.x the
same graphs build as strongly typed networks. So FP16 and INT8 live in the ONNX graph:

* **fp16**: a mixed-precision graph (``onnxruntime.transformers.float16``, the converter ORT
  ships): weights and activations in float16, the graph's inputs and outputs (frames,
  keypoints, every ``state_in``/``state_out``, logits, probs) kept float32. Stays float32:
  the softmax, the keypoint normalisation (pixel coordinates: squared distances overflow
  float16's 65504), the LSTM cell-state update (the accumulator ``c = f*c + i*g`` that
  carries information across the whole stream).
* **int8**: explicit Q/DQ nodes (``onnxruntime.quantization.quantize_static``, QDQ format):
  per-channel symmetric int8 weights, symmetric int8 activations (what TensorRT consumes),
  for Conv/MatMul/Gemm, calibrated on recorded stream-order feeds (calibration.py).

Tiers keep more and more of the graph in higher precision (``fp16_tiers``, ``int8_tiers``:
for int8, after the recurrent head, the encoder layers that lose the most signal-to-
quantization-noise ratio, measured with ONNX Runtime's ``qdq_loss_debug`` on the calibration
feeds); the builder takes the first tier whose accuracy passes the gate and records which
nodes stayed higher and why. Every precision graph keeps the edgeact metadata, plus ``edgeact_precision``
and ``edgeact_kept_higher`` (JSON), so the Predictor, ``edgeact eval`` and the benchmarks run
it like any step graph.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgeact.spec import FEATURES, KEYPOINTS, METADATA_KEY, PRECISION_KEY, STATE_IN, STATE_OUT, save_graph

PRECISIONS = ("fp32", "fp16", "int8")
KEPT_KEY = "edgeact_kept_higher"
COMPUTE_OPS = ("Conv", "MatMul", "Gemm")
_CELL_STATE = re.compile(r"\.c\d+$")  # LSTM cell states: head.lstm.c0, head.stage1.c0, ...

# what each fp16 tier keeps in higher precision, in the order they are tried
FP16_TIERS = (("softmax", "keypoint_normalisation", "cell_state"),
              ("softmax", "keypoint_normalisation", "cell_state", "head"))
# int8: nothing, the head, then the head and the k encoder layers that lose the most SQNR
INT8_SENSITIVE_COUNTS = (1, 2, 4, 8, 16)


@dataclass
class PrecisionGraph:
    precision: str
    path: Path
    tier: int
    kept: dict[str, list[str]] = field(default_factory=dict)  # reason -> node names kept higher

    def describe(self) -> dict:
        return {"precision": self.precision, "path": str(self.path), "tier": self.tier,
                "kept_higher": {reason: len(nodes) for reason, nodes in self.kept.items()}}


# -- regions of the step graph ---------------------------------------------------------------------
def keypoint_normalisation(graph) -> list[str]:
    """The nodes from the keypoints input up to (not including) the pose encoder's first
    Conv/MatMul/Gemm: normalisation in pixel units."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen, todo, region = set(), [KEYPOINTS], []
    while todo:
        tensor = todo.pop()
        for node in consumers.get(tensor, []):
            if node.name in seen or node.op_type in COMPUTE_OPS:
                continue
            seen.add(node.name)
            region.append(node.name)
            todo.extend(node.output)
    return region


def cell_state_update(graph) -> list[str]:
    """The node writing each LSTM cell state output and the products it sums (f*c, i*g)."""
    producers = {out: node for node in graph.node for out in node.output}
    region = []
    for output in graph.output:
        if output.name.startswith(STATE_OUT) and _CELL_STATE.search(output.name):
            node = producers.get(output.name)
            if node is None:
                continue
            region.append(node.name)
            region.extend(producers[i].name for i in node.input if i in producers
                          and producers[i].op_type == "Mul")
    return region


def head(graph) -> list[str]:
    """Every node downstream of the declared feature boundaries (the recurrent head)."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    starts = [o.name for o in graph.output if o.name.startswith(FEATURES)]
    starts += [i.name for i in graph.input if i.name.startswith(STATE_IN + "head.")]
    seen, todo = set(), list(starts)
    while todo:
        for node in consumers.get(todo.pop(), []):
            if node.name not in seen:
                seen.add(node.name)
                todo.extend(node.output)
    return [n.name for n in graph.node if n.name in seen]


def softmax(graph) -> list[str]:
    return [n.name for n in graph.node if n.op_type in ("Softmax", "LogSoftmax")]


REGIONS = {"softmax": softmax, "keypoint_normalisation": keypoint_normalisation, "cell_state": cell_state_update,
           "head": head}


def _kept(graph, reasons: Iterable[str]) -> dict[str, list[str]]:
    """Each reason's region, with the Constant nodes that feed it: a converted constant would
    reach the kept node rounded (a 1e-12 floor becomes 0 in float16)."""
    producers = {out: node for node in graph.node for out in node.output}
    by_name = {node.name: node for node in graph.node}
    kept = {}
    for reason in reasons:
        region = REGIONS[reason](graph)
        constants = {producers[i].name for name in region for i in by_name[name].input
                     if i in producers and producers[i].op_type == "Constant"}
        kept[reason] = region + sorted(constants - set(region))
    return kept


def _prepared(fp32_path: str | Path):
    """The fp32 step graph simplified (onnxslim folds the exporter's shape arithmetic and its
    If nodes, which the float16 converter cannot type) with every node named."""
    import onnx
    import onnxslim

    model = onnxslim.slim(onnx.load(str(fp32_path)))
    left = sorted({n.op_type for n in model.graph.node if n.op_type in ("If", "Loop", "Scan")})
    if left:
        raise ValueError(f"{fp32_path}: control flow ({', '.join(left)}) is left after simplification; "
                         "precision graphs need a graph without it.")
    _name_nodes(model)
    return model


def _name_nodes(model) -> None:
    """Give every node a unique name (the converters block and report nodes by name)."""
    used = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in used:
            node.name = f"{node.op_type}_{i}"
        used.add(node.name)


def write_graph(model, path: Path, precision: str, kept: dict[str, list[str]]) -> None:
    """Save ``model`` with the edgeact metadata it carries plus its precision and kept nodes."""
    meta = {e.key: e.value for e in model.metadata_props}
    del model.metadata_props[:]
    meta.update({PRECISION_KEY: precision, KEPT_KEY: json.dumps(kept, sort_keys=True)})
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if METADATA_KEY not in meta:
        raise ValueError("the step graph lost its edgeact metadata")
    save_graph(model, path)  # the hash of this graph's own weights (fp16, Q/DQ), not the fp32 export's


# -- the precisions -------------------------------------------------------------------------------
def fp32_graph(fp32_path: str | Path, out: str | Path) -> PrecisionGraph:
    """The export itself, marked fp32 (so every precision graph declares what it is)."""
    import onnx

    write_graph(onnx.load(str(fp32_path)), Path(out), "fp32", {})
    return PrecisionGraph("fp32", Path(out), 0, {})


def fp16_graph(fp32_path: str | Path, out: str | Path, *, kept: dict[str, list[str]], tier: int = 0) -> PrecisionGraph:
    """Mixed-precision graph of ``fp32_path``: float16 but for the ``kept`` nodes and the I/O."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = _prepared(fp32_path)
    blocked = sorted({name for names in kept.values() for name in names})
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked)
    _drop_round_trips(converted)
    OnnxModel(converted).topological_sort()  # the converter appends casts out of order
    write_graph(converted, Path(out), "fp16", kept)
    return PrecisionGraph("fp16", Path(out), tier, kept)


def _drop_round_trips(model) -> None:
    """The converter leaves every tensor between two kept nodes rounded through float16
    (Cast to float16, then back): a kept region would not be float32 at all (a 1e-12 floor
    became 0, and a division by it NaN). Readers of such a round trip read the original."""
    import onnx

    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}

    def cast_to(node, dtype):
        return node.op_type == "Cast" and any(a.name == "to" and a.i == dtype for a in node.attribute)

    replace = {}
    graph_outputs = {o.name for o in graph.output}
    for node in graph.node:
        source = producers.get(node.input[0]) if node.input else None
        if cast_to(node, onnx.TensorProto.FLOAT) and source is not None and cast_to(source, onnx.TensorProto.FLOAT16):
            if node.output[0] in graph_outputs:
                node.input[0] = source.input[0]  # an output keeps its name: a float32-to-float32 Cast
            else:
                replace[node.output[0]] = source.input[0]  # float32 -> float16 -> float32: read the float32
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in replace:
                node.input[k] = replace[name]
    used = {i for node in graph.node for i in node.input} | graph_outputs
    dead = [node for node in graph.node if node.op_type == "Cast" and not any(o in used for o in node.output)]
    for node in dead:
        graph.node.remove(node)


def fp16_tiers(fp32_path: str | Path) -> Iterator[dict[str, list[str]]]:
    """The kept-higher node sets of the fp16 tiers, in the order to try."""
    graph = _prepared(fp32_path).graph
    for tier in FP16_TIERS:
        yield _kept(graph, tier)


def int8_tiers(fp32_path: str | Path, calibration, *, method: str = "minmax") -> Iterator[dict[str, list[str]]]:
    """The kept-higher node sets of the int8 tiers, in the order to try: nothing; the head;
    the head and the k encoder layers that lose the most SQNR under int8 (measured once, when
    first needed)."""
    graph = _prepared(fp32_path).graph
    yield {}
    kept = {"head": head(graph)}
    yield kept
    ranking = int8_sensitivity(fp32_path, calibration, kept["head"], method=method)
    for k in INT8_SENSITIVE_COUNTS:
        if k > len(ranking):
            break
        yield {**kept, "lowest_int8_sqnr": [name for name, _ in ranking[:k]]}


def int8_graph(fp32_path: str | Path, out: str | Path, calibration, *, kept: dict[str, list[str]], tier: int = 0,
               method: str = "minmax") -> PrecisionGraph:
    """Q/DQ int8 graph of ``fp32_path`` with the ``kept`` nodes left in float32."""
    import onnx

    excluded = sorted({name for names in kept.values() for name in names})
    with tempfile.TemporaryDirectory() as tmp:
        quantized = _quantize(_prepared(fp32_path), Path(tmp), calibration, excluded, method)
        result = onnx.load(str(quantized))
    write_graph(result, Path(out), "int8", kept)
    return PrecisionGraph("int8", Path(out), tier, kept)


def _quantize(model, tmp: Path, calibration, excluded: list[str], method: str) -> Path:
    """quantize_static in TensorRT's flavour: QDQ, int8 symmetric activations and per-channel
    symmetric weights, float biases, for Conv/MatMul/Gemm; returns the quantized model's path."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    named, prepared, quantized = tmp / "named.onnx", tmp / "prepared.onnx", tmp / "int8.onnx"
    onnx.save(model, str(named))
    quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(quantized), _reader(calibration), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=list(COMPUTE_OPS), nodes_to_exclude=excluded,
                    calibrate_method=methods[method],
                    # biases stay float32: only weights and activations get Q/DQ pairs (no int32 bias
                    # DequantizeLinear), the int8 pattern TensorRT's explicit quantization fuses
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    return quantized


def _reader(calibration, batches: int | None = None):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = calibration.batches()
            self._left = batches

        def get_next(self):
            if self._left is not None:
                if self._left == 0:
                    return None
                self._left -= 1
            return next(self._batches, None)

    return Reader()


def int8_sensitivity(fp32_path: str | Path, calibration, excluded: list[str], *, method: str = "minmax",
                     batches: int = 8) -> list[tuple[str, float]]:
    """Encoder Conv/MatMul/Gemm nodes by the SQNR (dB) they lose under int8, worst first: the
    float graph and its int8 version run on ``batches`` calibration batches, and a node's loss
    is the SQNR of its input minus that of its output, each against the float graph
    (``onnxruntime.quantization.qdq_loss_debug``)."""
    from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                         create_activation_matching,
                                                         modify_model_output_intermediate_tensors)

    model = _prepared(fp32_path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        quantized = _quantize(model, tmp, calibration, excluded, method)
        augmented_float, augmented_int8 = tmp / "float_outputs.onnx", tmp / "int8_outputs.onnx"
        modify_model_output_intermediate_tensors(str(tmp / "prepared.onnx"), str(augmented_float))
        modify_model_output_intermediate_tensors(str(quantized), str(augmented_int8))
        float_acts = collect_activations(str(augmented_float), _reader(calibration, batches))
        int8_acts = collect_activations(str(augmented_int8), _reader(calibration, batches))
    errors = compute_activation_error(create_activation_matching(int8_acts, float_acts))
    skip = set(excluded)
    losses = []
    for node in model.graph.node:
        if node.op_type not in COMPUTE_OPS or node.name in skip or node.output[0] not in errors:
            continue
        after = errors[node.output[0]]["xmodel_err"]
        before = errors.get(node.input[0], {}).get("xmodel_err", float("inf"))
        loss = (before - after) if before != float("inf") else -after
        losses.append((node.name, float(loss)))
    return sorted(losses, key=lambda item: -item[1])


def read_precision(path: str | Path) -> tuple[str, dict[str, list[str]]]:
    """(precision, kept-higher nodes) a graph declares; an unmarked graph is fp32."""
    from edgeact.spec import onnx_metadata

    meta = onnx_metadata(path)
    return meta.get(PRECISION_KEY, "fp32"), json.loads(meta.get(KEPT_KEY, "{}"))


def ops_run_in_float32_by_onnxruntime(path: str | Path) -> dict[str, int]:
    """Op types of a float16 graph that ONNX Runtime's CPU provider wraps in casts to run in
    float32 (it has no float16 kernel for them here): on this CPU those ops keep float16
    storage (weights, activations between ops) but not float16 arithmetic. TensorRT runs them
    in float16."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "placed.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        placed = onnx.load(options.optimized_model_filepath)
    producers = {out: node for node in placed.graph.node for out in node.output}
    counts: dict[str, int] = {}
    for node in placed.graph.node:
        inserted = [producers.get(i) for i in node.input if i in producers]
        if node.op_type != "Cast" and any(p.op_type == "Cast" and p.name.startswith("InsertedPrecisionFreeCast")
                                          for p in inserted):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
