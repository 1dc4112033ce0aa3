"""Native backend: an exported ``.onnx`` step run by edgeact's own code, without torch.

- The recurrent head (``lstm``, ``gru``: 1-3 layers; ``two_stage``: two LSTMs, stage 2's
  classifier) runs on the compiled kernels (:mod:`edgeact.kernels`).
- The pose encoder runs in numpy: its convolutions and linear layers are tiny, and its keypoint
  normalisation is written out exactly as ``PoseEncoder.normalize`` does it.
- A frame encoder (TSM-MobileNetV2/ResNet) stays on ONNX Runtime: the part of the exported
  step graph that computes the frame features and the encoder's next states is cut out and
  run alone, so ORT never executes the pose encoder or the head.

Weights are read from the artifact's initializers through ``spec.arch["onnx_weights"]`` (what
the exporter recorded for every PyTorch parameter), never from a checkpoint. The frame features
tensor is found in the graph as the frontier of the encoder (see :func:`find_frame_features`).

State: one tensor per ``spec.state`` entry, batch first, as every backend. A step never writes
its input state: the kernels write the next h (and c) of all layers into one new block, whose
per-layer views become the next state (swapped, not copied), and at the following step those
views are handed back to the kernels as one ``(layers, batch, hidden)`` array without a copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeact import kernels
from edgeact.backends.base import Backend, State
from edgeact.errors import BackendError, ModelFormatError
from edgeact.spec import FRAMES, KEYPOINTS, METADATA_KEY, STATE_IN, STATE_OUT, ModelSpec

NATIVE_HEADS = ("lstm", "gru", "two_stage")  # heads this backend runs natively


class NativeBackend(Backend):
    name = "native"

    def _load(self, path: Path, **options: Any) -> ModelSpec:
        if options:
            raise BackendError(f"backend 'native' takes no options {sorted(options)}; it takes device and threads.")
        if self.device not in ("auto", "cpu"):
            raise BackendError(
                f"backend 'native' runs on the CPU: device must be 'auto' or 'cpu', got {self.device!r}."
            )
        threads = self.threads or 1
        proto = _read_onnx(path)
        spec = _read_spec(proto, path)
        config = spec.arch.get("config", {})
        head = config.get("head", {}).get("name")
        if head not in NATIVE_HEADS:
            raise BackendError(
                f"backend 'native' cannot run {path.name}: architecture {spec.arch.get('architecture', '(unknown)')!r} "
                f"has head {head!r}, and native runs only the {', '.join(NATIVE_HEADS[:-1])} and {NATIVE_HEADS[-1]} "
                "heads. Run it with backend 'onnxruntime' (or its TensorRT engine with 'tensorrt', its checkpoint "
                "with 'torch')."
            )
        weights = ArtifactWeights(proto, spec, path)
        self._pose = NumpyPoseEncoder(config["pose"], weights) if spec.keypoints else None
        if head == "two_stage":
            self._head: RecurrentHead | TwoStageHead | None = TwoStageHead(weights, spec, threads)
        else:
            pose_dim = self._pose.out_dim if self._pose else 0
            self._head = RecurrentHead(head, config["head"]["layers"], pose_dim, weights, spec, threads)
        self._frames = None
        if spec.frames:
            self._frames = OrtFrameEncoder(proto, spec, weights.native_initializers, self.threads, path,
                                        width=self._head.frame_width)
        return spec

    def init_state(self, batch: int = 1) -> State:
        state = super().init_state(batch)
        self._head.place_states(state, batch, np.zeros)  # each stack's layers back to back: no copy at the first step
        return state

    def _step(self, inputs: dict[str, np.ndarray], state: State) -> tuple[np.ndarray, State]:
        next_state: State = [None] * len(state)
        frame_features = self._frames.step(inputs[FRAMES], state, next_state) if self._frames else None
        pose_features = self._pose(inputs[KEYPOINTS]) if self._pose else None
        logits = self._head.step(frame_features, pose_features, state, next_state)
        return logits, next_state

    def describe(self) -> dict[str, Any]:
        out = {**super().describe(), "pose_encoder": "numpy" if self._pose else None, "frame_encoder": None}
        if self._head:
            kernel = self._head.kernels[0]
            out.update(threads=kernel.threads, kernel_isa=kernel.isa)
        if self._frames:
            out["frame_encoder"] = {"runtime": "onnxruntime", "features": list(self._frames.features)}
        return out

    def close(self) -> None:
        self._frames = self._pose = self._head = None  # the kernels' worker threads go with their cells


# -- the artifact ------------------------------------------------------------------------------
def _read_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises its own untyped errors
        raise ModelFormatError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc}).") from exc


def _read_spec(proto, path: Path) -> ModelSpec:
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    if METADATA_KEY not in meta:
        raise ModelFormatError(
            f"{path} is an ONNX model without edgeact metadata (no {METADATA_KEY!r} entry in "
            "metadata_props); export it with `edgeact export`."
        )
    return ModelSpec.from_json(meta[METADATA_KEY], source=str(path))


class ArtifactWeights:
    """PyTorch-named weights of the parts run natively (``head.*``, ``pose.*``), read from the
    graph's initializers in PyTorch's layout."""

    PREFIXES = ("head.", "pose.")

    def __init__(self, proto, spec: ModelSpec, path: Path):
        from onnx import numpy_helper

        located = spec.arch.get("onnx_weights")
        if not located:
            raise ModelFormatError(
                f"{path} does not say where its weights are (no 'onnx_weights' in its edgeact metadata, exported "
                f"by edgeact {spec.edgeact_version or '(unknown)'}); re-export it to run it with backend 'native'."
            )
        self.path = path
        self._located = {name: where for name, where in located.items() if name.startswith(self.PREFIXES)}
        wanted = {initializer for initializer, _ in self._located.values()}
        self._arrays = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer
                        if init.name in wanted}

    @property
    def native_initializers(self) -> set[str]:
        return {initializer for initializer, _ in self._located.values()}

    def __getitem__(self, name: str) -> np.ndarray:
        where = self._located.get(name)
        if where is None or where[0] not in self._arrays:
            raise ModelFormatError(
                f"{self.path}: weight {name!r} is not among the graph's initializers; re-export the model "
                "to run it with backend 'native'."
            )
        array = self._arrays[where[0]]
        return np.ascontiguousarray(array.T if where[1] else array, dtype=np.float32)


# -- recurrent heads on the kernels ------------------------------------------------------------
class RecurrentStack:
    """A stacked LSTM/GRU on :mod:`edgeact.kernels` over its per-layer state tensors
    ``<state>.h0``, ``<state>.c0``, ``<state>.h1``... (PyTorch parameters ``<params>weight_ih_l0``...)."""

    def __init__(self, cell: str, params: str, state: str, layers: int, weights: ArtifactWeights, spec: ModelSpec,
                 threads: int):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        per_layer = {n: [weights[f"{params}{n}_l{k}"] for k in range(layers)] for n in names}
        self.kernel = (kernels.LSTM if cell == "lstm" else kernels.GRU)(*per_layer.values(), threads=threads)
        order = [s.name for s in spec.state]
        parts = ("h", "c") if cell == "lstm" else ("h",)
        try:  # [part][layer] -> position in the state list
            self.index = [[order.index(f"{state}.{p}{k}") for k in range(layers)] for p in parts]
        except ValueError:
            raise ModelFormatError(
                f"{weights.path}: its state {order} lacks the {cell.upper()} states {state}.h0... that its head needs."
            ) from None

    def place_states(self, state: State, batch: int, fill) -> np.ndarray:
        """Put this stack's state tensors, as views of one new (parts, layers, batch, hidden) block, into ``state``."""
        block = fill((len(self.index), self.kernel.num_layers, batch, self.kernel.hidden_size), np.float32)
        for part, positions in enumerate(self.index):
            for layer, i in enumerate(positions):
                state[i] = block[part, layer]
        return block

    def step(self, x: np.ndarray, state: State, next_state: State) -> np.ndarray:
        """x [B,D] -> top layer's h [B,H]; reads ``state``, fills this stack's entries of ``next_state``."""
        current = [as_layers([state[i] for i in positions]) for positions in self.index]
        block = self.place_states(next_state, x.shape[0], np.empty)
        self.kernel.step(x, *current, *block)  # h, c -> h_out, c_out: the input state is never written
        return block[0, -1]


