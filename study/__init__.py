"""LR-Net Study Kit: spec-driven MK-block networks, ablation studies, measurement and reports.

The Python API (docs/api.md) is importable from here: `load_results`, `compare`, `build_model`,
`profile_model`. They load lazily, so `import study` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "build_model", "compare", "load_results", "profile_model"]


def __getattr__(name: str) -> Any:
    if name in ("build_model", "compare", "load_results", "profile_model"):
        from study import api

        return getattr(api, name)
    raise AttributeError(f"module 'study' has no attribute {name!r}")
