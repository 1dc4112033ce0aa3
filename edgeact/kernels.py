"""Compiled streaming kernels behind a small numpy API (no torch needed).

- :func:`temporal_shift_online_` swaps the first ``fold`` channels of a frame batch with a cache,
  in place: TSM's causal shift, one frame at a time. :func:`temporal_shift_offline` is the
  same shift over a whole clip, for parity checks. :func:`zero_shift_cache` makes the cache.
- :class:`LSTM` and :class:`GRU` run one step of a stacked PyTorch ``nn.LSTM`` / ``nn.GRU``
  (or ``nn.LSTMCell`` / ``nn.GRUCell``) from its weights, packed once at construction.
- :class:`PoseStep` runs the whole step of a pose-only model in one call: the pose encoder
  (``edgeact.models.pose.PoseEncoder.step``), an :class:`LSTM`/:class:`GRU` stack, the classifier.

State arrays are the caller's, shaped as PyTorch's ``(num_layers, batch, hidden_size)``, and are
updated in place (or written to ``h_out``/``c_out``). ``edgeact._C`` validates every array at the
call (float32, C-contiguous, shape, no overlap) and never copies one, so an update cannot land in
a hidden temporary; errors are :class:`~edgeact.errors.InputError` /
:class:`~edgeact.errors.InputTypeError` naming the argument. The GIL is released while a kernel
runs. See docs/kernels.md.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgeact import _C
from edgeact.errors import InputError, InputTypeError

__all__ = [
    "GRU",
    "LSTM",
    "PoseStep",
    "build_info",
    "temporal_shift_offline",
    "temporal_shift_online_",
    "zero_shift_cache",
]

# The shift kernels validate their arguments themselves; the facade adds nothing to them.
temporal_shift_online_ = _C.temporal_shift_online_
temporal_shift_offline = _C.temporal_shift_offline


def build_info() -> dict[str, Any]:
    """Compiler, flags and the kernel ISA this CPU runs (``kernel_isa``), from ``edgeact._C``."""
    return _C.build_info()


def zero_shift_cache(x: np.ndarray, fold: int) -> np.ndarray:
    """The zero cache that :func:`temporal_shift_online_` expects for frames shaped like ``x``."""
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = x.shape if isinstance(x, np.ndarray) else type(x).__name__
        raise InputError(f"x must be a 4-D (batch, channels, height, width) numpy.ndarray, got {shape}.")
    fold = _index("fold", fold)
    if not 1 <= fold <= x.shape[1]:
        raise InputError(f"fold must be in [1, {x.shape[1]}] (the channel count of x {x.shape}), got {fold}.")
    return np.zeros((x.shape[0], fold, *x.shape[2:]), dtype=np.float32)


class _Recurrent:
    """Shared by LSTM and GRU: weight conversion, state_dict loading, properties."""

    _compiled: type  # _C.LSTM or _C.GRU

    def __init__(
        self,
        weight_ih: Sequence[Any],
        weight_hh: Sequence[Any],
        bias_ih: Sequence[Any] | None = None,
        bias_hh: Sequence[Any] | None = None,
        *,
        threads: int = 1,
        weights_dtype: str = "float32",
        isa: str = "auto",
    ) -> None:
        self._cell = self._compiled(
            _float32_layers("weight_ih", weight_ih),
            _float32_layers("weight_hh", weight_hh),
            None if bias_ih is None else _float32_layers("bias_ih", bias_ih),
            None if bias_hh is None else _float32_layers("bias_hh", bias_hh),
            threads=threads,
            weights_dtype=weights_dtype,
            isa=isa,
        )

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any], *, prefix: str = "", **options: Any):
        """Build from ``nn.{LSTM,GRU}.state_dict()`` (``weight_ih_l0``...) or a ``*Cell``'s
        (``weight_ih``...), torch tensors or numpy arrays; ``prefix`` selects a submodule's keys
        (e.g. ``"head.rnn."``). ``options`` are the constructor's keywords."""
        keys = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
        suffixes = [""] if "weight_ih" in keys else []
        while f"weight_ih_l{len(suffixes)}" in keys:
            suffixes.append(f"_l{len(suffixes)}")
        if not suffixes:
            raise InputError(
                f"state_dict has no {prefix}weight_ih_l0 or {prefix}weight_ih key; got {sorted(state_dict)[:8]}."
            )
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        expected = {name + suffix for name in names for suffix in suffixes}
        unknown = sorted(set(keys) - expected)
        if unknown:
            raise InputError(
                f"state_dict has keys a {cls.__name__} cannot load: {unknown}"
                " (bidirectional and proj_size are not supported)."
            )
        present = set(keys) & expected
        has_bias = any(key.startswith("bias") for key in present)
        missing = sorted(expected - present if has_bias else {k for k in expected - present if k.startswith("weight")})
        if missing:
            raise InputError(f"state_dict lacks {missing} (prefix {prefix!r}).")
        layers = {name: [keys.get(name + suffix) for suffix in suffixes] for name in names}
        return cls(
            layers["weight_ih"],
            layers["weight_hh"],
            layers["bias_ih"] if has_bias else None,
            layers["bias_hh"] if has_bias else None,
            **options,
        )

    @property
    def input_size(self) -> int:
        return self._cell.input_size

    @property
    def hidden_size(self) -> int:
        return self._cell.hidden_size

    @property
    def num_layers(self) -> int:
        return self._cell.num_layers

    @property
    def threads(self) -> int:
        return self._cell.threads

    @property
    def weights_dtype(self) -> str:
        return self._cell.weights_dtype

    @property
    def isa(self) -> str:
        return self._cell.isa

    @property
    def packed_nbytes(self) -> int:
        """Bytes of packed weights and biases: what one step streams from memory per layer pass."""
        return self._cell.packed_nbytes

    def _zeros(self, batch: int) -> np.ndarray:
        batch = _index("batch", batch)
        if batch < 1:
            raise InputError(f"batch must be at least 1, got {batch}.")
        return np.zeros((self.num_layers, batch, self.hidden_size), dtype=np.float32)

    def __repr__(self) -> str:
        return repr(self._cell)