def as_layers(layers: list[np.ndarray]) -> np.ndarray:
    """Per-layer [B,H] state tensors as the kernels' (layers, B, H) array: a view when they lie
    back to back in memory (as this backend's states do), else one copy."""
    first = layers[0]
    ok = all(a.dtype == np.float32 and a.flags.c_contiguous and a.shape == first.shape for a in layers)
    if ok and len(layers) == 1:
        return first[None]
    base = first.__array_interface__["data"][0]
    if ok and all(a.__array_interface__["data"][0] == base + k * first.nbytes for k, a in enumerate(layers)):
        # each layer is a valid array at its address, so together they cover the strided extent
        return np.lib.stride_tricks.as_strided(first, (len(layers), *first.shape), (first.nbytes, *first.strides),
                                               writeable=False)
    return np.stack(layers).astype(np.float32, copy=False)


def _linear(weights: ArtifactWeights, name: str) -> tuple[np.ndarray, np.ndarray]:
    """nn.Linear ``name`` as (W^T [in,out] C-contiguous, bias [out])."""
    return np.ascontiguousarray(weights[f"{name}.weight"].T), weights[f"{name}.bias"]


def _concat(parts: list[np.ndarray | None]) -> np.ndarray:
    present = [p for p in parts if p is not None]
    return present[0] if len(present) == 1 else np.concatenate(present, axis=1)


