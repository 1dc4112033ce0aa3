"""edgeact/_C.pyi matches the compiled module: parameter names, kinds and defaults, class members.

pybind11 functions have no inspect.signature; their docstring's first line is the signature
pybind11 generated, which is what is compared here. (Names alone: tests/test_compiled_module.py.)
"""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest

import edgeact
from edgeact import _C

STUB = ast.parse(pathlib.Path(edgeact.__file__).with_name("_C.pyi").read_text())
FUNCTIONS = {node.name: node for node in STUB.body if isinstance(node, ast.FunctionDef)}
CLASSES = {node.name: node for node in STUB.body if isinstance(node, ast.ClassDef)}


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    return parts + [tail] if tail else parts


def _compiled_params(function) -> list[tuple[str, str, object]]:
    """(name, 'positional' | 'keyword', default or inspect.Parameter.empty) from pybind11's docstring."""
    line = inspect.getdoc(function).splitlines()[0]
    inside = line[line.index("(") + 1 : line.rindex(") ->")]
    params, kind = [], "positional"
    for part in _split_top_level(inside):
        if part == "*":
            kind = "keyword"
            continue
        name, _, rest = part.partition(":")
        default = ast.literal_eval(rest.split(" = ", 1)[1]) if " = " in rest else inspect.Parameter.empty
        params.append((name.strip(), kind, default))
    return params


def _stub_params(node: ast.FunctionDef) -> list[tuple[str, str, object]]:
    args = node.args
    positional_defaults = [inspect.Parameter.empty] * (len(args.args) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults
    ]
    params = [(a.arg, "positional", d) for a, d in zip(args.args, positional_defaults)]
    params += [
        (a.arg, "keyword", inspect.Parameter.empty if d is None else ast.literal_eval(d))
        for a, d in zip(args.kwonlyargs, args.kw_defaults)
    ]
    return params


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_signature_matches_stub(name):
    assert _compiled_params(getattr(_C, name)) == _stub_params(FUNCTIONS[name])


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_members_match_stub(name):
    cls = getattr(_C, name)
    stub_methods = {n.name: n for n in CLASSES[name].body if isinstance(n, ast.FunctionDef)}
    properties = {n for n, node in stub_methods.items() if any(getattr(d, "id", "") == "property" for d in node.decorator_list)}
    public = {n for n in dir(cls) if not n.startswith("_")}
    assert public == set(stub_methods) - {"__init__"}
    assert properties == {n for n in public if isinstance(getattr(cls, n), property)}
    for method in set(stub_methods) - properties:
        assert _compiled_params(getattr(cls, method)) == _stub_params(stub_methods[method]), method


def test_signature_parser_sees_defaults_and_keyword_only():
    # Guards the comparison above against a parser that would make every signature look equal.
    params = _compiled_params(_C.LSTM.__init__)
    assert params[0] == ("self", "positional", inspect.Parameter.empty)
    assert ("bias_hh", "positional", None) in params
    assert ("threads", "keyword", 1) in params and ("isa", "keyword", "auto") in params
