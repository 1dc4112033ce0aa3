"""PyTorch checkpoint -> ONNX step graph, with the model's spec in its metadata, verified.

The exported graph is the streaming step: inputs are the preprocessed frame and/or keypoints
plus every state tensor (``state_in.<name>``); outputs are ``logits``, ``probs``, the declared
feature boundaries (``features.frames``, ``features.keypoints``: what the encoders hand to the
head) and every next state (``state_out.<name>``). The graph is stateless, so any runtime can
carry the state. The spec's ``arch["kernel_plan"]`` declares the recurrent head (cells, state
names, weight initializers) for runtimes that run it on their own kernels.
After writing, the graph is run with ONNX Runtime for a stream of steps on fresh random
inputs against PyTorch float32 and float64 (the tolerance rule is in ``edgeact.parity``); if
they disagree the export fails and nothing is left at ``out``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from edgeact.checkpoint import checkpoint_spec, load_checkpoint
from edgeact.errors import ExportError, InputError
from edgeact.models import StreamingModel
from edgeact.parity import FACTOR, ParityCheck, float64_twin
from edgeact.spec import FRAMES, LOGITS, METADATA_KEY, PROBS, STATE_IN, STATE_OUT, ModelSpec, save_graph

LEGACY_OPSET = 17  # the TorchScript exporter; older Jetson TensorRT versions need <= 17
OPSETS = (17, 18, 19, 20, 21)


@dataclass
class ExportReport:
    path: Path
    opset: int
    exporter: str
    batch: str | int
    simplified: bool
    max_abs_error: float  # |ONNX Runtime - PyTorch float32|, logits and states, over the verification stream
    verify_steps: int
    verification: str  # ParityCheck.summary(): the worst tensor against float64 and its allowance
    timings_s: dict[str, float] = field(default_factory=dict)


def example_inputs(model: StreamingModel, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Plausible random step inputs for ``model``: normalised pixels, keypoints in a frame."""
    tensors = []
    for spec in model.input_spec:
        if spec.name == FRAMES:
            tensors.append(torch.randn(batch, *spec.shape, generator=generator))
        else:
            kp = torch.rand(batch, *spec.shape, generator=generator) * 100.0
            kp[..., -1] = (torch.rand(batch, *spec.shape[:-1], generator=generator) > 0.2).float()
            tensors.append(kp)
    return tensors


def step_names(model: StreamingModel) -> tuple[list[str], list[str]]:
    """The step graph's input and output names, in the order of ``model.as_step_module()``;
    the same as ``ModelSpec.input_names``/``output_names`` of the model's spec."""
    states = [s.name for s in model.state_spec]
    inputs = [s.name for s in model.input_spec] + [STATE_IN + n for n in states]
    outputs = [LOGITS, PROBS] + [f.name for f in model.features_spec] + [STATE_OUT + n for n in states]
    return inputs, outputs


