"""`python -m study data {list,fetch,check}`: which datasets are here, fetch one, verify them."""

from __future__ import annotations

import argparse
import hashlib

from study.errors import DataError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `list`, `fetch` and `check` actions."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text, name_nargs in (
        ("list", "show every dataset split: available or not, and where", "?"),
        ("fetch", "find a dataset or download it into the kit's cache (MD5-checked)", None),
        ("check", "parse every available split in full and print image and class counts", "?"),
    ):
        sub = actions.add_parser(action, help=help_text, description=help_text)
        sub.add_argument("name", nargs=name_nargs, metavar="NAME", help="dataset name (default: all)")
        sub.add_argument("--data-root", metavar="DIR", help="folder holding NAME/*-ubyte.gz (default: $STUDY_DATA_ROOT)")


def run(args: argparse.Namespace) -> int:
    """Run one `data` action; problems surface as DataError (exit code 3)."""
    from study import data  # imports torch, so only when the command runs

    names = [data.get_dataset(args.name).name] if args.name else data.list_datasets()
    if args.action == "list":
        rows = [("dataset", "split", "available", "where")]
        for name in names:
            for split in data.SPLITS:
                try:
                    rows.append((name, split, "yes", data.locate(name, split, args.data_root, download=False).source))
                except DataError:
                    rows.append((name, split, "no", f"python -m study data fetch {name}"))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    elif args.action == "fetch":
        failures = []
        for split in data.SPLITS:
            try:
                print(f"{args.name} {split}: {data.locate(args.name, split, args.data_root).source}")
            except DataError as err:
                failures.append(err)
        if failures:
            raise failures[0]
    else:
        found = 0
        for name in names:
            info = data.get_dataset(name)
            for split in data.SPLITS:
                try:
                    files = data.locate(name, split, args.data_root, download=False)
                except DataError:
                    print(f"{name} {split}: not available here, skipped (python -m study data fetch {name})")
                    continue
                images, labels = data.read_idx_pair(files.images_path, files.labels_path, len(info.classes))
                counts = " ".join(str(c) for c in labels.bincount(minlength=len(info.classes)).tolist())
                print(f"{name} {split} {len(images)} images  classes: {counts}  md5: {_md5_status(info, files)}  "
                      f"({files.source})")
                found += 1
        if args.name and not found:
            raise DataError(f"no split of {args.name} is available here; fetch it: python -m study data fetch {args.name}")
    return 0


def _md5_status(info, files) -> str:
    """Whether both files match the mirrors' published MD5 (re-compressed copies differ yet parse the same)."""
    published = [info.md5_of(path.name) for path in (files.images_path, files.labels_path)]
    if not all(published):
        return "none published"
    actual = [hashlib.md5(path.read_bytes()).hexdigest() for path in (files.images_path, files.labels_path)]
    return "matches mirror" if actual == published else "differs from mirror (contents verified by parsing)"