class RecurrentHead:
    """``RecurrentHead``: an LSTM/GRU over [frame features, pose features], a classifier on top h."""

    def __init__(self, cell: str, layers: int, pose_dim: int, weights: ArtifactWeights, spec: ModelSpec,
                 threads: int):
        self.rnn = RecurrentStack(cell, "head.rnn.", f"head.{cell}", layers, weights, spec, threads)
        self.classifier = _linear(weights, "head.classifier")
        self.frame_width = self.rnn.kernel.input_size - pose_dim  # the head reads [frame features, pose features]
        self.kernels = [self.rnn.kernel]

    def place_states(self, state: State, batch: int, fill) -> None:
        self.rnn.place_states(state, batch, fill)

    def step(self, frame: np.ndarray | None, pose: np.ndarray | None, state: State, next_state: State) -> np.ndarray:
        h = self.rnn.step(np.ascontiguousarray(_concat([frame, pose])), state, next_state)  # [B,H]
        return h @ self.classifier[0] + self.classifier[1]  # [B,K], a new array: predictions keep it


class TwoStageHead:
    """``TwoStageHead``: stage 1 LSTM over frame (context) features, stage 2 LSTM over
    [stage-1 h, pose (action) features]; the step's logits are stage 2's classifier."""

    def __init__(self, weights: ArtifactWeights, spec: ModelSpec, threads: int):
        self.stage1 = RecurrentStack("lstm", "head.stage1.", "head.stage1", 1, weights, spec, threads)
        self.stage2 = RecurrentStack("lstm", "head.stage2.", "head.stage2", 1, weights, spec, threads)
        self.classifier = _linear(weights, "head.classifier2")
        self.frame_width = self.stage1.kernel.input_size  # stage 1 reads the frame features alone
        self.kernels = [self.stage1.kernel, self.stage2.kernel]

    def place_states(self, state: State, batch: int, fill) -> None:
        self.stage1.place_states(state, batch, fill)
        self.stage2.place_states(state, batch, fill)

    def step(self, frame: np.ndarray, pose: np.ndarray, state: State, next_state: State) -> np.ndarray:
        h1 = self.stage1.step(frame, state, next_state)  # [B,H]
        h2 = self.stage2.step(np.concatenate((h1, pose), axis=1), state, next_state)  # [B,H]
        return h2 @ self.classifier[0] + self.classifier[1]


