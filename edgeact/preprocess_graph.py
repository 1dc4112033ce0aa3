"""edgeact.preprocess.preprocess_frame as ONNX ops, for step graphs that take the raw camera frame.

``prepend_frame_preprocessing`` puts in front of an exported step graph the ops that turn a BGR
uint8 ``[N, H, W, 3]`` camera frame of one fixed size into the model's normalised float32
``[N, 3, h, w]``, so on a GPU the frame crosses the bus once, as uint8 (docs/preprocess.md,
"On the device"). The ops follow the CPU path stage by stage, rounding to whole uint8 values
where OpenCV does, so both give the same pixels but for rare ties of float rounding:

=====================  ==========================================  ==============================
CPU path               graph                                       TensorRT layer
=====================  ==========================================  ==============================
(input)                Cast uint8 -> float32, Transpose to NCHW    ICastLayer, IShuffleLayer
centre crop            Slice with constant bounds                  ISliceLayer
area_fast 2x2 halving  AveragePool 2x2 stride 2, Floor(x + 0.5)    IPoolingLayer (kAVERAGE),
                                                                   IElementWiseLayer, IUnaryLayer
INTER_AREA to size     MatMul by constant area-weight matrices     IMatrixMultiplyLayer (+ constants)
                       (rows, then columns), Round                 IUnaryLayer (kROUND)
BGR -> RGB             Gather [2, 1, 0] on the channel axis        IGatherLayer
scale, mean, std       Mul, Sub by per-channel constants           IElementWiseLayer
=====================  ==========================================  ==============================

Only shrinking (or equal) sizes are supported: a camera frame smaller than the model after the
crop (OpenCV's INTER_LINEAR enlargement) is refused at export. This module needs onnx only when
a graph is built; importing it costs numpy.
"""

from __future__ import annotations

import numpy as np

from edgeact.errors import InputError
from edgeact.spec import FRAMES, FrameSpec

_NORMALISED = "frames.normalised"  # the old graph input, now the preprocessing's output
_PREFIX = "preprocess."


