"""Native backend: an exported ``.onnx`` step run on edgeact's own kernels.

It runs exactly what the artifact declares, nothing it has to guess:

* A pose-only model (one data input, ``keypoints``; a head whose plan is one stack over
  ``features.keypoints``) runs as one compiled call per step, :class:`edgeact.kernels.PoseStep`:
  the pose encoder of ``spec.arch["config"]["pose"]`` with the graph's weights (found by their
  PyTorch names; the projection through the node that adds its bias), the recurrent stack and
  the classifier of the kernel plan.
* Otherwise the encoders (TSM frame encoder, RGB difference, and a pose encoder whose weights
  the graph does not show) run on ONNX Runtime: the part of the step graph from the data inputs
  and the encoder states to the declared feature boundaries (graph outputs ``features.frames``,
  ``features.keypoints``) and the encoders' next states, cut out with ``onnx.utils.Extractor``;
  the head runs as its declared kernel plan (``spec.arch["kernel_plan"]``, written by the
  exporter from the model): stacks of LSTM/GRU cells on :mod:`edgeact.kernels`, one kernel per
  layer, reading the feature boundaries or an earlier stack's output, then a linear classifier.
  Weights are read from the graph's initializers under the names the plan gives.

``weights_dtype`` ("float32", "bfloat16" or "int8") is how the recurrent kernels store their
weights (:class:`edgeact.kernels.LSTM`); reduced precision is the caller's choice, checked by
``benchmarks/int8_gate.py`` (top-1 agreement with float32 per observation ratio).

Each kernel reads its state rows from ``state_in`` and writes the next ones straight into
``state_out`` (the state pool's other half); the encoder's next states come out of ONNX
Runtime the same way (IOBinding). A step allocates no state.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np

from edgeact import kernels
from edgeact.backends.base import Loader, Runner
from edgeact.backends.onnxruntime import BoundSession, make_session
from edgeact.errors import BackendError, ModelFormatError
from edgeact.spec import PRECISION_KEY, STATE_IN, STATE_OUT, ModelSpec, read_graph, spec_from_metadata

STACK = "stack:"  # a plan input naming an earlier stack's output: "stack:0"


class LoadedStep(NamedTuple):
    spec: ModelSpec
    encoder: Any  # an ONNX Runtime session of the encoder part, or None
    encoder_states: tuple[int, ...]  # positions in spec.state of the encoder's states
    stacks: tuple["Stack", ...]
    classifier: tuple[np.ndarray, np.ndarray, str]  # W^T [in,out], bias, what it reads
    pose: "FusedPose | None" = None  # the whole step in one call; then encoder and stacks are unused


class FusedPose(NamedTuple):
    step: kernels.PoseStep
    state: tuple[int, ...]  # positions in spec.state, in step.state_names order


class Layer(NamedTuple):
    kernel: Any  # kernels.LSTM / kernels.GRU of one layer
    state: tuple[int, ...]  # positions in spec.state: (h, c) or (h,)


class Stack(NamedTuple):
    inputs: tuple[str, ...]  # feature boundaries and/or "stack:<i>", concatenated in this order
    layers: tuple[Layer, ...]


WEIGHTS_DTYPES = ("float32", "bfloat16", "int8")


class NativeLoader(Loader):
    backend = "native"
    options = ("weights_dtype",)

    def __init__(self, path, **options) -> None:
        super().__init__(path, **options)
        dtype = self.kwargs.get("weights_dtype", "float32")
        if not isinstance(dtype, str) or dtype not in WEIGHTS_DTYPES:
            raise BackendError(f"weights_dtype must be one of {', '.join(map(repr, WEIGHTS_DTYPES))} "
                               f"(backend 'native'), got {dtype!r}.")
        self.weights_dtype = dtype

    def __call__(self) -> LoadedStep:
        if self.device not in ("auto", "cpu"):
            raise BackendError(
                f"backend 'native' runs on the CPU: device must be 'auto' or 'cpu', got {self.device!r}."
            )
        proto = read_graph(self.path)
        metadata = {e.key: e.value for e in proto.metadata_props}
        spec = spec_from_metadata(metadata, self.path)
        precision = metadata.get(PRECISION_KEY, "fp32")
        if precision != "fp32":
            raise BackendError(f"backend 'native' runs float32 step graphs; {self.path.name} is a {precision} precision "
                               "graph. Run it with backend 'onnxruntime', or build a TensorRT engine from it.")
        plan = spec.arch.get("kernel_plan")
        if not plan:
            config = spec.arch.get("config", {})
            head = config.get("head", {}).get("name") if isinstance(config, dict) else None
            raise BackendError(
                f"backend 'native' cannot run {self.path.name}: it declares no kernel plan for its head "
                f"(architecture {spec.arch.get('architecture', '(unknown)')!r}, head {head!r}). Native runs the "
                "lstm, gru and two_stage heads of models exported by edgeact >= 0.1 with `edgeact export`; run "
                "this one with backend 'onnxruntime' (or its checkpoint with 'torch')."
            )
        weights = _Initializers(proto, self.path)
        threads = self.threads or 1
        positions = {s.name: i for i, s in enumerate(spec.state)}
        kernel_options = {"threads": threads, "weights_dtype": self.weights_dtype}
        pose = _fused_pose(proto, spec, plan, weights, positions, kernel_options, self.path)
        if pose is not None:
            return LoadedStep(spec, None, (), (), (np.empty((0, 0), np.float32), np.empty(0, np.float32), ""), pose)
        try:
            stacks = tuple(_stack(stack, weights, positions, kernel_options) for stack in plan["stacks"])
            classifier = plan["classifier"]
            w, b = weights.get(classifier["weight"]), weights.get(classifier["bias"])
            linear = (np.ascontiguousarray(w.T), b, classifier["input"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{self.path}: malformed kernel plan ({type(exc).__name__}: {exc}).") from exc
        head_states = {i for stack in stacks for layer in stack.layers for i in layer.state}
        encoder_states = tuple(i for i in range(len(spec.state)) if i not in head_states)
        encoder = None
        if spec.features:
            encoder = _encoder_session(proto, spec, encoder_states, self.threads, self.path)
        loaded = LoadedStep(spec, encoder, encoder_states, stacks, linear)
        _check_widths(loaded, self.path)
        return loaded


class _Initializers:
    """The graph's initializers by the names a kernel plan declares."""

    def __init__(self, proto, path):
        self.proto, self.path = proto, path
        self._by_name = {init.name: init for init in proto.graph.initializer}

    def get(self, where: dict) -> np.ndarray:
        from onnx import numpy_helper

        name = where["initializer"]
        if name not in self._by_name:
            raise ModelFormatError(f"{self.path}: its kernel plan names the weight {name!r}, which is not among the "
                                   "graph's initializers; re-export the model.")
        array = numpy_helper.to_array(self._by_name[name])
        return np.ascontiguousarray(array.T if where["transposed"] else array, dtype=np.float32)


