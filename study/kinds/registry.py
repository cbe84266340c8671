"""The one registry of study kinds: a kind's name → the `StudyKind` that runs and reports it.

The built-in kinds are named here with the module that defines each (loaded on first lookup, so that a module
low in the kit can ask for a kind without importing how every kind runs). A kind of your own registers itself
when its module is imported: name the module in $STUDY_KINDS (comma-separated; workers inherit it), or import it
before the kit runs. docs/architecture.md, "Extending the kit", walks through it.
"""

from __future__ import annotations

import difflib
import importlib
import os

from study.errors import KitError
from study.kinds.base import StudyKind

#: The kit's own kinds and the module that registers each.
BUILTIN = {
    "grid": "study.kinds.grid",
    "robustness": "study.kinds.robustness",
    "search": "study.kinds.search",
}
#: Environment variable naming modules of further kinds (comma-separated), imported on the first lookup.
PLUGINS_ENV = "STUDY_KINDS"

_KINDS: dict[str, StudyKind] = {}


def register(kind: StudyKind) -> StudyKind:
    """Add a kind under its name (a kind's module calls this when it is imported); returns it."""
    if not kind.name or not kind.name.isidentifier():
        raise KitError(f"a study kind needs a name that is an identifier, got {kind.name!r}")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a registered kind (tests that register a kind of their own take it out again)."""
    _KINDS.pop(name, None)


def kind_names() -> tuple[str, ...]:
    """Every kind a study file may name: the built-in ones, then those registered or named in $STUDY_KINDS."""
    _load_plugins()
    return tuple(dict.fromkeys([*BUILTIN, *_KINDS]))


def get_kind(name: str) -> StudyKind:
    """The kind of a name; an unknown name is one line naming the known kinds and how to add one."""
    if name not in _KINDS:
        _load_plugins()
        if name in BUILTIN:
            importlib.import_module(BUILTIN[name])
    if name not in _KINDS:
        close = difflib.get_close_matches(str(name), kind_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KitError(f"unknown study kind {name!r}{hint}; known kinds: {', '.join(kind_names())} "
                       f"(a kind of your own: name its module in ${PLUGINS_ENV})")
    return _KINDS[name]


def _load_plugins() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise KitError(f"${PLUGINS_ENV} names {module!r}, which cannot be imported ({err}); "
                           "fix the module name or unset the variable") from None
