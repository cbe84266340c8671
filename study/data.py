"""Datasets: registry, IDX reading, offline-first lookup and verified download, splits,
degradations and a device-resident batch loader."""

from __future__ import annotations

import difflib
import functools
import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from study.errors import DataError

SPLITS = ("train", "test")
IMAGE_SIZE = 28
DOWNLOAD_TIMEOUT_S = 10.0
# The kit's own checkout sits beside ../shared on its dev machines, which holds real test splits.
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

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
    system_dirs=(SHARED_DATASETS / "mnist",),
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
    system_dirs=(SHARED_DATASETS / "oracle-mnist",),
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
    root = data_root or os.environ.get("STUDY_DATA_ROOT")
    places = [("data-root", Path(root).expanduser() / info.name)] if root else []
    places.append(("cache", cache_dir() / info.name))
    places += [("shared" if SHARED_DATASETS in folder.parents else "system", folder) for folder in info.system_dirs]
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


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` through a temporary file in the same folder, so a crash leaves no partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        _write_atomic(folder / images_name, images)
        _write_atomic(folder / labels_name, labels)
    except OSError as err:
        raise DataError(f"cannot write to the dataset cache {folder} ({err}); point STUDY_CACHE at a writable folder") from None
    return DatasetFiles(folder / images_name, folder / labels_name, f"cache:{folder} (downloaded from {images_url.rsplit('/', 1)[0]}/)")


def locate(name: str, split: str, data_root: str | Path | None = None, download: bool = True) -> DatasetFiles:
    """Find a split's IDX files: data root, kit cache, system copies, then a verified download into the cache.

    Args:
        name: registered dataset name, e.g. "mnist".
        split: "train" or "test".
        data_root: folder holding `<name>/<idx files>`; defaults to `$STUDY_DATA_ROOT`.
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


# --------------------------------------------------------------------------- splits


def derive_seed(seed: int, tag: str) -> int:
    """A 63-bit seed derived from `seed` and a purpose tag, stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}:{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def stratified_split(labels: torch.Tensor, take: int | float, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (rest, taken) where `taken` holds `take` samples (a count, or a fraction) in class proportion.

    Args:
        labels: [N] integer class labels.
        take: number of samples to take, or a fraction of N in (0, 1).
        seed: seeds the per-class permutations.
    """
    count = round(take * len(labels)) if isinstance(take, float) else int(take)
    if not 0 <= count <= len(labels):
        raise DataError(f"cannot take {count} of {len(labels)} samples; use a count between 0 and {len(labels)}")
    classes, sizes = labels.unique(return_counts=True)
    quota = sizes.double() * count / len(labels)
    per_class = quota.floor().long()
    # Largest remainders get the leftover samples, so each class is within one of its exact share.
    leftover = count - int(per_class.sum())
    per_class[torch.argsort(quota - per_class, descending=True, stable=True)[:leftover]] += 1
    generator = torch.Generator().manual_seed(seed)
    taken = []
    for cls, k in zip(classes.tolist(), per_class.tolist(), strict=True):
        members = (labels == cls).nonzero().flatten()
        taken.append(members[torch.randperm(len(members), generator=generator)[:k]])
    chosen = torch.cat(taken).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[chosen] = False
    return keep.nonzero().flatten(), chosen


def stratified_folds(labels: torch.Tensor, folds: int, *, seed: int) -> list[torch.Tensor]:
    """Partition indices into `folds` sorted index tensors with class proportions kept (seeded)."""
    if folds < 2 or folds > len(labels):
        raise DataError(f"folds={folds} is invalid for {len(labels)} samples; use 2 <= folds <= {len(labels)}")
    generator = torch.Generator().manual_seed(seed)
    shuffled = []
    for cls in labels.unique().tolist():
        members = (labels == cls).nonzero().flatten()
        shuffled.append(members[torch.randperm(len(members), generator=generator)])
    # Dealing the class-grouped order round-robin keeps every class, and every fold's size,
    # within one sample of an equal share.
    order = torch.cat(shuffled)
    return [order[k::folds].sort().values for k in range(folds)]


@dataclass(frozen=True, eq=False)  # tensors have no single truth value to compare by
class Splits:
    """Train / validation / test (images uint8 [N, 28, 28], labels int64 [N]) with how they were made."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    dataset: str
    protocol: str  # "val-split" or "kfold-test:<folds>"
    source: str  # where the files came from
    degradation: str  # canonical degradation text, "none" when clean


PROTOCOLS = ("auto", "val-split", "kfold-test")


def make_splits(name: str, *, seed: int, val_fraction: float = 0.1, protocol: str = "auto", folds: int = 5,
                fold: int = 0, subset: int | None = None, val_subset: int | None = None,
                degrade: str | None = None, data_root: str | Path | None = None) -> Splits:
    """Train/val/test splits of a dataset under a named protocol, optionally subset and degraded.

    Args:
        name: registered dataset name.
        seed: seeds every random choice (val carve, folds, subsets, degradations).
        val_fraction: share of the training data held out, stratified, for validation.
        protocol: "val-split" (val carved from train, real test split), "kfold-test" (stratified
            k-fold on the test split: fold `fold` is the test part, the rest is train + val), or
            "auto" (val-split when the train split can be found or fetched, else kfold-test).
        folds: number of folds for "kfold-test".
        fold: which fold is the test part, 0 <= fold < folds.
        subset: keep a stratified subset of this many training samples (at most all of them).
        val_subset: likewise for the validation part.
        degrade: degradation text such as "lowres:7+noise:0.1", applied to all three parts.
        data_root: folder holding `<name>/<idx files>`; see `locate`.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; use one of: {', '.join(PROTOCOLS)}")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction} must lie strictly between 0 and 1")
    if protocol != "val-split" and not 0 <= fold < folds:
        raise DataError(f"fold={fold} must satisfy 0 <= fold < folds={folds}")
    spec = parse_degradation(degrade)
    test_x, test_y, test_source = load_split(name, "test", data_root)
    if protocol == "auto":
        try:
            locate(name, "train", data_root)
            protocol = "val-split"
        except DataError:
            protocol = "kfold-test"
    if protocol == "val-split":
        pool_x, pool_y, train_source = load_split(name, "train", data_root)
        source = f"train {train_source}; test {test_source}"
        label = "val-split"
    else:
        parts = stratified_folds(test_y, folds, seed=derive_seed(seed, "folds"))
        pool = torch.cat([part for i, part in enumerate(parts) if i != fold]).sort().values
        pool_x, pool_y = test_x[pool], test_y[pool]
        test_x, test_y = test_x[parts[fold]], test_y[parts[fold]]
        source = f"test {test_source} (fold {fold} of {folds} is the test part)"
        label = f"kfold-test:{folds}"
    train_idx, val_idx = stratified_split(pool_y, val_fraction, seed=derive_seed(seed, "val"))
    if subset is not None:
        keep = stratified_split(pool_y[train_idx], min(subset, len(train_idx)), seed=derive_seed(seed, "subset"))[1]
        train_idx = train_idx[keep]
    if val_subset is not None:
        keep = stratified_split(pool_y[val_idx], min(val_subset, len(val_idx)), seed=derive_seed(seed, "val_subset"))[1]
        val_idx = val_idx[keep]
    parts_xy = {"train": (pool_x[train_idx], pool_y[train_idx]), "val": (pool_x[val_idx], pool_y[val_idx]),
                "test": (test_x, test_y)}
    if spec:
        parts_xy = {part: (apply_degradation(x, spec, derive_seed(seed, f"degrade:{part}")), y)
                    for part, (x, y) in parts_xy.items()}
    return Splits(**parts_xy, dataset=name, protocol=label, source=source, degradation=format_degradation(spec))


# --------------------------------------------------------------------------- degradations


@dataclass(frozen=True)
class Degradation:
    """One image degradation: `kind` in DEGRADATIONS and its parameter."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


# kind -> (form shown to users, validity check on the parameter)
DEGRADATIONS = {
    "lowres": ("lowres:N (down to N×N then back up, 1 <= N <= 28, integer)", lambda v: v == int(v) and 1 <= v <= IMAGE_SIZE),
    "blur": ("blur:SIGMA (Gaussian blur, 0 < SIGMA <= 4 pixels)", lambda v: 0 < v <= 4),
    "noise": ("noise:STD (additive Gaussian noise in [0, 1] units, 0 < STD <= 1)", lambda v: 0 < v <= 1),
    "sp": ("sp:FRACTION (salt-and-pepper pixels, 0 < FRACTION <= 1)", lambda v: 0 < v <= 1),
}


def parse_degradation(text: str | None) -> tuple[Degradation, ...]:
    """Parse "kind:value[+kind:value...]" (or None / "none") into degradations applied left to right."""
    if text is None or text.strip().lower() in ("", "none"):
        return ()
    allowed = "; ".join(form for form, _ in DEGRADATIONS.values())
    steps = []
    for item in text.split("+"):
        kind, _, raw = item.strip().partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if kind not in DEGRADATIONS or not math.isfinite(value) or not DEGRADATIONS[kind][1](value):
            raise DataError(f"bad degradation {item.strip()!r} in {text!r}; allowed: {allowed}; join with '+', or 'none'")
        steps.append(Degradation(kind, value))
    return tuple(steps)


def format_degradation(spec: tuple[Degradation, ...]) -> str:
    """The canonical text of a parsed degradation ("none" when empty)."""
    return "+".join(map(str, spec)) or "none"


def apply_degradation(images: torch.Tensor, spec: str | tuple[Degradation, ...] | None, seed: int) -> torch.Tensor:
    """Degrade uint8 images [N, 28, 28] (or [N, 1, 28, 28]) in one batched pass; same seed, same result."""
    steps = parse_degradation(spec) if isinstance(spec, str) or spec is None else spec
    if not steps:
        return images
    generator = torch.Generator(device=images.device).manual_seed(seed)
    x = images.reshape(-1, 1, *images.shape[-2:]).float().div(255)
    for step in steps:
        if step.kind == "lowres":
            size = x.shape[-2:]
            x = torch.nn.functional.interpolate(x, size=int(step.value), mode="area")
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        elif step.kind == "blur":
            import torchvision.transforms.functional as TF  # noqa: N812 (torchvision's alias; slow to import)

            radius = math.ceil(3 * step.value)  # ±3 sigma holds 99.7% of the kernel's mass
            x = TF.gaussian_blur(x, [2 * radius + 1] * 2, [step.value] * 2)
        elif step.kind == "noise":
            x = x + step.value * torch.randn(x.shape, generator=generator, device=x.device)
        else:  # sp: one uniform draw per pixel; below value/2 is pepper, up to value is salt
            draw = torch.rand(x.shape, generator=generator, device=x.device)
            x = torch.where(draw < step.value / 2, 0.0, torch.where(draw < step.value, 1.0, x))
        x = x.clamp(0.0, 1.0)
    return x.mul(255).round().to(torch.uint8).reshape(images.shape)


# --------------------------------------------------------------------------- device-resident loading


AUGMENTS = {
    "crop": "crop:PAD (random crop after zero padding, 1 <= PAD <= 8)",
    "flip": "flip:h (random horizontal flip)",
}


def parse_augment(text: str | None) -> dict[str, int | str]:
    """Parse "crop:2[+flip:h]" (or None / "none") into {kind: parameter}."""
    if text is None or text.strip().lower() in ("", "none"):
        return {}
    allowed = "; ".join(AUGMENTS.values())
    found: dict[str, int | str] = {}
    for item in text.split("+"):
        kind, _, raw = item.strip().partition(":")
        if kind == "crop" and raw.isdigit() and 1 <= int(raw) <= 8:
            found[kind] = int(raw)
        elif kind == "flip" and raw == "h":
            found[kind] = raw
        else:
            raise DataError(f"bad augmentation {item.strip()!r} in {text!r}; allowed: {allowed}; join with '+', or 'none'")
    return found


class DeviceLoader:
    """Batches from a dataset held whole on the device as uint8: seeded shuffle, normalise and augment per batch.

    Args:
        images: [N, 28, 28] or [N, 1, 28, 28] uint8.
        labels: [N] integer labels.
        batch_size: samples per batch.
        shuffle: draw a new seeded order each epoch (epoch e of seed s is the same order in every run).
        seed: seeds the order and the augmentation.
        device: where the data lives and batches are made.
        mean, std: inputs are (u8 / 255 - mean) / std; the defaults give [0, 1] as in the paper.
        augment: "crop:PAD", "flip:h", joined with '+', or None.
        drop_last: drop the final short batch.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, shuffle: bool, seed: int,
                 device: str | torch.device = "cpu", mean: float = 0.0, std: float = 1.0,
                 augment: str | None = None, drop_last: bool = False):
        if images.dtype != torch.uint8 or len(images) != len(labels):
            raise DataError(f"DeviceLoader needs uint8 images and as many labels (got {images.dtype}, "
                            f"{len(images)} images, {len(labels)} labels)")
        self.device = torch.device(device)
        self.images = images.reshape(len(images), 1, *images.shape[-2:]).to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.augment = parse_augment(augment)
        # One fused multiply-add per batch instead of divide, subtract, divide.
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std
        self.epoch = 0

    def __len__(self) -> int:
        """Number of batches per epoch."""
        full, rest = divmod(len(self.labels), self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def _generator(self, tag: str) -> torch.Generator:
        """A generator for this epoch, so epoch e of seed s draws the same numbers in every run."""
        return torch.Generator(device=self.device).manual_seed(derive_seed(self.seed, f"{tag}:{self.epoch}"))

    def _crop(self, batch: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
        """Zero-pad the batch and cut a randomly offset window per sample, by index arithmetic."""
        n, _, height, width = batch.shape
        padded = torch.nn.functional.pad(batch, (pad, pad, pad, pad))
        dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator, device=self.device)
        rows = (dy + torch.arange(height, device=self.device))[:, :, None]  # N x H x 1
        cols = (dx + torch.arange(width, device=self.device))[:, None, :]  # N x 1 x W
        return padded[torch.arange(n, device=self.device)[:, None, None], 0, rows, cols].unsqueeze(1)

    def __iter__(self):
        """Yield (x float32 [B, 1, 28, 28], y int64 [B]) for one epoch, then advance the epoch."""
        count = len(self.labels)
        if self.shuffle:
            order = torch.randperm(count, generator=self._generator("order"), device=self.device)
        else:
            order = torch.arange(count, device=self.device)
        augment_rng = self._generator("augment") if self.augment else None
        self.epoch += 1
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            batch = self.images.index_select(0, index)  # several times faster than images[index] on CPU
            if "crop" in self.augment:
                batch = self._crop(batch, self.augment["crop"], augment_rng)
            if "flip" in self.augment:
                flip = torch.rand(len(index), generator=augment_rng, device=self.device) < 0.5
                batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
            yield batch.float().mul_(self.scale).add_(self.shift), self.labels.index_select(0, index)