# -- pose encoder in numpy ---------------------------------------------------------------------
class NumpyPoseEncoder:
    """``edgeact.models.pose.PoseEncoder`` in numpy: keypoints [N,P,J,C+1] pixels -> [N,P*dim].

    Activations are kept channels-last, so every layer is one GEMM: the 1x1 joint convolutions
    over [N*P*J, channels], the kernel-3 relation convolutions as im2col over
    [N*P*length, 3*channels]. Weights are reordered once here to read that layout: relation
    kernels tap-major (row k*in + j), the projection's columns length-major (PyTorch flattens the
    relation output channels-first). At batch 1 numpy's per-call overhead dominates, so the step
    is written in few calls.
    """

    def __init__(self, cfg: dict, weights: ArtifactWeights):
        self.people, self.joints, self.coords = cfg["people"], cfg["joints"], cfg["coords"]
        self.center = np.asarray(cfg["center_joints"], dtype=np.intp)
        self.min_confidence = np.float32(cfg["min_confidence"])
        self.out_dim = self.people * cfg["dim"]
        joint, relation = cfg["joint_channels"], cfg["relation_channels"]
        self.joint_layers = []  # (W^T [in,out], b)
        for i in range(len(joint)):
            w = weights[f"pose.joint_convs.{2 * i}.weight"]  # [out,in,1]
            self.joint_layers.append((np.ascontiguousarray(w[:, :, 0].T), weights[f"pose.joint_convs.{2 * i}.bias"]))
        self.relation_layers = []  # (W [3*in, out], row k*in + j for tap k of input channel j, b)
        for i in range(len(relation)):
            w = weights[f"pose.relation_convs.{2 * i}.weight"]  # [out,in,3]
            self.relation_layers.append((np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0])),
                                         weights[f"pose.relation_convs.{2 * i}.bias"]))
        w = weights["pose.project.0.weight"]  # [dim, relation[-1]*joint[-1] (+coords)]
        length, channels = joint[-1], relation[-1]
        features = w[:, : channels * length].reshape(-1, channels, length).transpose(0, 2, 1).reshape(w.shape[0], -1)
        self.project = (np.ascontiguousarray(np.concatenate((features, w[:, channels * length:]), axis=1).T),
                        weights["pose.project.0.bias"])

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        n, P, J = keypoints.shape[0], self.people, self.joints
        joints, centre, scale, count = self.normalize(keypoints)
        h = joints.reshape(n * P * J, -1)
        for w, b in self.joint_layers:
            h = _relu(np.matmul(h, w) + b)  # [N*P*J, c]: per-joint features
        x = h.reshape(n * P, J, -1).transpose(0, 2, 1)  # [NP, L, J]: joints are the channels now
        for w, b in self.relation_layers:
            L = x.shape[1]
            columns = np.zeros((n * P, L, 3, x.shape[2]), np.float32)  # tap k of row l reads x[l+k-1], 0 outside
            columns[:, 1:, 0] = x[:, :-1]
            columns[:, :, 1] = x
            columns[:, :-1, 2] = x[:, 1:]
            x = _relu(np.matmul(columns.reshape(n * P * L, -1), w) + b).reshape(n * P, L, -1)  # [NP, L, out]
        h = x.reshape(n, P, -1)  # [N,P,L*out], length-major as self.project reads it
        if P > 1:
            h = np.concatenate((h, self._placement(centre, scale, count)), axis=-1)
        h = _relu(np.matmul(h, self.project[0]) + self.project[1])  # [N,P,dim]
        if P > 1:
            key = np.where(count[..., 0] > 0, centre[..., 0], np.float32(np.inf))  # [N,P]: left to right, absent last
            h = h[np.arange(n)[:, None], np.argsort(key, axis=1, kind="stable")]
        return h.reshape(n, self.out_dim)

    def normalize(self, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As ``PoseEncoder.normalize``: kp [N,P,J,C+1] -> (joints [N,P,J,C+1], centre [N,P,C],
        scale [N,P,1], visible count [N,P,1])."""
        C = self.coords
        visible = kp[..., C:] > self.min_confidence  # [N,P,J,1]
        joints = np.empty_like(kp)
        weight = joints[..., C:]  # the visibility channel of the result is the 0/1 weight
        np.copyto(weight, visible)
        xy = np.where(visible, kp[..., :C], np.float32(0.0))  # [N,P,J,C]: a missing joint may be NaN
        count = weight.sum(2)  # [N,P,1]
        count1 = np.maximum(count, np.float32(1.0))
        centre = xy.sum(2) / count1  # [N,P,C]
        if self.center.size:
            anchor_count = weight[:, :, self.center].sum(2)  # [N,P,1]
            anchor = xy[:, :, self.center].sum(2) / np.maximum(anchor_count, np.float32(1.0))
            centre = np.where(anchor_count > 0, anchor, centre)
        rel = np.where(visible, xy - centre[:, :, None], np.float32(0.0))  # [N,P,J,C]
        scale = np.sqrt(np.maximum(np.square(rel).sum((2, 3))[..., None] / count1, np.float32(1.0)))  # [N,P,1]
        np.divide(rel, scale[:, :, None], out=joints[..., :C])
        return joints, centre, scale, count

    @staticmethod
    def _placement(centre: np.ndarray, scale: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Each person's centre relative to the group, in mean body scales; 0 for absent people."""
        present = (count > 0).astype(np.float32)  # [N,P,1]
        n = np.maximum(present.sum(1, keepdims=True), np.float32(1.0))  # [N,1,1]
        group_centre = (centre * present).sum(1, keepdims=True) / n  # [N,1,C]
        group_scale = np.maximum((scale * present).sum(1, keepdims=True) / n, np.float32(1.0))  # [N,1,1]
        return (centre - group_centre) / group_scale * present  # [N,P,C]


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.float32(0.0), out=x)


