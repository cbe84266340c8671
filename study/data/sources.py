"""Where a dataset's images come from: the registry of IDX datasets, reading IDX files, and the
offline-first lookup ($STUDY_DATA_ROOT, the kit's cache, system folders) with a verified download."""

from __future__ import annotations

import difflib
import functools
import gzip
import hashlib
import http.client
import math
import os
import struct
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from study.errors import DataError
from study.files import atomic_write_bytes

SPLITS = ("train", "test")
IMAGE_SIZE = 28
DOWNLOAD_TIMEOUT_S = 10.0

_IDX_IMAGES, _IDX_LABELS = 2051, 2049
_IDX_KIND = {_IDX_IMAGES: "IDX images", _IDX_LABELS: "IDX labels"}


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetInfo:
    """One 28×28 IDX dataset: classes, file names per split, download mirrors, MD5s and train statistics."""

    name: str
    classes: tuple[str, ...]
    train_files: tuple[str, str]  # (images, labels)
    test_files: tuple[str, str]
    mirrors: tuple[str, ...]  # URL prefixes; a file's URL is mirror + file name
    md5: tuple[tuple[str, str], ...]  # (file name, MD5 of the downloaded .gz); empty when unpublished
    mean: float
    std: float
    system_dirs: tuple[Path, ...] = ()  # read-only copies installed outside the kit
    offline_hint: str = ""  # how to get the data without internet, if there is a way

    def files(self, split: str) -> tuple[str, str]:
        """The (images, labels) file names of `split` ("train" or "test")."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
        return self.train_files if split == "train" else self.test_files

    def md5_of(self, filename: str) -> str | None:
        """The published MD5 of `filename`, or None when there is none."""
        return dict(self.md5).get(filename)


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add `info` to the registry; a name can be registered once."""
    if info.name in DATASETS:
        raise ValueError(f"dataset {info.name!r} is already registered")
    DATASETS[info.name] = info
    return info


def list_datasets() -> list[str]:
    """Names of the registered datasets, in registration order."""
    return list(DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    """The registered dataset `name`; unknown names list the known ones, closest first."""
    if name in DATASETS:
        return DATASETS[name]
    ranked = difflib.get_close_matches(name, DATASETS, n=len(DATASETS), cutoff=0.0)
    raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(ranked)}")