def _stack(plan: dict, weights: _Initializers, positions: dict[str, int], kernel_options: dict) -> Stack:
    cell = plan["cell"]
    if cell not in ("lstm", "gru"):
        raise ValueError(f"unknown cell {cell!r}")
    make = kernels.LSTM if cell == "lstm" else kernels.GRU
    layers = []
    for layer in plan["layers"]:
        arrays = {k: [weights.get(layer[k])] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if k in layer}
        try:
            state = tuple(positions[name] for name in layer["state"])
        except KeyError as exc:
            raise ValueError(f"state {exc.args[0]!r} of the plan is not among the spec's states") from None
        layers.append(Layer(make(arrays["weight_ih"], arrays["weight_hh"], arrays.get("bias_ih"),
                                 arrays.get("bias_hh"), **kernel_options), state))
    return Stack(tuple(plan["inputs"]), tuple(layers))


def _fused_pose(proto, spec: ModelSpec, plan: dict, weights: _Initializers, positions: dict[str, int],
                kernel_options: dict, path) -> FusedPose | None:
    """The whole step as one :class:`kernels.PoseStep`, or None when the model is not pose-only,
    its plan is not one stack over ``features.keypoints``, or the graph hides an encoder weight."""
    config = spec.arch.get("config") or {}
    stacks = plan.get("stacks") or []
    if ([s.name for s in spec.data_inputs] != ["keypoints"] or not isinstance(config.get("pose"), dict)
            or len(stacks) != 1 or stacks[0].get("inputs") != ["features.keypoints"]
            or plan.get("classifier", {}).get("input") != "stack:0" or stacks[0].get("cell") not in ("lstm", "gru")):
        return None
    encoder = _pose_encoder_weights(proto)
    if encoder is None:
        return None
    stack = stacks[0]
    try:
        layers = {k: [weights.get(layer[k]) for layer in stack["layers"]]
                  for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if k in stack["layers"][0]}
        make = kernels.LSTM if stack["cell"] == "lstm" else kernels.GRU
        head = make(layers["weight_ih"], layers["weight_hh"], layers.get("bias_ih"), layers.get("bias_hh"),
                    **kernel_options)
        classifier = plan["classifier"]
        step = kernels.PoseStep(config["pose"], encoder, head, weights.get(classifier["weight"]),
                                weights.get(classifier["bias"]))
        names = {f"h{k}": layer["state"][0] for k, layer in enumerate(stack["layers"])}
        names.update({f"c{k}": layer["state"][1] for k, layer in enumerate(stack["layers"]) if len(layer["state"]) > 1})
        order = tuple(positions[names.get(name, "pose." + name)] for name in step.state_names)
    except (KeyError, TypeError, IndexError, ValueError) as exc:  # InputError is a ValueError
        raise ModelFormatError(f"{path}: its pose step cannot run natively ({type(exc).__name__}: {exc}).") from exc
    shapes = [spec.state[i].shape for i in order]
    if sorted(order) != list(range(len(spec.state))) or shapes != [tuple(s) for s in step.state_shapes]:
        raise ModelFormatError(f"{path}: its state {[s.name for s in spec.state]} is not the pose step's "
                               f"{step.state_names} with shapes {step.state_shapes}.")
    return FusedPose(step, order)