def frame_plan(raw_size: tuple[int, int], spec: FrameSpec) -> list[tuple]:
    """The geometric stages resize_frame runs on a (height, width) camera frame, in order:
    ("crop", y0, x0, h, w), ("halve",) per 2x2 halving, ("area", h, w) for the final INTER_AREA.
    Read off the CPU path's own helpers (edgeact.preprocess), run on stand-in frames, so the
    rule of when to crop and halve exists once."""
    from edgeact.preprocess import _centre_crop_to_aspect, _halve_towards

    h_raw, w_raw = raw_size
    height, width = spec.size
    stages: list[tuple] = []
    h, w = h_raw, w_raw
    if spec.resize == "crop":  # crop stand-ins holding their own row and column numbers
        rows = _centre_crop_to_aspect(np.broadcast_to(np.arange(h)[:, None, None], (h, w, 1)), width / height)
        cols = _centre_crop_to_aspect(np.broadcast_to(np.arange(w)[None, :, None], (h, w, 1)), width / height)
        h, w = rows.shape[:2]
        if (h, w) != (h_raw, w_raw):
            stages.append(("crop", int(rows[0, 0, 0]), int(cols[0, 0, 0]), h, w))
    if h < height or w < width:
        raise InputError(f"frame_input {w_raw}x{h_raw} is smaller than the model's {width}x{height} input after "
                         f"its {spec.resize!r} geometry ({w}x{h}); in-graph preprocessing only shrinks frames.")
    if (h, w) == (height, width):
        return stages
    if spec.interpolation == "area_fast":
        halved = _halve_towards(np.zeros((h, w, 3), np.uint8), height, width).shape[0]
        while h > halved:
            h, w = h // 2, w // 2
            stages.append(("halve",))
    if (h, w) == (2 * height, 2 * width):  # OpenCV takes its exact-half path here, rounding as a halving
        stages.append(("halve",))
    elif (h, w) != (height, width):
        stages.append(("area", height, width))
    return stages


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] float32: output pixel j averages the input over [j*s, (j+1)*s), s =
    size_in / size_out, each input pixel weighted by the length of its overlap (area resampling
    along one axis; INTER_AREA is this along rows, then columns)."""
    scale = size_in / size_out
    edges = np.arange(size_out + 1, dtype=np.float64) * scale
    left = np.arange(size_in, dtype=np.float64)
    overlap = np.minimum(left[None, :] + 1, edges[1:, None]) - np.maximum(left[None, :], edges[:-1, None])
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


def preprocessing_nodes(spec: FrameSpec, raw_size: tuple[int, int], output: str = _NORMALISED) -> tuple[list, list]:
    """(nodes, initializers) taking ``frames`` (BGR uint8 [N, H, W, 3], (H, W) = ``raw_size``) to
    ``output``: float32 [N, 3, h, w], what preprocess_frame gives for ``spec``, in graph order."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, constants = [], []

    def const(name: str, array: np.ndarray) -> str:
        constants.append(numpy_helper.from_array(array, _PREFIX + name))
        return _PREFIX + name

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = f"{_PREFIX}{len(nodes)}.{op.lower()}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    x = node("Cast", [FRAMES], to=TensorProto.FLOAT)  # [N, H, W, 3] in 0..255
    x = node("Transpose", [x], perm=[0, 3, 1, 2])  # [N, 3, H, W] BGR
    h, w = raw_size
    for i, stage in enumerate(frame_plan(raw_size, spec)):
        if stage[0] == "crop":
            _, y0, x0, h, w = stage
            x = node("Slice", [x, const(f"crop_starts{i}", np.array([y0, x0], np.int64)),
                               const(f"crop_ends{i}", np.array([y0 + h, x0 + w], np.int64)),
                               const(f"crop_axes{i}", np.array([2, 3], np.int64))])
        elif stage[0] == "halve":  # OpenCV's exact-half INTER_AREA on uint8: (a + b + c + d + 2) >> 2
            x = node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
            x = node("Floor", [node("Add", [x, const(f"half{i}", np.array(0.5, np.float32))])])
            h, w = h // 2, w // 2
        else:  # INTER_AREA to the model's size; OpenCV rounds its float result to nearest, ties to even
            _, height, width = stage
            x = node("MatMul", [const(f"area_rows{i}", area_weights(h, height)), x])  # [N, 3, height, w]
            x = node("MatMul", [x, const(f"area_cols{i}", np.ascontiguousarray(area_weights(w, width).T))])
            x = node("Round", [x])  # [N, 3, height, width]
    if spec.color_order == "RGB":
        x = node("Gather", [x, const("bgr_to_rgb", np.array([2, 1, 0], np.int64))], axis=1)
    std = np.asarray(spec.std, np.float32)
    scale = (np.float32(1.0 / 255.0) / std).reshape(1, 3, 1, 1)  # the constants preprocess_frame uses
    offset = (np.asarray(spec.mean, np.float32) / std).reshape(1, 3, 1, 1)
    x = node("Mul", [x, const("scale", scale)])
    nodes.append(helper.make_node("Sub", [x, const("offset", offset)], [output], name=_PREFIX + "normalise"))
    return nodes, constants


def preprocessing_model(spec: FrameSpec, raw_size: tuple[int, int], *, opset: int = 17):
    """The preprocessing alone as an onnx.ModelProto: ``frames`` uint8 [batch, H, W, 3] ->
    ``frames.normalised`` float32 [batch, 3, h, w] (what export verifies, and the tests)."""
    from onnx import TensorProto, helper

    nodes, constants = preprocessing_nodes(spec, raw_size)
    graph = helper.make_graph(
        nodes, "edgeact_frame_preprocessing",
        [helper.make_tensor_value_info(FRAMES, TensorProto.UINT8, ["batch", *raw_size, 3])],
        [helper.make_tensor_value_info(_NORMALISED, TensorProto.FLOAT, ["batch", 3, *spec.size])], constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgeact")


def prepend_frame_preprocessing(proto, spec: FrameSpec, raw_size: tuple[int, int]):
    """``proto`` (an onnx.ModelProto whose ``frames`` input is float32 [N, 3, h, w]) rewritten in
    place to take ``frames`` as BGR uint8 [N, H, W, 3], (H, W) = ``raw_size``, preprocessed inside
    the graph as edgeact.preprocess.preprocess_frame does for ``spec``. Returns ``proto``."""
    from onnx import TensorProto, helper

    graph = proto.graph
    old = next((i for i in graph.input if i.name == FRAMES), None)
    if old is None:
        raise InputError(f"the step graph has no {FRAMES!r} input; in-graph frame preprocessing needs an RGB model.")
    if old.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise InputError(f"the step graph's {FRAMES!r} input must be float32 (preprocessed frames), got "
                         f"{TensorProto.DataType.Name(old.type.tensor_type.elem_type)}: it already takes raw frames?")
    batch_dim = old.type.tensor_type.shape.dim[0]
    batch = batch_dim.dim_param or batch_dim.dim_value
    nodes, constants = preprocessing_nodes(spec, raw_size)
    for consumer in graph.node:
        for k, name in enumerate(consumer.input):
            if name == FRAMES:
                consumer.input[k] = _NORMALISED
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)
    graph.initializer.extend(constants)
    for info in [v for v in graph.value_info if v.name == FRAMES]:
        graph.value_info.remove(info)
    position = list(graph.input).index(old)
    graph.input.remove(old)
    graph.input.insert(position, helper.make_tensor_value_info(FRAMES, TensorProto.UINT8, [batch, *raw_size, 3]))
    return proto