# -- frame encoder on ONNX Runtime -------------------------------------------------------------
_SHAPE_OPS = ("Shape", "Size")  # their outputs depend on an input's shape only


def find_frame_features(graph, encoder_inputs: set[str], native_initializers: set[str]) -> list[str]:
    """Names of the tensors that carry the frame features from the encoder to the rest of the step.

    A tensor belongs to the encoder if it depends on an encoder input (``frames``, an encoder
    state) and on nothing the native code computes (keypoints, head states, head/pose weights);
    the features are the encoder tensors read by a node outside the encoder (the head's first
    GEMM, or the concat with the pose features), in the order that node reads them. Shapes are
    not data: what is computed from ``Shape(frames)`` belongs to neither side.
    """
    graph_inputs = {i.name for i in graph.input}
    native = (graph_inputs - encoder_inputs) | native_initializers  # tensors the native code owns
    encoder, readers = set(encoder_inputs), {}  # readers: encoder tensor -> the native nodes that read it
    for node in graph.node:  # ONNX nodes are topologically sorted
        names = [i for i in node.input if i]
        if node.op_type in _SHAPE_OPS:
            continue  # a shape, not data: e.g. the batch size of frames that the pose part expands to
        if any(i in native for i in names):
            native.update(node.output)
            for i in names:
                if i in encoder:
                    readers.setdefault(i, {})[id(node)] = node
        elif any(i in encoder for i in names):
            encoder.update(node.output)
    features = list(readers)
    nodes = {key: node for by_id in readers.values() for key, node in by_id.items()}
    if len(nodes) != 1:
        raise ModelFormatError(
            f"cannot find the frame encoder's output in the graph: the encoder part is read by "
            f"{len(nodes)} nodes ({', '.join(features) or 'none'}); expected one (the head or a concat)."
        )
    reader = next(iter(nodes.values()))
    return sorted(features, key=list(reader.input).index)


