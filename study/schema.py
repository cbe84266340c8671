"""One typed reader from TOML tables to frozen dataclasses, and the reference page written from the same declarations.

A table of a study or network spec file is declared as a frozen dataclass. A field's type says what a value must
be; `typing.Annotated` markers beside it say what a type cannot (`Range`, `Choice`, `MinLen`/`NonEmpty`,
`Distinct`), name the value in words (`Noun`), keep a field out of files (`Internal`) and say what the key means
(`Doc`). `from_mapping` and `fields_of` check a table against the declaration: unknown keys, wrong types and values
out of bounds are each one `SpecError` line naming the file, the key, the problem and what is allowed, the allowed
text written by `describe` from the declaration itself. `table_markdown` writes the same declarations as a
reference table, so the messages and docs/study-files.md cannot drift from the checks.

Types it reads: bool, int, float (a whole number is converted), str, Any, Literal[...], tuple[X, ...] (a TOML
list), tuple[X, X] (a [low, high] pair with low ≤ high), Mapping[str, X] (a table of X), a dataclass (a table)
and X | None (the key may be left out; TOML has no null). `Range` and `Choice` bound every element of a list,
pair or table they annotate; `MinLen` and `Distinct` bound the list (or table, or string) itself.

Rules that tie several keys together (unique labels, a subset of the study's datasets, …) are not types: the
loaders check them after this reader, with the same one-line errors.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn

from study.errors import SpecError

# --------------------------------------------------------------------------- markers


@dataclass(frozen=True)
class Doc:
    """What a key means, for the reference; `default` says in words what leaving the key out means where the
    field's default value does not ("the file's name")."""

    text: str
    default: str = ""


@dataclass(frozen=True)
class Range:
    """Bounds of a number (or of every number of a list, pair or table); None = unbounded. NaN never passes, and an
    infinite value only a closed `high=math.inf`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, x: float) -> bool:
        """Whether `x` lies inside the bounds."""
        if math.isnan(x) or (math.isinf(x) and not (x > 0 and self.high == math.inf and not self.high_open)):
            return False
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return self.high is None or (x < self.high if self.high_open else x <= self.high)

    def text(self) -> str:
        """The bounds in words: "≥ 1", "> 0", "in (0, 1]", "≥ 0, or inf"."""
        low, high = self.low, self.high
        if low is not None and high is not None and high != math.inf:
            return f"in {'(' if self.low_open else '['}{_number(low)}, {_number(high)}{')' if self.high_open else ']'}"
        parts = []
        if low is not None:
            parts.append(f"{'>' if self.low_open else '≥'} {_number(low)}")
        if high == math.inf:
            parts.append("or inf")
        elif high is not None:
            parts.append(f"{'<' if self.high_open else '≤'} {_number(high)}")
        return ", ".join(parts)


class Choice:
    """A string from a set: fixed values, or a registry's, read when a value is checked (`values` a callable)."""

    def __init__(self, values: Iterable[str] | Callable[[], Iterable[str]]):
        self._values = values

    @property
    def values(self) -> tuple[str, ...]:
        """The allowed strings, in the registry's order."""
        return tuple(self._values() if callable(self._values) else self._values)


@dataclass(frozen=True)
class MinLen:
    """At least `n` entries in a list (keys in a table); for a string, `NonEmpty` means not blank."""

    n: int = 1


#: A list or table with at least one entry; a string with a character other than a space.
NonEmpty = MinLen(1)


@dataclass(frozen=True)
class _Distinct:
    """No value twice in a list."""


#: No value twice in a list.
Distinct = _Distinct()


@dataclass(frozen=True)
class Noun:
    """What a value is, in words, for messages and the reference (`Noun("a dataset name")`); the plural drops the
    article and adds an s unless `many` is given."""

    one: str
    many: str = ""

    def plural(self) -> str:
        """The noun for several values: "dataset names"."""
        return self.many or self.one.removeprefix("a ").removeprefix("an ") + "s"


@dataclass(frozen=True)
class _Internal:
    """A field the kit fills in and no file sets."""


#: A field the kit fills in and no file sets: an unknown key in a table, and left out of the reference.
Internal = _Internal()


_ELEMENT_MARKS = (Range, Choice, Noun)  # what bounds or names each element of a list, pair or table


# --------------------------------------------------------------------------- reading


