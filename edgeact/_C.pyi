"""Type stub of the compiled module edgeact._C (kept in sync by tests/test_stub.py)."""

__version__: str

def build_info() -> dict[str, object]: ...