def _pose_encoder_weights(proto) -> dict[str, np.ndarray] | None:
    """The pose encoder's weights under ``PoseEncoder.state_dict()`` names: the convolutions' and
    the projection's bias by their PyTorch names (``<prefix>pose.joint_convs.0.weight``), the
    projection's weight through the node that adds that bias (exporters rename and transpose
    it). None when any of them is not there."""
    from onnx import numpy_helper

    by_name = {init.name: init for init in proto.graph.initializer}
    bias = next((name for name in by_name if name.endswith("pose.project.0.bias")), None)
    if bias is None:
        return None
    prefix = bias[: -len("project.0.bias")]
    found = {name[len(prefix):]: numpy_helper.to_array(init) for name, init in by_name.items()
             if name.startswith(prefix) and name[len(prefix):].split(".")[0] in ("joint_convs", "relation_convs",
                                                                                  "project")}
    if "project.0.weight" not in found:
        producers = {out: node for node in proto.graph.node for out in node.output}
        weight = None
        for node in proto.graph.node:
            if node.op_type == "Gemm" and len(node.input) == 3 and node.input[2] == bias and node.input[1] in by_name:
                trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
                matrix = numpy_helper.to_array(by_name[node.input[1]])
                weight = matrix if trans_b else matrix.T
            elif node.op_type == "Add" and bias in node.input:
                other = producers.get(node.input[1 - list(node.input).index(bias)])
                if other is not None and other.op_type == "MatMul" and other.input[1] in by_name:
                    weight = numpy_helper.to_array(by_name[other.input[1]]).T
        if weight is None:
            return None
        found["project.0.weight"] = weight
    return found


def _encoder_session(proto, spec: ModelSpec, encoder_states: tuple[int, ...], threads, path):
    """The encoders' part of the step graph on ONNX Runtime: data inputs and encoder states in,
    the declared feature boundaries and the encoders' next states out."""
    from onnx.utils import Extractor

    inputs = [s.name for s in spec.data_inputs] + [STATE_IN + spec.state[i].name for i in encoder_states]
    outputs = [f.name for f in spec.features] + [STATE_OUT + spec.state[i].name for i in encoder_states]
    try:
        part = Extractor(proto).extract_model(inputs, outputs)
    except Exception as exc:  # onnx raises plain exceptions for names it cannot find
        raise ModelFormatError(f"{path}: cannot cut the encoders out of the graph ({type(exc).__name__}: {exc}).") \
            from exc
    return make_session(part.SerializeToString(), device="cpu", threads=threads, source=f"{path} (its encoders)")


