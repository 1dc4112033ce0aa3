"""What the precision graphs are made of: float16 with float32 I/O and the kept regions, int8
Q/DQ in TensorRT's flavour (symmetric, per-channel weights), calibration in stream order with
states, and the gate's arithmetic and sentences."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from build_engines.calibration import record
from build_engines.gate import Evaluated, judge
from build_engines.precision import fp16_graph, fp16_tiers, int8_graph, int8_tiers, read_precision
from edgeact.spec import read_spec


def test_fp16_keeps_io_and_the_sensitive_regions_in_float32(trained_pose, tmp_path):
    kept = next(fp16_tiers(trained_pose["onnx"]))
    assert set(kept) == {"softmax", "keypoint_normalisation", "cell_state"}
    assert len(kept["softmax"]) == 1 and len(kept["cell_state"]) == 3  # Add(f*c, i*g) and its two products
    graph = fp16_graph(trained_pose["onnx"], tmp_path / "m.fp16.onnx", kept=kept)
    model = onnx.load(str(graph.path))
    assert {v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)} == {TensorProto.FLOAT}
    dtypes = [init.data_type for init in model.graph.initializer if numpy_helper.to_array(init).size > 16]
    assert dtypes.count(TensorProto.FLOAT16) > dtypes.count(TensorProto.FLOAT)  # the weights went to float16
    kept_names = {name for names in kept.values() for name in names}
    assert kept_names <= {n.name for n in model.graph.node}
    assert read_precision(graph.path) == ("fp16", kept)
    # kept means float32 end to end: no tensor between kept nodes is rounded through float16
    producers = {out: node for node in model.graph.node for out in node.output}

    def casts_to(node, dtype):
        return node.op_type == "Cast" and node.attribute[0].i == dtype

    for node in model.graph.node:
        if casts_to(node, TensorProto.FLOAT) and node.input[0] in producers:
            assert not casts_to(producers[node.input[0]], TensorProto.FLOAT16), node.name


def test_int8_is_symmetric_qdq_with_per_channel_weights(trained_pose, tmp_path):
    calibration = record(trained_pose["onnx"], trained_pose["data"], clips=8, keypoints="keypoints")
    tiers = int8_tiers(trained_pose["onnx"], calibration)
    assert next(tiers) == {}
    head = next(tiers)["head"]
    graph = int8_graph(trained_pose["onnx"], tmp_path / "m.int8.onnx", calibration, kept={"head": head})
    model = onnx.load(str(graph.path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dequantize = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert quantize and dequantize
    for node in quantize + dequantize:  # symmetric: every zero point is 0, int8
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any()
    weights = [n for n in dequantize if n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    assert weights and all(inits[n.input[1]].size > 1 for n in weights)  # one scale per output channel
    produced_by_dq = {o for n in dequantize for o in n.output}
    for node in model.graph.node:  # the head stays float: no dequantized weight feeds it
        if node.name in head and node.op_type in ("Gemm", "MatMul"):
            assert not any(i in produced_by_dq and i.endswith("weight_DequantizeLinear_Output") for i in node.input)


def test_calibration_records_states_in_stream_order(trained_pose):
    calibration = record(trained_pose["onnx"], trained_pose["data"], clips=3, keypoints="keypoints")
    spec = read_spec(trained_pose["onnx"])
    assert set(calibration.feeds) == set(spec.input_names)
    h0 = calibration.feeds["state_in." + spec.state[0].name]
    assert calibration.steps == len(h0) > 3
    assert not h0[0].any() and h0[1].any()  # a clip starts from zeros; later steps carry its state
    assert [len(b["keypoints"]) for b in calibration.batches(4)] == [4] * (calibration.steps // 4)


def _evaluated(top, labels, name="x"):
    logits = np.zeros((len(top), 10, 3), np.float32)
    logits[np.arange(len(top))[:, None], np.arange(10)[None], np.asarray(top)] = 1.0
    return Evaluated(name, logits, np.asarray(labels))


def test_the_gate_counts_agreement_per_ratio_and_names_each_miss():
    labels = [0] * 50
    reference = _evaluated(np.zeros((50, 10), int), labels, "ref")
    flipped = np.zeros((50, 10), int)
    flipped[0, 3] = 1  # one clip of 50 disagrees at r = 0.4
    result = judge(_evaluated(flipped, labels), reference, "fp16")
    assert result.agreement[3] == pytest.approx(0.98) and result.agreement[2] == 1.0
    assert result.failures == ["agreement 98.0% at r=0.4 is below 99.5%"]
    assert (result.disagreements, result.near_ties) == (1, 0)  # the reference was sure: one-hot logits
    assert judge(_evaluated(flipped, labels), reference, "int8").passed  # 98% is int8's bound
    worse = np.zeros((50, 10), int)
    worse[:2] = 1  # two clips wrong everywhere: 4% agreement lost, 4 AUC points
    result = judge(_evaluated(worse, labels), reference, "int8")
    assert result.failures[0] == "agreement 96.0% at r=0.1 is below 98.0%"
    assert result.failures[-1] == "AUC 0.9600 is 4.00 points below the reference's 1.0000 (at most 1.0)"