def trace_step(model: StreamingModel, path: Path, *, opset: int = LEGACY_OPSET, batch: int = 2, dynamic: bool = True,
               seed: int = 1234) -> None:
    """Write ``model``'s step graph (``as_step_module``) to ``path``: the one export path, used by
    :func:`export_onnx` and by the tests. ``batch`` is the example batch (2: a traced batch of 1
    can get specialised); ``dynamic`` makes the batch axis dynamic."""
    args = tuple(example_inputs(model, batch, torch.Generator().manual_seed(seed))) + tuple(
        model.init_state(batch).values())
    names_in, names_out = step_names(model)
    step = model.as_step_module().eval()
    with torch.no_grad(), warnings.catch_warnings():
        if opset == LEGACY_OPSET:
            axes = {n: {0: "batch"} for n in names_in + names_out} if dynamic else None
            # The legacy exporter is chosen on purpose (opset 17 for older Jetson TensorRT);
            # its deprecation notice is not news to the user who asked for opset 17.
            warnings.filterwarnings("ignore", message="You are using the legacy TorchScript", category=DeprecationWarning)
            torch.onnx.export(step, args, str(path), input_names=names_in, output_names=names_out,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        else:
            # torch's own deprecation notices from inside the exporter; nothing a user can act on
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # forward(*tensors): the one varargs parameter gets a tuple of per-tensor specs
            batch_dim = torch.export.Dim("batch", min=1, max=4096)
            shapes = (tuple({0: batch_dim} for _ in args),) if dynamic else None
            program = torch.onnx.export(step, args, input_names=names_in, output_names=names_out,
                                        dynamic_shapes=shapes, opset_version=opset, dynamo=True,
                                        verbose=False)
            program.save(str(path))


def export_onnx(
    model_path: str | Path,
    out: str | Path,
    *,
    opset: int = LEGACY_OPSET,
    batch: str | int = "dynamic",
    simplify: bool = False,
    verify_steps: int = 16,
    tolerance_factor: float = FACTOR,
    seed: int = 1234,
    frame_input: tuple[int, int] | None = None,
) -> ExportReport:
    """Export a streaming checkpoint's step graph to ONNX and verify it against PyTorch.

    The verification passes when ONNX Runtime's error against the float64 model stays within
    ``tolerance_factor`` times PyTorch float32's own error (``edgeact.parity``).

    ``frame_input=(height, width)``: the graph takes the raw BGR uint8 camera frame of that size
    (``frames`` [N, height, width, 3]) and preprocesses it inside (edgeact.preprocess_graph); the
    spec records it as ``frames.raw_size``. The step is verified as above on preprocessed
    frames, then the preprocessing ops against edgeact.preprocess.preprocess_frame on fresh frames.
    """
    if opset not in OPSETS:
        raise InputError(f"opset must be one of {list(OPSETS)}, got {opset}.")
    if batch != "dynamic" and not (isinstance(batch, int) and batch >= 1):
        raise InputError(f"batch must be 'dynamic' or a positive int, got {batch!r}.")
    if verify_steps < 1:
        raise InputError(f"verify_steps must be >= 1, got {verify_steps}.")
    if not tolerance_factor >= 0:
        raise InputError(f"tolerance_factor must be >= 0, got {tolerance_factor}.")
    if frame_input is not None and not (isinstance(frame_input, tuple) and len(frame_input) == 2 and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in frame_input)):
        raise InputError(f"frame_input must be None or (height, width) of positive ints, got {frame_input!r}.")
    out = Path(out)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    model, payload = load_checkpoint(model_path)
    spec = checkpoint_spec(model, payload, model_path)
    example_batch = 2 if batch == "dynamic" else batch  # 2: a traced batch of 1 can get specialised
    if frame_input is not None:
        from edgeact.preprocess_graph import frame_plan

        if spec.frames is None:
            raise InputError(f"frame_input needs a model with a frames input; {model_path} takes keypoints only.")
        frame_plan(frame_input, spec.frames)  # refuses sizes the graph cannot preprocess, before exporting
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    tmp = out.with_name(out.name + ".tmp")
    exporter = "torchscript" if opset == LEGACY_OPSET else "dynamo"
    try:
        trace_step(model, tmp, opset=opset, batch=example_batch, dynamic=batch == "dynamic", seed=seed)
        spec = _finish_model(tmp, spec, simplify, model)
        timings["export"] = time.perf_counter() - t
        t = time.perf_counter()
        check = verify_onnx(model, spec, tmp, steps=verify_steps, batch=example_batch, seed=seed + 1,
                            factor=tolerance_factor)
        timings["verify"] = time.perf_counter() - t
        if not check.ok:
            raise ExportError(f"the exported graph disagrees with PyTorch over {verify_steps} steps: "
                              f"{check.summary()}; nothing was written to {out}.")
        if frame_input is not None:
            from edgeact.preprocess_graph import take_raw_frames

            t = time.perf_counter()
            spec = take_raw_frames(tmp, spec, frame_input, seed=seed + 2)  # verifies; ExportError names the excess
            timings["frame_input"] = time.perf_counter() - t
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(out, opset, exporter, batch, simplify, check.max_difference, verify_steps, check.summary(),
                        timings)