_STANDARD_FILES = {
    "train_files": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test_files": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_FETCH_HINT = "run once with internet access (python -m study data fetch {name}) or pass --data-root DIR holding {name}/*-ubyte.gz"

# Mirrors and MD5s as published by torchvision.datasets.{MNIST,FashionMNIST,KMNIST}.
register_dataset(DatasetInfo(
    name="mnist",
    classes=tuple(str(digit) for digit in range(10)),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5=(
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    mean=0.1307, std=0.3081,
    **_STANDARD_FILES,
))
register_dataset(DatasetInfo(
    name="fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5=(
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    mean=0.2860, std=0.3530,
    # Debian's dataset-fashion-mnist re-compresses the files (other MD5s, same contents).
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    offline_hint="apt-get install -y dataset-fashion-mnist",
    **_STANDARD_FILES,
))
register_dataset(DatasetInfo(
    name="kmnist",
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    md5=(
        ("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
        ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
        ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
        ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
    ),
    mean=0.1918, std=0.3483,  # commonly quoted train statistics
    **_STANDARD_FILES,
))
register_dataset(DatasetInfo(
    name="oracle-mnist",
    classes=("big", "sun", "moon", "cattle", "next", "field", "not", "arrow", "time", "wood"),
    mirrors=("https://raw.githubusercontent.com/wm-bupt/oracle-mnist/main/data/oracle/",),
    # The repository publishes no checksums, so downloads are verified by parsing them in full.
    md5=(),
    # Measured on the test split: the train split was not available offline to measure.
    mean=0.2344, std=0.2833,
    **_STANDARD_FILES,
))


# --------------------------------------------------------------------------- IDX files


def _parse_idx(payload: bytes, origin: str, expected_magic: int) -> torch.Tensor:
    """Decode one gzipped IDX file (bytes) into a uint8 tensor, checking header against data."""
    try:
        raw = gzip.decompress(payload)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{origin}: corrupt gzip data ({err}); delete the file and fetch the dataset again") from None
    if len(raw) < 4:
        raise DataError(f"{origin}: file too short to hold an IDX header; delete it and fetch the dataset again")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        found = _IDX_KIND.get(magic, "not IDX ubyte data")
        raise DataError(f"{origin}: magic number {magic} ({found}), expected {expected_magic} "
                        f"({_IDX_KIND[expected_magic]}); replace it with the dataset's own file")
    ndim = magic & 0xFF  # the IDX magic's last byte is the number of dimensions
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{origin}: header truncated; delete the file and fetch the dataset again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if ndim == 3 and dims[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{origin}: images are {dims[1]}×{dims[2]}, expected {IMAGE_SIZE}×{IMAGE_SIZE}; "
                        "this kit reads 28×28 IDX datasets only")
    expected = math.prod(dims)
    if len(raw) - header != expected:
        shortfall = "shorter" if len(raw) - header < expected else "longer"
        raise DataError(f"{origin}: {len(raw) - header} data bytes, {shortfall} than the {expected} its header "
                        f"promises for {dims[0]} items; delete the file and fetch the dataset again")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def _parse_pair(images_payload: bytes, labels_payload: bytes, images_origin: str, labels_origin: str,
                num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode and cross-check an (images, labels) pair of gzipped IDX payloads."""
    images = _parse_idx(images_payload, images_origin, _IDX_IMAGES)
    labels = _parse_idx(labels_payload, labels_origin, _IDX_LABELS)
    if len(images) != len(labels):
        raise DataError(f"{images_origin} holds {len(images)} images but {labels_origin} holds {len(labels)} "
                        "labels; the two files come from different splits, fetch the pair again")
    if len(labels) and int(labels.max()) >= num_classes:
        raise DataError(f"{labels_origin}: label {int(labels.max())} outside 0..{num_classes - 1}; "
                        "the file belongs to another dataset, fetch the right one")
    return images, labels.long()


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Read gzipped IDX images [N, 28, 28] uint8 and labels [N] int64, raising DataError on anything corrupt."""
    return _parse_pair(Path(images_path).read_bytes(), Path(labels_path).read_bytes(),
                       str(images_path), str(labels_path), num_classes)


@functools.lru_cache(maxsize=16)
def _read_cached(images_path: str, labels_path: str, num_classes: int, stamp: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """`read_idx_pair` memoised per process; `stamp` (mtime, size) makes a replaced file re-read."""
    return read_idx_pair(Path(images_path), Path(labels_path), num_classes)


# --------------------------------------------------------------------------- lookup and download


@dataclass(frozen=True)
class DatasetFiles:
    """Where one split's IDX files are, and which place they were found in (`source`)."""

    images_path: Path
    labels_path: Path
    source: str


def cache_dir() -> Path:
    """The kit's dataset cache: `$STUDY_CACHE/datasets`, else `~/.cache/lrnet-study/datasets`."""
    return Path(os.environ.get("STUDY_CACHE") or "~/.cache/lrnet-study").expanduser() / "datasets"


def _places(info: DatasetInfo, data_root: str | Path | None) -> list[tuple[str, Path]]:
    """The (kind, folder) places to look in for `info`'s files, in lookup order."""
    roots = [str(data_root)] if data_root else os.environ.get("STUDY_DATA_ROOT", "").split(os.pathsep)
    places = [("data-root", Path(root).expanduser() / info.name) for root in roots if root]
    places.append(("cache", cache_dir() / info.name))
    places += [("system", folder) for folder in info.system_dirs]
    return places


# URLs that failed to connect in this process: studies load data many times, and an offline
# machine with a black-holed network would otherwise wait out every timeout on every load.
_UNREACHABLE: set[str] = set()


def _download(info: DatasetInfo, filename: str) -> tuple[bytes, str]:
    """Fetch `filename` from the first mirror that serves it with the published MD5; returns (bytes, url)."""
    errors = []
    for mirror in info.mirrors:
        url = mirror + filename
        if url in _UNREACHABLE:
            errors.append(f"{url} unreachable earlier in this run")
            continue
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                payload = response.read()
        except (OSError, ValueError, http.client.HTTPException) as err:  # URLError and timeouts are OSErrors
            _UNREACHABLE.add(url)
            errors.append(f"{url} failed ({err})")
            continue
        expected = info.md5_of(filename)
        if expected and hashlib.md5(payload).hexdigest() != expected:
            errors.append(f"{url} gave a file with the wrong MD5")
            continue
        return payload, url
    raise DataError("; ".join(errors))


def _download_split(info: DatasetInfo, split: str) -> DatasetFiles:
    """Download both files of a split, verify them (MD5, then a full parse), and move them into the cache."""
    images_name, labels_name = info.files(split)
    images, images_url = _download(info, images_name)
    labels, labels_url = _download(info, labels_name)
    folder = cache_dir() / info.name
    # Parsing catches what an MD5 cannot (Oracle-MNIST has none) before anything reaches the cache.
    _parse_pair(images, labels, images_url, labels_url, len(info.classes))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / images_name, images)
        atomic_write_bytes(folder / labels_name, labels)
    except OSError as err:
        raise DataError(f"cannot write to the dataset cache {folder} ({err}); point STUDY_CACHE at a writable folder") from None
    return DatasetFiles(folder / images_name, folder / labels_name, f"cache:{folder} (downloaded from {images_url.rsplit('/', 1)[0]}/)")


def locate(name: str, split: str, data_root: str | Path | None = None, download: bool = True) -> DatasetFiles:
    """Find a split's IDX files: data root, kit cache, system copies, then a verified download into the cache.

    Args:
        name: registered dataset name, e.g. "mnist".
        split: "train" or "test".
        data_root: folder holding `<name>/<idx files>`; defaults to `$STUDY_DATA_ROOT` (folders joined by
            `os.pathsep`, searched in order), then the cache, then system folders (Debian's package).
        download: try the dataset's mirrors when no local copy exists.
    """
    info = get_dataset(name)
    images_name, labels_name = info.files(split)
    places = _places(info, data_root)
    for kind, folder in places:
        if (folder / images_name).is_file() and (folder / labels_name).is_file():
            return DatasetFiles(folder / images_name, folder / labels_name, f"{kind}:{folder}")
    looked = ", ".join(str(folder) for _, folder in places)
    if download:
        try:
            return _download_split(info, split)
        except DataError as err:
            reason = f"download failed: {err}"
    else:
        reason = "download disabled"
    hints = [hint for hint in (info.offline_hint, _FETCH_HINT.format(name=name)) if hint]
    raise DataError(f"{name} {split} split not found; looked in {looked}; {reason}; get it with: {' or '.join(hints)}")


def load_split(name: str, split: str, data_root: str | Path | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Images [N, 28, 28] uint8, labels [N] int64 and the source of one split (memoised: treat as read-only)."""
    files = locate(name, split, data_root, download)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (files.images_path, files.labels_path))
    images, labels = _read_cached(str(files.images_path), str(files.labels_path), len(get_dataset(name).classes), stamp)
    return images, labels, files.source
