"""Config dataclasses from plain (YAML) dicts, with exact error sentences and "did you mean" (torch-free).

Each model file declares its own config dataclass (nanoGPT style), and edgeact.train.config the
training config's; :func:`parse_config` turns a dict into any of them, a :class:`Wording` saying
how the messages name that config. A field's ``metadata`` may carry ``choices`` (allowed
strings), ``min`` and ``max`` (inclusive bounds); a field without a default must be given; a
dataclass-typed field is a nested section. Cross-field rules live in each dataclass's
``__post_init__`` (or its ``from_dict``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Optional, TypeVar

from edgeact.errors import ConfigError

C = TypeVar("C")


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' Did you mean 'x'?' when a close option exists, else ''."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


@dataclasses.dataclass(frozen=True)
class Wording:
    """How messages name a config. ``label`` starts sentences about a value or a section ("Model
    config 'head.layers' must be ...", "Model config section 'pose' must be a mapping"); ``part``
    names a section inside one ("Unknown key 'x' in model config section 'head'"); the whole
    config is "the <label>". ``sort_keys`` lists valid keys alphabetically, else as declared;
    ``quote`` adds the value to "must be a mapping" sentences."""

    label: str = "Model config"
    part: str = "model config section"
    sort_keys: bool = True
    quote: bool = False

    def start(self, where: str) -> str:
        return f"{self.label} section '{where}'" if where else f"The {self.label.lower()}"

    def inside(self, where: str) -> str:
        return f"{self.part} '{where}'" if where else f"the {self.label.lower()}"


MODEL = Wording()


def section_name(where: str) -> str:
    return MODEL.inside(where)


def check_choice(value: str, choices: Iterable[str], where: str, what: str) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``; ``what`` names the thing chosen."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"Unknown {what} '{value}' for '{where}'.{did_you_mean(str(value), choices)} "
            f"Valid choices: {', '.join(choices)}."
        )


def parse_config(cls: type[C], data: Any, where: str, extra: Iterable[str] = (), *,
                 wording: Wording = MODEL) -> C:
    """Build dataclass ``cls`` from mapping ``data``.

    ``where`` is the dotted path of the section in the whole config (for messages, '' for the
    whole); keys in ``extra`` are allowed but read by the caller (e.g. ``name`` choosing the
    class). Nested sections are built the same way; one left empty (YAML reads ``key:`` as null)
    takes its defaults.
    """
    if not isinstance(data, Mapping):
        value = f" {data!r}" if wording.quote else ""
        raise ConfigError(f"{wording.start(where)} must be a mapping, got {type(data).__name__}{value}.")
    fields = dataclasses.fields(cls)
    check_keys(data, [*(f.name for f in fields), *extra], where, wording)

    def section(sub: type, value: Any, path: str) -> Any:
        return parse_config(sub, {} if value is None else value, path, wording=wording)

    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields:
        if f.name in data:
            path = f"{where}.{f.name}" if where else f.name
            kwargs[f.name] = parse_value(data[f.name], hints[f.name], path, f.metadata,
                                         label=wording.label, section=section)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{wording.start(where)} needs '{f.name}'.")
    return cls(**kwargs)


def check_keys(data: Mapping, allowed: Iterable[str], where: str, wording: Wording = MODEL) -> None:
    """Raise ConfigError naming the first key of ``data`` not in ``allowed``."""
    allowed = list(dict.fromkeys(allowed))
    if wording.sort_keys:
        allowed.sort()
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"Unknown key '{key}' in {wording.inside(where)}.{did_you_mean(str(key), allowed)} "
                f"Valid keys: {', '.join(allowed)}."
            )


def parse_value(
    value: Any,
    hint: Any,
    path: str,
    meta: Mapping = MappingProxyType({}),
    *,
    label: str = "Model config",
    section: Optional[Callable[[type, Any, str], Any]] = None,
) -> Any:
    """Check ``value`` against type ``hint`` and the ``choices``/``min``/``max`` in ``meta``.

    Hints: bool, int, float (a number, or a string that parses as one: YAML reads ``1e-3`` as a
    string), str, dict, tuple[X, ...] or tuple[X, Y] (lists become tuples; ``tuple[int, int]``
    also takes one int, a square size), Optional[X], and dataclasses, which ``section(cls, value,
    path)`` builds. ``label`` starts every message ("Model config", "Config").
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    again = functools.partial(parse_value, meta=meta, label=label, section=section)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        return None if value is None else again(value, next(a for a in args if a is not type(None)), path)
    if dataclasses.is_dataclass(hint):
        if section is None:
            raise TypeError(f"parse_value needs a section parser for {hint.__name__} at '{path}'.")
        return section(hint, value, path)
    if hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{label} '{path}' must be a mapping, got {type(value).__name__} {value!r}.")
        return copy.deepcopy(dict(value))
    if origin is tuple:
        fixed = args[-1] is not Ellipsis
        if fixed and args == (int, int) and isinstance(value, int) and not isinstance(value, bool):
            value = (value, value)  # a square size given as one number
        if not isinstance(value, (list, tuple)):
            same = not fixed or len(set(args)) == 1
            of = f" of {_KINDS[args[0]][1]}" if same and args[0] in _KINDS else ""
            raise ConfigError(f"{label} '{path}' must be a list{of}, got {type(value).__name__} {value!r}.")
        if fixed and len(value) != len(args):
            raise ConfigError(f"{label} '{path}' must have {len(args)} items, got {len(value)}.")
        items = args if fixed else (args[0],) * len(value)
        return tuple(again(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, items)))
    if hint is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{label} '{path}' must be {_KINDS[hint][0]}, got {type(value).__name__} {value!r}.")
    if "choices" in meta:
        check_choice(value, meta["choices"], path, "value")
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        raise ConfigError(f"{label} '{path}' must be {bounds}, got {value}.")
    return value


# what a value of each type is called in messages: one, and a list of them
_KINDS = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings")}


def config_to_dict(cfg: Any) -> dict:
    """A dataclass config as plain lists/dicts (the inverse of :func:`parse_config`)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
