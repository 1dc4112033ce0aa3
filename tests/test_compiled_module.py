"""edgeact._C: build facts are real, and the .pyi stub matches the module."""

from __future__ import annotations

import ast
import inspect
import pathlib

import edgeact
from edgeact import _C

STUB = pathlib.Path(edgeact.__file__).with_name("_C.pyi")


def _stub_names() -> set[str]:
    tree = ast.parse(STUB.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _module_names() -> set[str]:
    return {name for name in dir(_C) if not name.startswith("_") or name == "__version__"}


def test_stub_lists_exactly_the_module_names():
    assert _stub_names() == _module_names()


def test_stub_functions_are_callable_in_module():
    for name in _stub_names():
        if name != "__version__":
            assert callable(getattr(_C, name)), name


def test_build_info_is_real():
    info = _C.build_info()
    assert info["version"] == edgeact.__version__
    assert info["compiler"].split()[0] in {"GNU", "Clang", "AppleClang", "MSVC"}
    assert info["build_type"] in {"Release", "RelWithDebInfo", "Debug", "MinSizeRel"}
    assert info["simd"] in {"avx512", "avx2+fma", "avx2", "avx", "sse4.2", "sse2", "sve", "neon", "scalar"}
    assert isinstance(info["native_arch"], bool)
    assert info["cxx_standard"] >= 201703
    assert "-march=native" in info["cxx_flags"] if info["native_arch"] else "-march=native" not in info["cxx_flags"]


def test_module_has_docstrings():
    assert inspect.getdoc(_C.build_info)
