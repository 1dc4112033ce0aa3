"""PyTorch checkpoint -> ONNX step graph, with the model's spec in its metadata, verified.

The exported graph is the streaming step: inputs are the preprocessed frame and/or keypoints
plus every state tensor (``state_in.<name>``); outputs are ``logits``, ``probs`` and every next
state (``state_out.<name>``). The graph is stateless, so any runtime can carry the state.
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
from edgeact.spec import METADATA_KEY, ModelSpec

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


class _ExportedStep(torch.nn.Module):
    """step_flat plus softmax probabilities, in the output order the spec names."""

    def __init__(self, model: StreamingModel):
        super().__init__()
        self.model = model
        self.training = False

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, *states = self.model.step_flat(*tensors)
        return (logits, torch.softmax(logits, dim=-1), *states)


def _example_inputs(spec: ModelSpec, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Plausible random step inputs: normalised pixels, keypoints in a frame, then zero states."""
    tensors = []
    for name in spec.input_names:
        if name == "frames":
            tensors.append(torch.randn(batch, *spec.input_shape(name), generator=generator))
        elif name == "keypoints":
            shape = spec.input_shape(name)
            kp = torch.rand(batch, *shape, generator=generator) * 100.0
            kp[..., -1] = (torch.rand(batch, *shape[:-1], generator=generator) > 0.2).float()
            tensors.append(kp)
    return tensors


def _zero_states(spec: ModelSpec, batch: int) -> list[torch.Tensor]:
    return [torch.zeros(batch, *s.shape, dtype=getattr(torch, s.dtype)) for s in spec.state]


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
) -> ExportReport:
    """Export a streaming checkpoint's step graph to ONNX and verify it against PyTorch.

    The verification passes when ONNX Runtime's error against the float64 model stays within
    ``tolerance_factor`` times PyTorch float32's own error (``edgeact.parity``).
    """
    if opset not in OPSETS:
        raise InputError(f"opset must be one of {list(OPSETS)}, got {opset}.")
    if batch != "dynamic" and not (isinstance(batch, int) and batch >= 1):
        raise InputError(f"batch must be 'dynamic' or a positive int, got {batch!r}.")
    if verify_steps < 1:
        raise InputError(f"verify_steps must be >= 1, got {verify_steps}.")
    if not tolerance_factor >= 0:
        raise InputError(f"tolerance_factor must be >= 0, got {tolerance_factor}.")
    out = Path(out)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    model, payload = load_checkpoint(model_path)
    spec = checkpoint_spec(model, payload, model_path)
    step = _ExportedStep(model).eval()
    example_batch = 2 if batch == "dynamic" else batch  # 2: a traced batch of 1 can get specialised
    args = tuple(_example_inputs(spec, example_batch, torch.Generator().manual_seed(seed)) + _zero_states(spec, example_batch))
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    tmp = out.with_name(out.name + ".tmp")
    exporter = "torchscript" if opset == LEGACY_OPSET else "dynamo"
    try:
        _run_exporter(step, args, tmp, spec, opset, dynamic=batch == "dynamic")
        spec = _finish_model(tmp, spec, simplify, model.state_dict())
        timings["export"] = time.perf_counter() - t
        t = time.perf_counter()
        check = verify_onnx(model, spec, tmp, steps=verify_steps, batch=example_batch, seed=seed + 1,
                            factor=tolerance_factor)
        timings["verify"] = time.perf_counter() - t
        if not check.ok:
            raise ExportError(f"the exported graph disagrees with PyTorch over {verify_steps} steps: "
                              f"{check.summary()}; nothing was written to {out}.")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(out, opset, exporter, batch, simplify, check.max_difference, verify_steps, check.summary(),
                        timings)


def _run_exporter(step, args, path: Path, spec: ModelSpec, opset: int, *, dynamic: bool) -> None:
    names_in, names_out = list(spec.input_names), list(spec.output_names)
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


def _finish_model(path: Path, spec: ModelSpec, simplify: bool, weights: dict[str, torch.Tensor]) -> ModelSpec:
    """Simplify if asked, record where each weight lives, write the spec into metadata_props."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    initializers = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    spec = replace(spec, arch={**spec.arch, "onnx_weights": locate_weights(weights, initializers)})
    del proto.metadata_props[:]
    for key, value in {METADATA_KEY: spec.to_json(), "edgeact_version": spec.edgeact_version,
                       "classes": ",".join(spec.classes)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "edgeact"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return spec


def locate_weights(weights: dict[str, torch.Tensor], initializers: dict[str, np.ndarray]) -> dict[str, list]:
    """PyTorch parameter name -> [ONNX initializer name, transposed?] for every weight that the
    exporter kept as an initializer, found by value (exporters rename and pre-transpose them).

    Runtimes that execute parts of the step themselves (the native backend) read the weights
    from the artifact through this map, never from torch. Weights the exporter fused (a BatchNorm
    folded into a convolution) are absent from it.
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
    own state, and compare logits and states at every step (``edgeact.parity``)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    data_names = [n for n in spec.input_names if not n.startswith("state_in.")]
    exact_model = float64_twin(model)
    torch_states = _zero_states(spec, batch)
    exact_states = [s.double() for s in torch_states]
    ort_states = [s.numpy() for s in torch_states]
    output_names = ["logits"] + [n for n in spec.output_names if n.startswith("state_out.")]
    check = ParityCheck(factor)
    for t in range(steps):
        inputs = _example_inputs(spec, batch, generator)
        with torch.no_grad():
            logits, *torch_states = model.step_flat(*inputs, *torch_states)
            exact_logits, *exact_states = exact_model.step_flat(*(x.double() for x in inputs), *exact_states)
        feed = {n: x.numpy() for n, x in zip(data_names, inputs)}
        feed.update({n: s for n, s in zip(spec.input_names[len(data_names):], ort_states)})
        ort_logits, *ort_states = session.run(output_names, feed)
        for name, exact, ours, theirs in zip(output_names, [exact_logits, *exact_states], [logits, *torch_states],
                                             [ort_logits, *ort_states]):
            check.update(t, name, exact.numpy(), ours.numpy(), theirs)
    return check
