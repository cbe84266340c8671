"""Small shared helpers for tests: IDX files written by the tests, learnable tiny datasets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch

from study import data


def idx_bytes(array: torch.Tensor, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """Gzipped IDX bytes of a uint8 tensor; `magic` and `dims` override the honest header."""
    dims = tuple(array.shape) if dims is None else dims
    magic = (0x0800 | len(dims)) if magic is None else magic
    header = struct.pack(f">I{len(dims)}I", magic, *dims)
    return gzip.compress(header + array.to(torch.uint8).numpy().tobytes())


def write_split(root: Path, name: str, split: str, images: torch.Tensor, labels: torch.Tensor, **overrides) -> Path:
    """Write one split of `name` as IDX files under root/name; overrides go to the images file's header."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    images_name, labels_name = data.get_dataset(name).files(split)
    (folder / images_name).write_bytes(idx_bytes(images, **overrides))
    (folder / labels_name).write_bytes(idx_bytes(labels))
    return folder


def write_tiny_dataset(root: Path, name: str = "fashion-mnist", train: int = 300, test: int = 200, seed: int = 0) -> Path:
    """A learnable stand-in for `name` under root/name: each class is a bright bar at its own row, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    for split, count in (("train", train), ("test", test)):
        labels = torch.arange(count) % 10
        images = torch.randint(0, 60, (count, 28, 28), generator=generator, dtype=torch.uint8)
        rows = 2 + 2 * labels
        images[torch.arange(count), rows] = 250
        write_split(root, name, split, images, labels)
    return root


def tiny_grid_study(links: tuple[str, ...] = ("paper", "none"), profile: str = "seeds = 2\nwidth = 1.0") -> str:
    """The TOML of a tiny links study: one MK block at width ×0.25 per variant ("paper" is the reference),
    with `profile` as its `[profiles.quick]` table (seeds, workers, a small `train` table, …)."""
    parts = ['[study]\naxis = "links"\nbase = "lrnet_paper"\ndatasets = ["fashion-mnist"]\n']
    for link in links:
        block = "{ width_multiplier = 0.25 }" if link == "paper" else f'{{ links = "{link}", width_multiplier = 0.25 }}'
        reference = "reference = true\n" if link == "paper" else ""
        parts.append(f'[[variants]]\nlabel = "{link}"\n{reference}blocks = 1\nblock = {block}\n')
    return "\n".join(parts) + f"\n[profiles.quick]\n{profile}\n"


def tiny_search_study(search: str = "", profile: str = "", kernels: str = "[[3], [3, 5]]") -> str:
    """The TOML of a tiny search study: one MK block at widths ×0.1–0.3, links paper or none, the given kernel
    sets; `search` is added to its `[search]` table and `profile` is its `[profiles.quick]` table."""
    return ('[study]\naxis = "search"\nkind = "search"\nbase = "lrnet_paper"\ndatasets = ["fashion-mnist"]\n\n'
            f'[search]\nkernels = {kernels}\nlinks = ["paper", "none"]\nblocks = [1, 1]\nwidth_multiplier = [0.1, 0.3]\n'
            f'{search}\n\n[profiles.quick]\n{profile}\n')
