"""Parse a config's YAML text into plain data that JSON can carry, or say where it cannot.

fmb sends inference parameters as JSON, stores the config as JSON in ``raw/runs`` and
hashes it, so every value of a config must be something JSON represents: text, a finite
number, true/false, null, a list or a mapping with text keys. YAML can say more (dates,
binary, sets, ordered pairs, aliases that refer to themselves); those are refused here,
each with its key path, instead of failing every request later.

YAML scalars that Python cannot build (``2024-13-45`` read as a date, an integer of
5,000 digits) are syntax errors with a line and column rather than a crash.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import ScalarNode

from fmb.config.limits import CONFIG_VALUES

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlTimestamp:
    """A plain scalar that YAML reads as a date or a time (kept as its text, to be refused)."""

    text: str


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, but timestamps stay text and unbuildable scalars are syntax errors."""


def _construct_timestamp(loader: _Loader, node: ScalarNode) -> YamlTimestamp:
    return YamlTimestamp(str(loader.construct_scalar(node)))


def _guarded(tag: str, kind: str) -> None:
    original = yaml.SafeLoader.yaml_constructors[tag]

    def construct(loader: _Loader, node: Any) -> Any:
        try:
            return original(loader, node)
        except (ValueError, OverflowError, TypeError, KeyError) as exc:
            value = node.value if isinstance(node, ScalarNode) else "?"
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise ConstructorError(
                None, None, f"{shown!r} cannot be read as {kind} ({str(exc).split(';')[0]})", node.start_mark
            ) from None

    _Loader.add_constructor(tag, construct)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_guarded("tag:yaml.org,2002:int", "an integer")
_guarded("tag:yaml.org,2002:float", "a number")
_guarded("tag:yaml.org,2002:bool", "a boolean")
_guarded("tag:yaml.org,2002:binary", "binary data")


class TooDeep(Exception):
    """The YAML text nests deeper than the parser's recursion allows."""


def parse(text: str) -> Any:
    """The YAML document in ``text``; raises yaml.YAMLError or :class:`TooDeep`."""
    try:
        return yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise TooDeep from None


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str


_QUOTE = "write it in quotes to keep it as text"


def _text_problem(text: str) -> str | None:
    if "\0" in text:
        return "holds a NUL character (U+0000), which no name, path, URL or header can hold"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds {text[exc.start]!r}, half of a UTF-16 surrogate pair, which is not a character"
    return None


def _describe(value: Any) -> str | None:
    """Why a leaf value cannot be carried as JSON, or None when it can."""
    if isinstance(value, YamlTimestamp):
        return f"{value.text} is read by YAML as a date or time, which JSON cannot carry; {_QUOTE}: '{value.text}'"
    if isinstance(value, bytes | bytearray):
        return f"a YAML !!binary value ({len(value)} bytes) cannot be carried as JSON; give it as text"
    if isinstance(value, set | frozenset):
        return "a YAML !!set cannot be carried as JSON; write a list instead: [a, b]"
    if isinstance(value, tuple):
        return "YAML ordered pairs (!!omap or !!pairs) cannot be carried as JSON; write a mapping instead"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a number JSON can carry; give a finite number"
    if isinstance(value, str):
        problem = _text_problem(value)
        return f"the text {problem}" if problem else None
    if value is None or isinstance(value, bool | int | float):
        return None
    return f"a value of type {type(value).__name__} cannot be carried as JSON"


_KEY_KINDS = {YamlTimestamp: "a date", bool: "a boolean", int: "a number", float: "a number", type(None): "null"}


def _key_text(key: Any) -> str:
    if isinstance(key, YamlTimestamp):
        shown = key.text
    elif isinstance(key, bool):
        shown = "true" if key else "false"
    elif key is None:
        shown = "null"
    else:
        shown = str(key)
    return shown


def problems(data: Any) -> Iterator[Problem]:
    """Every place in ``data`` that JSON cannot carry, first found first.

    Also refuses an alias that contains itself and a document that expands (through
    aliases) to more than :data:`fmb.config.limits.CONFIG_VALUES` values.
    """
    count = 0
    stack: list[tuple[Any, Loc, frozenset[int]]] = [(data, (), frozenset())]
    while stack:
        value, loc, above = stack.pop()
        count += 1
        if count > CONFIG_VALUES.value:
            yield Problem((), f"the config has more than {CONFIG_VALUES.value:,} values: {CONFIG_VALUES.why}")
            return
        if isinstance(value, dict | list):
            if id(value) in above:
                yield Problem(loc, "a YAML alias refers to a value that contains it, so the value never ends")
                return
            inner = above | {id(value)}
            if isinstance(value, dict):
                children = []
                for key, child in value.items():
                    if isinstance(key, str) and _text_problem(key):
                        yield Problem(
                            (*loc, key.encode("utf-8", "backslashreplace").decode()), f"the key {_text_problem(key)}"
                        )
                        continue
                    if not isinstance(key, str):
                        shown = _key_text(key)
                        kind = _KEY_KINDS.get(type(key), type(key).__name__)
                        yield Problem(
                            (*loc, shown), f"the key {shown} is not text (YAML reads it as {kind}); {_QUOTE}: '{shown}'"
                        )
                        continue
                    children.append((child, (*loc, key), inner))
            else:
                children = [(child, (*loc, i), inner) for i, child in enumerate(value)]
            stack.extend(reversed(children))
        else:
            problem = _describe(value)
            if problem:
                yield Problem(loc, problem)
