"""`python -m study init DIR`: copy the example studies and network specs into a working folder, where
`study plan` and `study run` find them (`DIR/ablations/`); edit them there, or add studies of your own."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from study.errors import KitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `study init`."""
    parser.add_argument("folder", type=Path, help="the working folder to create (its ablations/ gets the example studies)")
    parser.add_argument("--force", action="store_true", help="overwrite study files that already exist there")


def run(args: argparse.Namespace) -> int:
    """Copy every example study and spec; an existing file is kept unless --force."""
    from study.studies import ABLATIONS

    target = args.folder / "ablations"
    sources = sorted(ABLATIONS.glob("*.toml")) + sorted((ABLATIONS / "specs").glob("*.toml"))
    if not sources:
        raise KitError(f"no example studies found in {ABLATIONS}: reinstall the kit (pip install lrnet-study-kit)")
    existing = [target / p.relative_to(ABLATIONS) for p in sources if (target / p.relative_to(ABLATIONS)).exists()]
    if existing and not args.force:
        raise KitError(f"{existing[0]} already exists ({len(existing)} files would be overwritten): pass --force, "
                       "or choose another folder")
    for source in sources:
        destination = target / source.relative_to(ABLATIONS)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    print(f"wrote {len(sources)} study and spec files to {target}; in {args.folder}: `study plan` shows what a run "
          "does, `study run` runs the default study", file=sys.stderr)
    return 0