def _split(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """(type, markers): Annotated layers peeled off, and `X | None` read as X."""
    marks: tuple[Any, ...] = ()
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            marks += tp.__metadata__
            tp = tp.__origin__
        elif origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(arms) != 1:
                raise TypeError(f"the schema reads X | None, not {tp}")
            tp = arms[0]
        else:
            return tp, marks


def _mark(marks: tuple[Any, ...], kind: type) -> Any:
    return next((m for m in marks if isinstance(m, kind)), None)


def _element(tp: Any, marks: tuple[Any, ...]) -> Any:
    """An element type carrying the container's element markers (Range, Choice, Noun)."""
    passed = tuple(m for m in marks if isinstance(m, _ELEMENT_MARKS))
    return Annotated[(tp, *passed)] if passed else tp


def _is_mapping(origin: Any) -> bool:
    return origin in (collections.abc.Mapping, dict)


def _shown(value: Any) -> str:
    """A value as the file wrote it (a table as "a table")."""
    return "a table" if isinstance(value, dict) and value else json.dumps(value, default=str)


def coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """`value` checked against the declaration `tp` and converted (lists to tuples, tables to dataclasses, whole
    numbers to floats where a number is declared); a problem is one SpecError line at `where`: `key`."""
    base, marks = _split(tp)
    origin = typing.get_origin(base)
    written = value

    def wrong() -> NoReturn:
        raise SpecError.at(where, key, f"got {_shown(written)}", describe(tp))

    if base is Any:
        return value
    if origin is Literal:
        if isinstance(value, bool) or value not in typing.get_args(base):
            raise SpecError.at(where, key, f"{json.dumps(value, default=str)} is not a valid choice", describe(tp))
        return value
    least = _mark(marks, MinLen)
    if origin is tuple:
        args = typing.get_args(base)
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            wrong()
        kinds = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        items = tuple(coerce(v, _element(t, marks), f"{key}[{i}]", where) for i, (v, t) in enumerate(zip(value, kinds, strict=True)))
        if (least and len(items) < least.n) or (_mark(marks, _Distinct) and len(set(items)) != len(items)):
            wrong()
        if args[-1] is not Ellipsis and len(items) == 2 and not items[0] <= items[1]:
            wrong()
        return items
    if _is_mapping(origin):
        if not isinstance(value, dict) or (least and len(value) < least.n):
            wrong()
        inner = _element(typing.get_args(base)[1], marks)
        return {k: coerce(v, inner, f"{key}.{k}", where) for k, v in value.items()}
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict) or (least and len(value) < least.n):
            wrong()
        return from_mapping(base, value, where, prefix=f"{key}.")
    if base is bool:
        if not isinstance(value, bool):
            wrong()
        return value
    if base in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float) if base is float else int):
            wrong()
        value = base(value)
    elif base is str:
        if not isinstance(value, str) or (least and not value.strip()):
            wrong()
    else:
        raise TypeError(f"the schema cannot read {base!r} (at {key})")
    bounds, choice = _mark(marks, Range), _mark(marks, Choice)
    if bounds and not bounds.holds(value):
        wrong()
    if choice and value not in choice.values:
        raise SpecError.at(where, key, f"{json.dumps(value)} is not a valid choice", describe(tp))
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def file_keys(cls: type) -> list[str]:
    """The keys a file's table of `cls` may give: its fields in order, less the `Internal` ones."""
    return [f.name for f in dataclasses.fields(cls) if not _mark(_split(_hints(cls)[f.name])[1], _Internal)]


def fields_of(cls: type, data: Any, where: str, prefix: str = "") -> dict[str, Any]:
    """The keys a table gives, each checked against `cls`'s declaration and converted (a key left out is left
    out: for laying a table over a value that is not the dataclass default)."""
    if not isinstance(data, Mapping):
        raise SpecError.at(where, prefix.removesuffix(".") or "the file", f"got {_shown(data)}", "a table")
    keys = file_keys(cls)
    given = {}
    for key, value in data.items():
        if key not in keys:
            raise unknown_key(where, prefix + key, keys)
        given[key] = coerce(value, _hints(cls)[key], prefix + key, where)
    return given


def from_mapping(cls: type, data: Mapping[str, Any], where: str = "spec", prefix: str = "") -> Any:
    """A frozen dataclass from a TOML table: unknown keys, wrong types, values out of bounds and missing keys are
    SpecErrors."""
    given = fields_of(cls, data, where, prefix)
    for f in dataclasses.fields(cls):
        if f.name not in given and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError.at(where, prefix + f.name, "missing", describe(_hints(cls)[f.name]))
    return cls(**given)