def _subgraph(proto, inputs: list[str], outputs: list[str]):
    """The nodes of ``proto`` that compute ``outputs`` from ``inputs`` (and initializers) alone."""
    from onnx import TensorProto, helper

    graph = proto.graph
    producer = {out: node for node in graph.node for out in node.output}
    keep, todo = set(), list(outputs)
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if name in inputs or node is None or id(node) in keep:
            continue
        keep.add(id(node))
        todo.extend(i for i in node.input if i)
    nodes = [node for node in graph.node if id(node) in keep]
    used = {i for node in nodes for i in node.input if i}
    initializers = {init.name for init in graph.initializer}
    undefined = sorted(used - initializers - set(inputs) - {out for node in nodes for out in node.output})
    if undefined:
        raise ModelFormatError(f"the frame encoder's part of the graph also reads {undefined}, not only {inputs}.")
    value_infos = {v.name: v for v in (*graph.input, *graph.output)}
    sub = helper.make_graph(
        nodes, "edgeact_frame_encoder",
        [value_infos[name] for name in inputs],
        [value_infos.get(name) or helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [init for init in graph.initializer if init.name in used],
    )
    return helper.make_model(sub, opset_imports=proto.opset_import, ir_version=proto.ir_version)


class OrtFrameEncoder:
    """The frame-encoder part of the exported step graph on ONNX Runtime: frames and encoder
    states in, frame features and next encoder states out."""

    def __init__(self, proto, spec: ModelSpec, native_initializers: set[str], threads: int | None, path: Path, *,
                 width: int):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError(
                f"backend 'native' runs the frame encoder of {path.name} with onnxruntime, which is not installed here."
            ) from None
        order = [s.name for s in spec.state]
        self.state_index = [i for i, name in enumerate(order) if not name.startswith("head.")]
        self.inputs = [FRAMES, *(STATE_IN + order[i] for i in self.state_index)]
        try:
            self.features = find_frame_features(proto.graph, set(self.inputs), native_initializers)
            sub = _subgraph(proto, self.inputs, [*self.features, *(STATE_OUT + order[i] for i in self.state_index)])
        except (ModelFormatError, KeyError, ValueError) as exc:
            raise ModelFormatError(f"{path}: {exc}") from exc
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(sub.SerializeToString(), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFormatError(
                f"{path}: ONNX Runtime cannot load the frame encoder's part of the graph ({type(exc).__name__}: {exc})."
            ) from exc
        self.outputs = [o.name for o in self.session.get_outputs()]
        probe = self.step(np.zeros((1, 3, *spec.frames.size), np.float32),
                          [np.zeros((1, *s.shape), s.dtype) for s in spec.state],
                          [None] * len(order))
        if probe.shape != (1, width):
            raise ModelFormatError(
                f"{path}: the frame features found in the graph ({', '.join(self.features)}) have shape "
                f"{probe.shape[1:]} per frame, but the head reads {width} values."
            )

    def step(self, frames: np.ndarray, state: State, next_state: State) -> np.ndarray:
        feed = {FRAMES: frames}
        feed.update((name, state[i]) for name, i in zip(self.inputs[1:], self.state_index))
        results = self.session.run(self.outputs, feed)
        features, states = results[: len(self.features)], results[len(self.features):]
        for i, array in zip(self.state_index, states):
            next_state[i] = array  # ORT's outputs become the next inputs
        return _concat(features)
