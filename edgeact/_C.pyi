"""Type stub of the compiled module edgeact._C.

Kept in sync by tests/test_compiled_module.py (names) and tests/cpp_ext/test_stub_signatures.py
(parameter names, defaults and keyword-only markers against pybind11's signatures).
Use the facade edgeact.kernels rather than this module directly.
"""

from collections.abc import Sequence

import numpy

__version__: str

def build_info() -> dict[str, object]: ...
def temporal_shift_online_(x: numpy.ndarray, cache: numpy.ndarray, fold: int) -> None: ...
def temporal_shift_offline(x: numpy.ndarray, fold: int) -> numpy.ndarray: ...
def area_resize(frame: numpy.ndarray, width: int, height: int) -> numpy.ndarray: ...

class LSTM:
    def __init__(
        self,
        weight_ih: Sequence[numpy.ndarray],
        weight_hh: Sequence[numpy.ndarray],
        bias_ih: Sequence[numpy.ndarray] | None = None,
        bias_hh: Sequence[numpy.ndarray] | None = None,
        *,
        threads: int = 1,
        weights_dtype: str = "float32",
        isa: str = "auto",
    ) -> None: ...
    def step(
        self,
        x: numpy.ndarray,
        h: numpy.ndarray,
        c: numpy.ndarray,
        h_out: numpy.ndarray | None = None,
        c_out: numpy.ndarray | None = None,
    ) -> None: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def weights_dtype(self) -> str: ...
    @property
    def isa(self) -> str: ...
    @property
    def packed_nbytes(self) -> int: ...

class GRU:
    def __init__(
        self,
        weight_ih: Sequence[numpy.ndarray],
        weight_hh: Sequence[numpy.ndarray],
        bias_ih: Sequence[numpy.ndarray] | None = None,
        bias_hh: Sequence[numpy.ndarray] | None = None,
        *,
        threads: int = 1,
        weights_dtype: str = "float32",
        isa: str = "auto",
    ) -> None: ...
    def step(self, x: numpy.ndarray, h: numpy.ndarray, h_out: numpy.ndarray | None = None) -> None: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def weights_dtype(self) -> str: ...
    @property
    def isa(self) -> str: ...
    @property
    def packed_nbytes(self) -> int: ...

class PoseStep:
    def __init__(
        self,
        joint_weight: Sequence[numpy.ndarray],
        joint_bias: Sequence[numpy.ndarray],
        relation_weight: Sequence[numpy.ndarray],
        relation_bias: Sequence[numpy.ndarray],
        project_weight: numpy.ndarray,
        project_bias: numpy.ndarray,
        head: LSTM | GRU,
        classifier_weight: numpy.ndarray,
        classifier_bias: numpy.ndarray,
        *,
        joints: int,
        coords: int,
        people: int,
        center_joints: Sequence[int],
        min_confidence: float,
        features: Sequence[str],
        parents: Sequence[int],
        align: Sequence[int],
        vertical_axis: int,
        isa: str = "auto",
    ) -> None: ...
    def step(
        self, keypoints: numpy.ndarray, state_in: Sequence[numpy.ndarray], state_out: Sequence[numpy.ndarray]
    ) -> numpy.ndarray: ...
    @property
    def state_names(self) -> list[str]: ...
    @property
    def state_shapes(self) -> list[tuple[int, ...]]: ...
    @property
    def classes(self) -> int: ...
    @property
    def feature_size(self) -> int: ...
    @property
    def isa(self) -> str: ...