def _finish_model(path: Path, spec: ModelSpec, simplify: bool, model: StreamingModel) -> ModelSpec:
    """Simplify if asked, declare the head's kernel plan with the graph's weight names, write
    the spec into metadata_props."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    initializers = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    plan = model.kernel_plan()
    if plan is not None:
        plan = _resolve_plan(plan, locate_weights(model.state_dict(), initializers))
    spec = replace(spec, arch={**spec.arch, "kernel_plan": plan})
    del proto.metadata_props[:]
    for key, value in {METADATA_KEY: spec.to_json(), "edgeact_version": spec.edgeact_version,
                       "classes": ",".join(spec.classes)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "edgeact"
    save_graph(proto, path)
    return spec


def _resolve_plan(plan, located: dict[str, list]):
    """The head's kernel plan with every PyTorch parameter name (a ``{"param": name}`` leaf)
    replaced by where the graph keeps it: ``{"initializer": name, "transposed": bool}``."""
    if isinstance(plan, dict) and set(plan) == {"param"}:
        name = plan["param"]
        if name not in located:
            raise ExportError(f"the exported graph has no initializer holding {name!r} (the exporter fused or "
                              "folded it); its kernel plan cannot be declared.")
        initializer, transposed = located[name]
        return {"initializer": initializer, "transposed": transposed}
    if isinstance(plan, dict):
        return {key: _resolve_plan(value, located) for key, value in plan.items()}
    if isinstance(plan, list):
        return [_resolve_plan(value, located) for value in plan]
    return plan


def locate_weights(weights: dict[str, torch.Tensor], initializers: dict[str, np.ndarray]) -> dict[str, list]:
    """PyTorch parameter name -> [ONNX initializer name, transposed?] for every weight that the
    exporter kept as an initializer, found by value (exporters rename and pre-transpose them).

    The exporter resolves the head's kernel plan through this map, so runtimes that execute the
    head themselves (the native backend) read weights by the names the artifact declares.
    Weights the exporter fused (a BatchNorm folded into a convolution) are absent from it.
    """
    by_bytes: dict[tuple, tuple[str, bool]] = {}
    for name, array in initializers.items():
        if array.dtype != np.float32:
            continue
        by_bytes.setdefault((array.shape, array.tobytes()), (name, False))
        if array.ndim == 2:
            by_bytes.setdefault((array.T.shape, np.ascontiguousarray(array.T).tobytes()), (name, True))
    found = {}
    for name, tensor in weights.items():
        array = tensor.detach().cpu().contiguous().numpy()
        if array.dtype != np.float32 or array.size == 0:
            continue
        hit = by_bytes.get((array.shape, array.tobytes()))
        if hit is not None:
            found[name] = [hit[0], hit[1]]
    return found


def verify_onnx(model: StreamingModel, spec: ModelSpec, path: Path, *, steps: int, batch: int, seed: int,
                factor: float = FACTOR) -> ParityCheck:
    """Stream ONNX Runtime, PyTorch float32 and PyTorch float64 side by side, each carrying its
    own state, and compare logits, features and states at every step (``edgeact.parity``)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    exact_model = float64_twin(model)
    torch_states = list(model.init_state(batch).values())
    exact_states = [s.double() for s in torch_states]
    ort_states = [s.numpy() for s in torch_states]
    data_names = [s.name for s in spec.data_inputs]
    state_names = list(spec.input_names[len(data_names):])
    compared = [LOGITS] + list(spec.output_names[2:])  # probs follow from logits
    n_features = len(spec.features)
    check = ParityCheck(factor)
    for t in range(steps):
        inputs = example_inputs(model, batch, generator)
        with torch.no_grad():
            logits, *torch_rest = model.step_flat(*inputs, *torch_states)
            exact_logits, *exact_rest = exact_model.step_flat(*(x.double() for x in inputs), *exact_states)
        feed = {n: x.numpy() for n, x in zip(data_names, inputs)}
        feed.update(zip(state_names, ort_states))
        ort_logits, *ort_rest = session.run(compared, feed)
        for name, exact, ours, theirs in zip(compared, [exact_logits, *exact_rest], [logits, *torch_rest],
                                             [ort_logits, *ort_rest]):
            check.update(t, name, exact.numpy(), ours.numpy(), theirs)
        torch_states, exact_states, ort_states = torch_rest[n_features:], exact_rest[n_features:], ort_rest[n_features:]
    return check
