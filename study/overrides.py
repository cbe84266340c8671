"""`--set KEY=VALUE`: change a study file from the command line without editing it.

KEY is a dotted path into the study TOML, with integer list indices (`profiles.quick.seeds`,
`variants.0.block.kernels`; `variants[0].block` works too). VALUE is a TOML value (`10`, `[3, 5]`,
`"dense"`, `{ lr = 1e-3 }`); a bare word is a string (`links=dense`). The overrides are laid over the
file's table *before* validation, so a bad key or type is the same one-line error the file would give.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from study.errors import SpecError

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*|\d+)((?:\[\d+\])*)")
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:+-]*")


@dataclass(frozen=True)
class Override:
    """One `--set KEY=VALUE`: the dotted key, its path of table keys and list indices, and the parsed value."""

    text: str  # as given, e.g. "variants.0.block.kernels=[3,5]"
    key: str
    path: tuple[str | int, ...]
    value: Any


def parse_override(text: str) -> Override:
    """One `KEY=VALUE` parsed; a malformed one is a one-line SpecError naming it."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise SpecError(f"--set {text}: expected KEY=VALUE, e.g. --set profiles.quick.seeds=10")
    return Override(text=f"{key}={raw}", key=key, path=_key_path(key, text), value=_value(raw, text))


def parse_overrides(texts: Iterable[str] | None) -> tuple[Override, ...]:
    """Every `--set` of a command line, in order (a later one wins on the same key)."""
    return tuple(parse_override(t) for t in texts or ())


def _key_path(key: str, text: str) -> tuple[str | int, ...]:
    path: list[str | int] = []
    for part in key.split("."):
        match = _PART.fullmatch(part)
        if not match:
            raise SpecError(f"--set {text}: key {key!r} has an empty or malformed part {part!r}; "
                            "allowed: dotted names and list indices, e.g. variants.0.block.kernels")
        name, indices = match.groups()
        path.append(int(name) if name.isdigit() else name)
        path.extend(int(i) for i in re.findall(r"\d+", indices))
    if isinstance(path[0], int):
        raise SpecError(f"--set {text}: key {key!r} starts with a list index; allowed: a top-level table such as "
                        "study, variants, search or profiles")
    return tuple(path)


def _value(raw: str, text: str) -> Any:
    if not raw:
        raise SpecError(f"--set {text}: no value; give a TOML value, e.g. 10, [3, 5] or \"dense\"")
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as err:
        if _BARE_WORD.fullmatch(raw):
            return raw  # links=dense reads as the string "dense"
        raise SpecError(f"--set {text}: {raw} is not a TOML value ({err}); quote strings inside lists, "
                        "e.g. '[\"mnist\", \"fashion-mnist\"]'") from None


def apply_overrides(doc: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of a study file's table with the overrides laid over it (missing tables are created)."""
    doc = copy.deepcopy(doc)
    for o in overrides:
        node: Any = doc
        for depth, step in enumerate(o.path):
            last = depth == len(o.path) - 1
            where = ".".join(map(str, o.path[:depth])) or "the file"
            if isinstance(step, int):
                if not isinstance(node, list):
                    raise SpecError(f"--set {o.text}: {where} is not a list, so [{step}] does not exist; "
                                    f"allowed: a key of {where}")
                if step >= len(node):
                    raise SpecError(f"--set {o.text}: {where} has {len(node)} entries, so index {step} does not exist; "
                                    f"allowed: 0 to {len(node) - 1}")
            elif not isinstance(node, dict):
                raise SpecError(f"--set {o.text}: {where} is {type(node).__name__} {node!r}, not a table, "
                                f"so it has no key {step!r}")
            if last:
                node[step] = copy.deepcopy(o.value)
            else:
                if isinstance(step, str) and step not in node:
                    node[step] = {}
                node = node[step]
    return doc


def describe(overrides: Sequence[Override]) -> list[str]:
    """The overrides as `KEY=VALUE` strings (what study.json records and the report shows)."""
    return [o.text for o in overrides]


def as_arguments(overrides: Sequence[Override]) -> list[str]:
    """`--set KEY=VALUE` arguments that reproduce these overrides (for worker processes)."""
    return [arg for o in overrides for arg in ("--set", o.text)]
