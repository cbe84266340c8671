"""Study kinds: what a study file's `kind = "..."` means, end to end.

A kind owns a study's cells and sampler, its trial objective, its plan estimate and its report sections
(`base.StudyKind`); the kit looks a kind up by name in one registry (`registry`), never by comparing strings.
The built-in kinds are `grid`, `robustness` and `search` (one module each); docs/architecture.md, "Extending
the kit", says how to add one.
"""