def unknown_key(where: str, key: str, allowed: list[str] | tuple[str, ...] | set[str]) -> SpecError:
    """The error for a key a table does not have, with the closest allowed key."""
    close = difflib.get_close_matches(key.rpartition(".")[2], list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError.at(where, key, f"unknown key{hint}", ', '.join(sorted(allowed) if isinstance(allowed, set) else allowed))


# --------------------------------------------------------------------------- describing


_NOUNS = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true/false", "true/false values"), Any: ("any value", "any values")}
_COUNTS = {2: "two", 3: "three"}


def describe(tp: Any, plural: bool = False) -> str:
    """What a declared type allows, in words ("a non-empty list of distinct numbers in (0, 1)"): the `allowed`
    text of every error and the type column of the reference."""
    base, marks = _split(tp)
    origin = typing.get_origin(base)
    least, noun = _mark(marks, MinLen), _mark(marks, Noun)
    if origin is Literal:
        values = ", ".join(repr(a) for a in typing.get_args(base))
        return f"values from {values}" if plural else f"one of {values}"
    if origin is tuple:
        args = typing.get_args(base)
        if args[-1] is not Ellipsis:
            pair = "pairs" if plural else "a pair"
            return f"{pair} [low, high] of {describe(_element(args[0], marks), plural=True)}, low ≤ high"
        n = least.n if least else 0
        what = ("distinct " if _mark(marks, _Distinct) else "") + describe(_element(args[0], marks), plural=True)
        if n >= 2:
            return f"{'lists' if plural else 'a list'} of at least {_COUNTS.get(n, n)} {what}"
        return f"{'' if plural else 'a '}{'non-empty ' if n else ''}list{'s' if plural else ''} of {what}"
    if _is_mapping(origin):
        inner = typing.get_args(base)[1]
        what = "" if inner is Any else f" of {describe(_element(inner, marks), plural=True)}"
        return f"{'' if plural else 'a '}{'non-empty ' if least else ''}table{'s' if plural else ''}{what}"
    if dataclasses.is_dataclass(base):
        keys = ", ".join(file_keys(base))
        return f"{'' if plural else 'a '}{'non-empty ' if least else ''}table{'s' if plural else ''} {{{keys}}}"
    one, many = _NOUNS.get(base, (str(base), str(base)))
    if noun:
        one, many = noun.one, noun.plural()
    text = many if plural else one
    if base is str and least:
        text = "non-empty " + text if plural else "a non-empty " + text.removeprefix("a ")
    bounds, choice = _mark(marks, Range), _mark(marks, Choice)
    if bounds:
        text += " " + bounds.text()
    if choice:
        values = ", ".join(choice.values)
        text = f"{text} from {values}" if plural or noun else f"one of {values}"
    return text


def _number(x: float) -> str:
    """A bound as a reader writes it: 1, 0.5, 1e-08, 1,000,000."""
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:g}"


def default_text(cls: type, name: str) -> str:
    """A field's default for the reference: its `Doc.default` words, else its value as TOML in backticks, else
    "required"."""
    doc = _mark(_split(_hints(cls)[name])[1], Doc)
    if doc and doc.default:
        return doc.default
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if dataclasses.is_dataclass(f.default):
        return "its keys' defaults"
    if f.default is not dataclasses.MISSING:
        return f"`{toml_value(f.default)}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{toml_value(f.default_factory())}`"
    return "required"


def toml_value(value: Any) -> str:
    """A Python value written as TOML (tuples as lists, mappings as inline tables)."""
    if value is None:
        return "left out"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if value == math.inf else repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, str) else str(value)


def doc_of(cls: type, name: str) -> str:
    """A field's meaning ("" where it has no `Doc`)."""
    doc = _mark(_split(_hints(cls)[name])[1], Doc)
    return doc.text if doc else ""


def table_markdown(cls: type, *, skip: Iterable[str] = (), rows: Iterable[tuple[str, str, str, str]] = (),
                   defaults: Callable[[str], str] | None = None) -> str:
    """A Markdown table of the keys of `cls`'s file table: key, type, default, meaning. `rows` are keys the table
    reads outside its dataclass, (key, type, default, meaning); `defaults(key)` may replace a key's default text."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    table = [(k, describe(_hints(cls)[k]), (defaults(k) if defaults else "") or default_text(cls, k), doc_of(cls, k))
             for k in file_keys(cls) if k not in set(skip)]
    for key, kind, default, meaning in [*table, *rows]:
        cells = [f"`{key}`", kind, default, meaning]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"