class LSTM(_Recurrent):
    """One step of a stacked ``nn.LSTM`` (gate order i, f, g, o) over weights packed once.

    ``weight_ih`` etc. hold one array per layer (``nn.LSTM``'s ``weight_ih_l<k>``); any float
    dtype, converted to float32 once here. ``threads`` splits each step across cores;
    ``weights_dtype="bfloat16"`` halves the bytes a step streams (the arithmetic stays float32);
    ``"int8"`` quarters them: each gate row has a scale over columns evened out by fixed
    per-input multipliers, x and h are rounded to int16 per row each step, and the sums are exact
    int32 (VNNI ``vpdpwssd`` / ``vpmaddwd``). Gate a model's int8 head with
    ``benchmarks/int8_gate.py`` before deploying it (top-1 agreement with float32 per ratio).
    """

    _compiled = _C.LSTM

    def zero_state(self, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Zero ``(h, c)``, each float32 ``(num_layers, batch, hidden_size)``."""
        return self._zeros(batch), self._zeros(batch)

    def step(
        self,
        x: np.ndarray,
        h: np.ndarray,
        c: np.ndarray,
        h_out: np.ndarray | None = None,
        c_out: np.ndarray | None = None,
    ) -> None:
        """Advance every layer by one step; the top layer's output is then ``h[-1]``.

        Without ``h_out``/``c_out`` the state is updated in place; with both, it is written there
        and ``h``, ``c`` are left unchanged (ping-pong buffers)."""
        self._cell.step(x, h, c, h_out, c_out)


class GRU(_Recurrent):
    """One step of a stacked ``nn.GRU`` (gate order r, z, n) over weights packed once.

    Arguments as :class:`LSTM`; the state is ``h`` alone."""

    _compiled = _C.GRU

    def zero_state(self, batch: int = 1) -> np.ndarray:
        """Zero ``h``, float32 ``(num_layers, batch, hidden_size)``."""
        return self._zeros(batch)

    def step(self, x: np.ndarray, h: np.ndarray, h_out: np.ndarray | None = None) -> None:
        """Advance every layer by one step; the top layer's output is then ``h[-1]``.

        Without ``h_out`` ``h`` is updated in place; with it, the new state is written there."""
        self._cell.step(x, h, h_out)


# PoseConfig's defaults (edgeact/models/pose.py, which imports torch): exported specs may omit a
# field that has its default. tests/cpp_ext/test_pose_step.py checks the two agree.
POSE_DEFAULTS = {"joints": 18, "coords": 2, "people": 1, "center_joints": (), "min_confidence": 0.0,
                 "features": ("position",), "parents": (), "align": (), "vertical_axis": 1}


class PoseStep:
    """One streaming step of a pose-only model: keypoints -> pose encoder -> recurrent stack ->
    classifier logits, one compiled call (see docs/kernels.md).

    ``pose`` holds ``PoseConfig``'s fields (missing ones take its defaults); ``encoder`` the pose
    encoder's weights under ``PoseEncoder.state_dict()``'s names (``joint_convs.0.weight``,
    ``relation_convs.0.bias``, ``project.0.weight``...; torch tensors or arrays); ``head`` an
    :class:`LSTM` or :class:`GRU` whose input is ``people * dim``; ``classifier_weight``
    ``(classes, hidden_size)`` and ``classifier_bias`` as ``nn.Linear``'s.

    The state is the caller's, one array per :attr:`state_names` entry, each ``(batch,
    *state_shapes[i])`` and zero at a stream's start; :meth:`step` reads ``state_in`` and writes
    ``state_out``."""

    def __init__(self, pose: Mapping[str, Any], encoder: Mapping[str, Any], head: LSTM | GRU,
                 classifier_weight: Any, classifier_bias: Any, *, isa: str = "auto") -> None:
        unknown = sorted(set(pose) - set(POSE_DEFAULTS) - {"joint_channels", "relation_channels", "dim"})
        if unknown:
            raise InputError(f"pose has fields PoseStep does not know: {unknown}.")
        if not isinstance(head, (LSTM, GRU)):
            raise InputTypeError(f"head must be an edgeact.kernels.LSTM or GRU, got {type(head).__name__}.")
        cfg = {**POSE_DEFAULTS, **pose}
        (joint_w, joint_b), (relation_w, relation_b) = (_conv_layers(encoder, name) for name in
                                                        ("joint_convs", "relation_convs"))
        project_w, project_b = (_float32(encoder, f"project.0.{part}") for part in ("weight", "bias"))
        self._step = _C.PoseStep(
            [w.reshape(w.shape[:2]) for w in joint_w], joint_b, relation_w, relation_b, project_w, project_b,
            head._cell, *_float32_layers("classifier", [classifier_weight, classifier_bias]),
            joints=cfg["joints"], coords=cfg["coords"], people=cfg["people"],
            center_joints=list(cfg["center_joints"]), min_confidence=float(cfg["min_confidence"]),
            features=list(cfg["features"]), parents=list(cfg["parents"]), align=list(cfg["align"]),
            vertical_axis=cfg["vertical_axis"], isa=isa,
        )
        self.head = head

    @property
    def state_names(self) -> list[str]:
        """``prev``, ``prev_centre``, ``seen`` (with the velocity feature), then ``h<l>`` (and
        ``c<l>`` for an LSTM) per recurrent layer."""
        return self._step.state_names

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        return self._step.state_shapes

    @property
    def classes(self) -> int:
        return self._step.classes

    @property
    def isa(self) -> str:
        return self._step.isa

    def zero_state(self, batch: int = 1) -> list[np.ndarray]:
        batch = _index("batch", batch)
        if batch < 1:
            raise InputError(f"batch must be at least 1, got {batch}.")
        return [np.zeros((batch, *shape), np.float32) for shape in self.state_shapes]

    def step(self, keypoints: np.ndarray, state_in: Sequence[np.ndarray], state_out: Sequence[np.ndarray]) -> np.ndarray:
        """keypoints float32 ``(batch, people, joints, coords + 1)`` in the source's units ->
        logits ``(batch, classes)``, a new array; the next state goes into ``state_out``."""
        return self._step.step(keypoints, state_in, state_out)

    def __repr__(self) -> str:
        return repr(self._step)


def _float32(weights: Mapping[str, Any], name: str) -> np.ndarray:
    if name not in weights:
        raise InputError(f"encoder lacks {name!r}; it has {sorted(weights)[:12]}.")
    return _float32_layers(name, [weights[name]])[0]


def _conv_layers(weights: Mapping[str, Any], name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The convolutions of an ``nn.Sequential`` (conv, ReLU, conv, ...), in order."""
    indices = sorted(int(key.split(".")[1]) for key in weights
                     if key.startswith(name + ".") and key.endswith(".weight") and key.count(".") == 2)
    return ([_float32(weights, f"{name}.{i}.weight") for i in indices],
            [_float32(weights, f"{name}.{i}.bias") for i in indices])


def _index(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InputTypeError(f"{name} must be an int, got bool.")
    try:
        return operator.index(value)
    except TypeError:
        raise InputTypeError(f"{name} must be an int, got {type(value).__name__}.") from None


def _float32_layers(name: str, arrays: Sequence[Any]) -> list[np.ndarray]:
    """One float32 C-contiguous array per layer; torch tensors are read through ``.detach()``."""
    if not isinstance(arrays, (list, tuple)):
        raise InputTypeError(
            f"{name} must be a list or tuple of arrays (one per layer), got {type(arrays).__name__}."
        )
    layers = []
    for index, value in enumerate(arrays):
        if hasattr(value, "detach"):  # a torch tensor, without importing torch
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.floating):
            raise InputTypeError(f"{name}[{index}] must be a floating-point array, got dtype {array.dtype}.")
        layers.append(np.ascontiguousarray(array, dtype=np.float32))
    return layers