def uint8_step(spec: FrameSpec) -> np.ndarray:
    """One uint8 unit in normalised units, per model channel: 1 / (255 * std)."""
    return np.float32(1.0 / 255.0) / np.asarray(spec.std, np.float32)


def sample_frames(raw_size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Fresh BGR uint8 frames at ``raw_size``: uniform noise and a natural-like one (smooth shading,
    a few hard-edged shapes), the two kinds the in-graph preprocessing is measured on."""
    import cv2

    h, w = raw_size
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    smooth = cv2.resize(rng.integers(0, 256, (max(2, h // 60), max(2, w // 60), 3), dtype=np.uint8), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(smooth, centre, int(rng.integers(1, max(2, min(h, w) // 4))), colour, -1)
        cv2.rectangle(smooth, centre, (centre[0] + w // 7, centre[1] + h // 9), colour[::-1], -1)
    return [smooth, noise]


def preprocessing_error(spec: FrameSpec, raw_size: tuple[int, int], frames: list[np.ndarray]) -> dict[str, float]:
    """The in-graph preprocessing against preprocess_frame on ``frames`` (ONNX Runtime, CPU):
    max and mean |difference| in normalised units, the max in uint8 units (difference / uint8_step),
    and the share of values that differ (by more than half a uint8 unit)."""
    import onnxruntime as ort

    from edgeact.preprocess import preprocess_frame

    session = ort.InferenceSession(preprocessing_model(spec, raw_size).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    graph = session.run(None, {FRAMES: np.stack(frames)})[0]
    cpu = np.stack([preprocess_frame(f, spec) for f in frames])
    diff = np.abs(graph.astype(np.float64) - cpu)
    steps = diff / uint8_step(spec).astype(np.float64)[None, :, None, None]
    return {"max": float(diff.max()), "mean": float(diff.mean()), "max_uint8": float(steps.max()),
            "differing": float((steps > 0.5).mean())}


# The in-graph preprocessing rounds to uint8 where OpenCV does, so it may differ from the CPU path
# only where OpenCV's float area average lands on a .5 tie: by one uint8 unit. Measured on camera
# sizes 340x256..1920x1080 to 64..224, stretch and crop, area and area_fast: max 1.0 unit, on
# 0..9.6 % of the values (docs/preprocess.md, "On the device"). Float slop: 1e-3 unit.
MAX_UINT8_DIFFERENCE = 1.001


def take_raw_frames(path, spec, raw_size: tuple[int, int], *, seed: int):
    """Rewrite the step graph at ``path`` to take raw frames (prepend_frame_preprocessing), record
    ``frames.raw_size`` in its metadata, and verify the preprocessing against preprocess_frame on
    fresh frames; returns the new ModelSpec. ExportError when they differ by more than
    MAX_UINT8_DIFFERENCE uint8 units."""
    from dataclasses import replace

    import onnx

    from edgeact.errors import ExportError
    from edgeact.spec import METADATA_KEY, save_graph

    error = preprocessing_error(spec.frames, raw_size, sample_frames(raw_size, seed))
    if error["max_uint8"] > MAX_UINT8_DIFFERENCE:
        raise ExportError(f"the in-graph frame preprocessing differs from edgeact.preprocess.preprocess_frame by "
                          f"{error['max_uint8']:.3g} uint8 units (at most {MAX_UINT8_DIFFERENCE} expected).")
    proto = prepend_frame_preprocessing(onnx.load(str(path)), spec.frames, raw_size)
    spec = replace(spec, frames=replace(spec.frames, raw_size=tuple(raw_size)))
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = spec.to_json()
    save_graph(proto, path)  # the hash covers the preprocessing's constants too
    return spec