def _check_widths(loaded: LoadedStep, path) -> None:
    widths = {f.name: int(np.prod(f.shape)) for f in loaded.spec.features}
    for k, stack in enumerate(loaded.stacks):
        try:
            width = sum(widths[name] for name in stack.inputs)
        except KeyError as exc:
            raise ModelFormatError(f"{path}: its kernel plan's stack {k} reads {exc.args[0]!r}, which the graph does "
                                   f"not declare (it declares {sorted(widths)}).") from None
        kernel = stack.layers[0].kernel
        if width != kernel.input_size:
            raise ModelFormatError(f"{path}: stack {k} reads {width} values ({' + '.join(stack.inputs)}), but its "
                                   f"first layer takes {kernel.input_size}.")
        widths[f"{STACK}{k}"] = stack.layers[-1].kernel.hidden_size
    if widths.get(loaded.classifier[2]) != loaded.classifier[0].shape[0]:
        raise ModelFormatError(f"{path}: the classifier reads {loaded.classifier[2]!r}, which does not have the "
                               f"{loaded.classifier[0].shape[0]} values its weights take.")


class NativeRunner(Runner):
    name = "native"

    def _open(self, loaded: LoadedStep) -> None:
        spec = self.spec
        self._loaded = loaded
        self._local = threading.local()
        # The pose step's states in spec order: None when they already are (no per-step reordering).
        order = loaded.pose.state if loaded.pose is not None else None
        self._pose_order = None if order is None or order == tuple(range(len(order))) else order
        self._encoder = None
        if loaded.encoder is not None:
            enc_inputs = [s.name for s in spec.data_inputs] + [STATE_IN + spec.state[i].name
                                                               for i in loaded.encoder_states]
            enc_outputs = [f.name for f in spec.features] + [STATE_OUT + spec.state[i].name
                                                              for i in loaded.encoder_states]
            self._encoder = BoundSession(loaded.encoder, enc_inputs, enc_outputs)

    def _features(self, batch: int) -> dict[str, np.ndarray]:
        """This thread's feature buffers for ``batch`` streams (the encoder writes them)."""
        buffers = getattr(self._local, "features", None)
        if buffers is None or len(next(iter(buffers.values()))) < batch:
            size = max(batch, 4)
            buffers = self._local.features = {f.name: np.empty((size, *f.shape), f.dtype) for f in self.spec.features}
            self._encoder.forget()  # bound to the old buffers
        return {name: array[:batch] for name, array in buffers.items()}

    def _run(self, inputs: dict[str, np.ndarray], state_in: Sequence[np.ndarray], state_out: Sequence[np.ndarray],
             key: Hashable | None = None) -> np.ndarray:
        loaded = self._loaded
        if loaded.pose is not None:
            order = self._pose_order
            if order is not None:
                state_in, state_out = [state_in[i] for i in order], [state_out[i] for i in order]
            return loaded.pose.step.step(inputs["keypoints"], state_in, state_out)
        batch = len(next(iter(inputs.values())))
        values: dict[str, np.ndarray] = {}
        if self._encoder is not None:
            values = self._features(batch)
            feeds = [inputs[s.name] for s in self.spec.data_inputs] + [state_in[i] for i in loaded.encoder_states]
            outputs = list(values.values()) + [state_out[i] for i in loaded.encoder_states]
            self._encoder.run(feeds, outputs, key)
        for k, stack in enumerate(loaded.stacks):
            parts = [values[name].reshape(batch, -1) for name in stack.inputs]
            x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
            for layer in stack.layers:
                current = [state_in[i][None] for i in layer.state]  # (1, B, H): one layer's kernel
                following = [state_out[i][None] for i in layer.state]
                layer.kernel.step(x, *current, *following)  # reads state_in, writes state_out
                x = state_out[layer.state[0]]
            values[f"{STACK}{k}"] = x
        weight, bias, reads = loaded.classifier
        return values[reads] @ weight + bias  # [B,K], a new array: predictions keep it

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        loaded = getattr(self, "_loaded", None)
        if loaded is not None:
            kernel = loaded.pose.step.head if loaded.pose is not None else loaded.stacks[0].layers[0].kernel
            encoders = "native" if loaded.pose is not None else "onnxruntime" if loaded.encoder is not None else None
            out.update(threads=kernel.threads, kernel_isa=kernel.isa, weights_dtype=kernel.weights_dtype,
                       encoders=encoders,
                       features=[f.name for f in self.spec.features])
        return out

    def close(self) -> None:
        self._loaded = self._encoder = None  # the kernels' worker threads go with their cells
        super().close()
