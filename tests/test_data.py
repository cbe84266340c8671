"""Datasets: real IDX files, corruption handling, offline lookup, splits, degradations, DeviceLoader, CLI."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from study import data
from study.data import sources
from study.errors import DataError
from tests.helpers import idx_bytes, write_split

REPO = Path(__file__).resolve().parents[1]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def indexed_images(count: int) -> torch.Tensor:
    """Images whose first two pixels encode their own index, so splits can be traced back."""
    images = torch.zeros(count, 28, 28, dtype=torch.uint8)
    images[:, 0, 0] = torch.arange(count) % 256
    images[:, 0, 1] = torch.arange(count) // 256
    return images


def image_index(images: torch.Tensor) -> torch.Tensor:
    """Recover the indices written by `indexed_images`."""
    return images[:, 0, 0].long() + 256 * images[:, 0, 1].long()


def files_under(folder: Path) -> list[Path]:
    """Every file below `folder` (none if it does not exist)."""
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


class FakeResponse(io.BytesIO):
    """What urlopen returns: readable and usable as a context manager."""


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> Path:
    """An empty kit cache, no data root, and no network unless a test serves one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("STUDY_CACHE", str(cache))
    monkeypatch.delenv("STUDY_DATA_ROOT", raising=False)
    monkeypatch.setattr(sources, "_UNREACHABLE", set())

    def offline(url, timeout=None):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return cache


def serve(monkeypatch, payloads: dict[str, bytes]) -> list[str]:
    """Make urlopen answer from `payloads` (keyed by file name); returns the URLs requested."""
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return FakeResponse(payloads[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


# --------------------------------------------------------------------------- registry and real files


def test_registry_lists_four_datasets_and_rejects_duplicates():
    assert data.list_datasets() == ["mnist", "fashion-mnist", "kmnist", "oracle-mnist"]
    for info in data.DATASETS.values():
        assert len(info.classes) == 10 and len(info.mirrors) >= 1 and 0 < info.mean < 1 and 0 < info.std < 1
    with pytest.raises(ValueError, match="already registered"):
        data.register_dataset(data.get_dataset("mnist"))


def test_unknown_dataset_lists_known_names_closest_first():
    with pytest.raises(DataError, match=r"unknown dataset 'fashion'; known datasets: fashion-mnist, "):
        data.get_dataset("fashion")


def test_real_mnist_test_split(shared_datasets):
    images, labels, source = data.load_split("mnist", "test", data_root=shared_datasets)
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert labels.bincount().tolist() == MNIST_TEST_COUNTS
    assert source == f"data-root:{shared_datasets / 'mnist'}"
    assert data.load_split("mnist", "test", data_root=shared_datasets)[0] is images  # memoised


def test_real_oracle_mnist_test_split(shared_datasets):
    images, labels, _ = data.load_split("oracle-mnist", "test", data_root=shared_datasets)
    assert images.shape == (3_000, 28, 28) and images.dtype == torch.uint8
    assert labels.bincount().tolist() == [300] * 10


def test_data_roots_of_the_environment_are_searched_in_order(shared_datasets, tmp_path, monkeypatch):
    # no development path lives in the library: a machine's extra data folders come from $STUDY_DATA_ROOT
    monkeypatch.setenv("STUDY_DATA_ROOT", f"{tmp_path / 'empty'}{os.pathsep}{shared_datasets}")
    assert data.locate("mnist", "test").source == f"data-root:{shared_datasets / 'mnist'}"
    monkeypatch.setenv("STUDY_DATA_ROOT", str(tmp_path / "empty"))
    monkeypatch.setenv("STUDY_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="mnist"):
        data.locate("mnist", "test", download=False)


def test_debian_fashion_mnist(fashion_root):
    for split, count in (("train", 60_000), ("test", 10_000)):
        images, labels, source = data.load_split("fashion-mnist", split)
        assert images.shape == (count, 28, 28) and images.dtype == torch.uint8
        assert labels.bincount().tolist() == [count // 10] * 10
        assert source == f"system:{fashion_root}"


# --------------------------------------------------------------------------- corrupt files


GOOD_IMAGES = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
GOOD_LABELS = torch.arange(10, dtype=torch.uint8)


def corrupt_truncated_gzip(folder: Path) -> None:
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])


def corrupt_magic(folder: Path) -> None:
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(idx_bytes(GOOD_IMAGES, magic=2049))


def corrupt_count(folder: Path) -> None:
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(idx_bytes(GOOD_LABELS[:9]))


def corrupt_dims(folder: Path) -> None:
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(idx_bytes(torch.zeros(10, 32, 32)))


def corrupt_short_data(folder: Path) -> None:
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(idx_bytes(GOOD_IMAGES[:9], dims=(10, 28, 28)))


def corrupt_label_range(folder: Path) -> None:
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(idx_bytes(GOOD_LABELS + 3))


@pytest.mark.parametrize(("corrupt", "message"), [
    (corrupt_truncated_gzip, r"t10k-images-idx3-ubyte\.gz: corrupt gzip data .*; delete the file and fetch"),
    (corrupt_magic, r"magic number 2049 \(IDX labels\), expected 2051 \(IDX images\); replace it with"),
    (corrupt_count, r"holds 10 images but .*t10k-labels-idx1-ubyte\.gz holds 9 labels; .* fetch the pair again"),
    (corrupt_dims, r"images are 32×32, expected 28×28; this kit reads 28×28 IDX datasets only"),
    (corrupt_short_data, r"7056 data bytes, shorter than the 7840 its header promises for 10 items; delete the file"),
    (corrupt_label_range, r"label 12 outside 0\.\.9; the file belongs to another dataset"),
])
def test_corrupt_idx_files_raise_one_line_data_errors(tmp_path, isolated, corrupt, message):
    folder = write_split(tmp_path / "root", "kmnist", "test", GOOD_IMAGES, GOOD_LABELS)
    assert data.load_split("kmnist", "test", data_root=tmp_path / "root")[0].equal(GOOD_IMAGES)
    corrupt(folder)
    with pytest.raises(DataError, match=message) as err:
        data.load_split("kmnist", "test", data_root=tmp_path / "root")
    assert "\n" not in str(err.value)
    assert files_under(isolated) == []


# --------------------------------------------------------------------------- lookup and download


def test_missing_offline_names_dataset_split_places_and_fix(tmp_path, isolated):
    with pytest.raises(DataError) as err:
        data.locate("kmnist", "train", data_root=tmp_path / "root")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("kmnist train split not found; looked in ")
    for place in (tmp_path / "root" / "kmnist", isolated / "datasets" / "kmnist"):
        assert str(place) in message
    assert "http://codh.rois.ac.jp/kmnist/dataset/kmnist/train-images-idx3-ubyte.gz failed" in message
    assert "python -m study data fetch kmnist" in message
    assert files_under(isolated) == []


def test_missing_fashion_mnist_suggests_the_debian_package(monkeypatch):
    info = dataclasses.replace(data.get_dataset("fashion-mnist"), system_dirs=())
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", info)
    with pytest.raises(DataError, match="get it with: apt-get install -y dataset-fashion-mnist or run once with internet"):
        data.locate("fashion-mnist", "test")


def test_download_disabled_says_so():
    with pytest.raises(DataError, match="download disabled"):
        data.locate("kmnist", "test", download=False)


def test_unreachable_mirror_is_not_retried_in_the_same_process(monkeypatch):
    calls = []

    def offline(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    for _ in range(3):
        with pytest.raises(DataError):
            data.locate("kmnist", "test")
    assert len(calls) == 1


def test_download_is_verified_parsed_and_cached(monkeypatch, isolated):
    requested = serve(monkeypatch, {"train-images-idx3-ubyte.gz": idx_bytes(GOOD_IMAGES),
                                    "train-labels-idx1-ubyte.gz": idx_bytes(GOOD_LABELS)})
    files = data.locate("oracle-mnist", "train")
    folder = isolated / "datasets" / "oracle-mnist"
    assert requested[0].startswith("https://raw.githubusercontent.com/wm-bupt/oracle-mnist/")
    assert files.source.startswith(f"cache:{folder} (downloaded from https://raw.githubusercontent.com/")
    assert sorted(path.name for path in files_under(isolated)) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert data.locate("oracle-mnist", "train").source == f"cache:{folder}"
    assert len(requested) == 2  # the second lookup is served by the cache


def test_download_with_wrong_md5_leaves_nothing_behind(monkeypatch, isolated):
    serve(monkeypatch, {"t10k-images-idx3-ubyte.gz": idx_bytes(GOOD_IMAGES),
                        "t10k-labels-idx1-ubyte.gz": idx_bytes(GOOD_LABELS)})
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz gave a file with the wrong MD5") as err:
        data.locate("kmnist", "test")
    assert "\n" not in str(err.value)
    assert files_under(isolated) == []


def test_corrupt_download_without_md5_leaves_nothing_behind(monkeypatch, isolated):
    serve(monkeypatch, {"train-images-idx3-ubyte.gz": idx_bytes(GOOD_IMAGES)[:-100],
                        "train-labels-idx1-ubyte.gz": idx_bytes(GOOD_LABELS)})
    with pytest.raises(DataError, match=r"download failed: .*train-images-idx3-ubyte\.gz: corrupt gzip data") as err:
        data.locate("oracle-mnist", "train")
    assert "\n" not in str(err.value)
    assert files_under(isolated) == []


def test_data_root_argument_overrides_environment(tmp_path, monkeypatch):
    write_split(tmp_path / "env", "kmnist", "test", GOOD_IMAGES, GOOD_LABELS)
    write_split(tmp_path / "arg", "kmnist", "test", GOOD_IMAGES, GOOD_LABELS)
    monkeypatch.setenv("STUDY_DATA_ROOT", str(tmp_path / "env"))
    assert data.locate("kmnist", "test").source == f"data-root:{tmp_path / 'env' / 'kmnist'}"
    assert data.locate("kmnist", "test", data_root=tmp_path / "arg").source == f"data-root:{tmp_path / 'arg' / 'kmnist'}"


# --------------------------------------------------------------------------- splits


UNEVEN_LABELS = torch.cat([torch.full((count,), cls) for cls, count in enumerate([50, 123, 7, 300, 91, 64, 18, 222, 75, 40])])


@pytest.mark.parametrize("take", [0.1, 0.25, 97])
def test_stratified_split_keeps_class_proportions(take):
    rest, taken = data.stratified_split(UNEVEN_LABELS, take, seed=3)
    total = len(UNEVEN_LABELS)
    expected_count = round(take * total) if isinstance(take, float) else take
    assert len(taken) == expected_count
    assert torch.cat([rest, taken]).sort().values.equal(torch.arange(total))  # disjoint and complete
    share = expected_count / total
    for cls, size in enumerate(UNEVEN_LABELS.bincount().tolist()):
        assert abs(int((UNEVEN_LABELS[taken] == cls).sum()) - share * size) <= 1


def test_stratified_split_is_seeded():
    first = data.stratified_split(UNEVEN_LABELS, 0.2, seed=1)[1]
    assert first.equal(data.stratified_split(UNEVEN_LABELS, 0.2, seed=1)[1])
    assert not first.equal(data.stratified_split(UNEVEN_LABELS, 0.2, seed=2)[1])


def test_stratified_folds_partition_and_balance():
    folds = data.stratified_folds(UNEVEN_LABELS, 5, seed=0)
    assert torch.cat(folds).sort().values.equal(torch.arange(len(UNEVEN_LABELS)))
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    for fold in folds:
        counts = UNEVEN_LABELS[fold].bincount(minlength=10)
        assert ((counts - UNEVEN_LABELS.bincount() / 5).abs() <= 1).all()


def synthetic_root(tmp_path: Path, name: str = "kmnist", train: int = 1000, test: int = 500) -> Path:
    """A data root with index-traceable train and test splits of `name` (balanced labels)."""
    root = tmp_path / "root"
    for split, count in (("train", train), ("test", test)):
        if count:
            write_split(root, name, split, indexed_images(count), torch.arange(count) % 10)
    return root


def test_val_split_protocol_carves_stratified_val_from_train(tmp_path):
    root = synthetic_root(tmp_path)
    splits = data.make_splits("kmnist", seed=0, data_root=root)
    assert splits.protocol == "val-split" and splits.degradation == "none"
    assert splits.source == f"train data-root:{root / 'kmnist'}; test data-root:{root / 'kmnist'}"
    train, val = image_index(splits.train[0]), image_index(splits.val[0])
    assert len(val) == 100 and splits.val[1].bincount().tolist() == [10] * 10
    assert torch.cat([train, val]).sort().values.equal(torch.arange(1000))
    assert image_index(splits.test[0]).equal(torch.arange(500))
    again = data.make_splits("kmnist", seed=0, data_root=root)
    assert again.val[0].equal(splits.val[0])
    assert not data.make_splits("kmnist", seed=1, data_root=root).val[0].equal(splits.val[0])


def test_kfold_test_protocol_partitions_the_test_split(tmp_path):
    root = synthetic_root(tmp_path, train=0)
    test_parts = []
    for fold in range(5):
        splits = data.make_splits("kmnist", seed=7, fold=fold, data_root=root)  # no train split: auto -> k-fold
        assert splits.protocol == "kfold-test:5"
        parts = [image_index(part[0]) for part in (splits.train, splits.val, splits.test)]
        assert torch.cat(parts).sort().values.equal(torch.arange(500))
        assert len(parts[1]) == 40 and splits.test[1].bincount().tolist() == [10] * 10
        test_parts.append(parts[2])
    assert torch.cat(test_parts).sort().values.equal(torch.arange(500))


def test_val_split_protocol_refuses_a_missing_train_split(tmp_path):
    with pytest.raises(DataError, match="kmnist train split not found"):
        data.make_splits("kmnist", seed=0, protocol="val-split", data_root=synthetic_root(tmp_path, train=0))


def test_real_mnist_falls_back_to_kfold_on_its_test_split(shared_datasets):
    splits = data.make_splits("mnist", seed=0, data_root=shared_datasets)
    assert splits.protocol == "kfold-test:5" and "fold 0 of 5" in splits.source
    assert [len(part[1]) for part in (splits.train, splits.val, splits.test)] == [7200, 800, 2000]


def test_subsets_are_stratified_and_capped(tmp_path):
    root = synthetic_root(tmp_path)
    splits = data.make_splits("kmnist", seed=0, subset=200, val_subset=50, data_root=root)
    assert splits.train[1].bincount().tolist() == [20] * 10
    assert len(splits.val[1]) == 50 and len(splits.test[1]) == 500
    assert len(data.make_splits("kmnist", seed=0, subset=10**6, data_root=root).train[1]) == 900


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"protocol": "holdout"}, "unknown protocol 'holdout'"),
    ({"val_fraction": 1.5}, "val_fraction=1.5"),
    ({"fold": 5}, "fold=5 must satisfy 0 <= fold < folds=5"),
    ({"degrade": "zoom:2"}, "bad degradation 'zoom:2'"),
])
def test_make_splits_validates_arguments(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        data.make_splits("kmnist", seed=0, data_root=synthetic_root(tmp_path), **kwargs)


def test_make_splits_degrades_every_split_with_its_own_seed(tmp_path):
    root = synthetic_root(tmp_path, train=200, test=100)
    clean = data.make_splits("kmnist", seed=0, data_root=root)
    noisy = data.make_splits("kmnist", seed=0, degrade="noise:0.2", data_root=root)
    assert noisy.degradation == "noise:0.2"
    assert noisy.train[0].equal(data.make_splits("kmnist", seed=0, degrade="noise:0.2", data_root=root).train[0])
    for part in ("train", "val", "test"):
        assert not getattr(noisy, part)[0].equal(getattr(clean, part)[0])
        assert getattr(noisy, part)[1].equal(getattr(clean, part)[1])
    # Same blank images in val and test parts would get the same noise if the seeds were shared.
    assert not noisy.val[0][:, 5:].equal(noisy.test[0][: len(noisy.val[0]), 5:])


# --------------------------------------------------------------------------- degradations


def test_parse_degradation_forms():
    assert data.parse_degradation(None) == () and data.parse_degradation("none") == ()
    spec = data.parse_degradation("lowres:14+noise:0.1")
    assert spec == (data.Degradation("lowres", 14.0), data.Degradation("noise", 0.1))
    assert data.format_degradation(spec) == "lowres:14+noise:0.1"


@pytest.mark.parametrize("text", ["zoom:2", "lowres:7.5", "lowres:0", "blur:-1", "noise:abc", "sp:2", "lowres", "noise:nan"])
def test_parse_degradation_rejects_bad_forms(text):
    with pytest.raises(DataError, match=r"bad degradation .* allowed: lowres:N .* blur:SIGMA .* noise:STD .* sp:FRACTION"):
        data.parse_degradation(text)


RANDOM_IMAGES = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
GRAY = torch.full((64, 28, 28), 128, dtype=torch.uint8)


def rank_ratios(images: torch.Tensor, k: int) -> torch.Tensor:
    """Per image, the ratio of the (k+1)-th to the first singular value: near 0 when rank <= k."""
    values = torch.linalg.svdvals(images.double())
    return values[:, k] / values[:, 0]


def test_lowres_removes_detail_beyond_its_resolution():
    assert rank_ratios(RANDOM_IMAGES, 7).min() > 0.1
    low7 = data.apply_degradation(RANDOM_IMAGES, "lowres:7", seed=0)
    low14 = data.apply_degradation(RANDOM_IMAGES, "lowres:14", seed=0)
    assert low7.shape == RANDOM_IMAGES.shape and low7.dtype == torch.uint8
    # Bilinear up-sampling from N×N spans N basis images per axis: rank <= N up to uint8 rounding.
    assert rank_ratios(low7, 7).max() < 0.002 and rank_ratios(low14, 14).max() < 0.002
    assert rank_ratios(low14, 7).min() > 0.01


def test_blur_smooths_and_keeps_brightness():
    blurred = data.apply_degradation(RANDOM_IMAGES, "blur:1.0", seed=0).float()
    variation = lambda x: x.diff(dim=-1).abs().mean()  # noqa: E731
    assert variation(blurred) < 0.3 * variation(RANDOM_IMAGES.float())
    assert abs(blurred.mean() - RANDOM_IMAGES.float().mean()) < 2


def test_noise_is_zero_mean_with_the_requested_spread_and_seeded():
    noisy = data.apply_degradation(GRAY, "noise:0.1", seed=5)
    change = (noisy.float() - GRAY.float()) / 255
    assert (change != 0).float().mean() > 0.9
    assert abs(float(change.mean())) < 0.005 and abs(float(change.std()) - 0.1) < 0.005
    assert noisy.equal(data.apply_degradation(GRAY, "noise:0.1", seed=5))
    assert not noisy.equal(data.apply_degradation(GRAY, "noise:0.1", seed=6))


def test_salt_and_pepper_fraction():
    noisy = data.apply_degradation(GRAY, "sp:0.05", seed=0)
    salt, pepper = (noisy == 255).float().mean(), (noisy == 0).float().mean()
    assert abs(float(salt + pepper) - 0.05) < 0.005 and abs(float(salt - pepper)) < 0.005
    assert ((noisy == 128) | (noisy == 0) | (noisy == 255)).all()


def test_degradations_compose_left_to_right():
    noise_then_low = data.apply_degradation(GRAY, "noise:0.1+lowres:7", seed=0)
    low_then_noise = data.apply_degradation(GRAY, "lowres:7+noise:0.1", seed=0)
    assert rank_ratios(noise_then_low, 7).max() < 0.002 and rank_ratios(low_then_noise, 7).min() > 0.02
    assert data.apply_degradation(GRAY, "none", seed=0) is GRAY


# --------------------------------------------------------------------------- DeviceLoader


def identity_loader(count: int = 1000, **kwargs) -> data.DeviceLoader:
    """A loader whose labels are the sample indices."""
    options = {"batch_size": 128, "shuffle": True, "seed": 0} | kwargs
    return data.DeviceLoader(indexed_images(count), torch.arange(count), **options)


def epoch_order(loader: data.DeviceLoader) -> torch.Tensor:
    return torch.cat([y for _, y in loader])


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Undo the default [0, 1] scaling of a batch."""
    return (x * 255).round().to(torch.uint8)


def test_loader_covers_every_sample_once_per_epoch():
    loader = identity_loader()
    assert len(loader) == 8
    shapes = [(tuple(x.shape), x.dtype, y.dtype) for x, y in loader]
    assert shapes[0] == ((128, 1, 28, 28), torch.float32, torch.int64) and shapes[-1][0] == (104, 1, 28, 28)
    for _ in range(2):
        assert epoch_order(loader).sort().values.equal(torch.arange(1000))
    dropped = identity_loader(drop_last=True)
    assert len(dropped) == 7 and len(epoch_order(dropped)) == 896


def test_loader_order_is_seeded_per_epoch():
    first, second = identity_loader(), identity_loader()
    epoch0 = epoch_order(first)
    assert epoch0.equal(epoch_order(second))
    assert not epoch0.equal(torch.arange(1000))
    assert not epoch_order(first).equal(epoch0)
    assert not epoch_order(identity_loader(seed=1)).equal(epoch0)
    assert epoch_order(identity_loader(shuffle=False)).equal(torch.arange(1000))


def test_loader_normalises():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).repeat_interleave(784).reshape(3, 28, 28)
    x, _ = next(iter(data.DeviceLoader(images, torch.zeros(3), batch_size=3, shuffle=False, seed=0)))
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    mnist = data.get_dataset("mnist")
    loader = data.DeviceLoader(images, torch.zeros(3), batch_size=3, shuffle=False, seed=0, mean=mnist.mean, std=mnist.std)
    expected = (torch.tensor([0.0, 0.2, 1.0]) - mnist.mean) / mnist.std
    assert torch.allclose(next(iter(loader))[0][:, 0, 14, 14], expected, atol=1e-6)


def test_crop_augment_shifts_each_sample_within_the_padding_and_is_seeded():
    images = torch.randint(1, 256, (64, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    make = lambda: data.DeviceLoader(images, torch.arange(64), batch_size=64, shuffle=False, seed=0, augment="crop:2")  # noqa: E731
    x, _ = next(iter(make()))
    assert x.shape == (64, 1, 28, 28) and x.equal(next(iter(make()))[0])
    x, padded = to_uint8(x), torch.nn.functional.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(64):
        matches = [(dy, dx) for dy in range(5) for dx in range(5) if padded[i, dy:dy + 28, dx:dx + 28].equal(x[i, 0])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 10


def test_flip_augment_flips_about_half():
    images = torch.randint(0, 256, (256, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    loader = data.DeviceLoader(images, torch.arange(256), batch_size=256, shuffle=False, seed=0, augment="flip:h")
    x = to_uint8(next(iter(loader))[0][:, 0])
    flipped = (x == images.flip(-1)).flatten(1).all(1)
    assert ((x == images).flatten(1).all(1) | flipped).all()
    assert 80 < int(flipped.sum()) < 176


@pytest.mark.parametrize("augment", ["crop:0", "crop:x", "flip:v", "rotate:10"])
def test_loader_rejects_unknown_augmentations(augment):
    with pytest.raises(DataError, match=r"bad augmentation .* allowed: crop:PAD .* flip:h"):
        identity_loader(augment=augment)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_on_cuda_covers_every_sample():
    loader = identity_loader(device="cuda", augment="crop:2+flip:h")
    order = epoch_order(loader)
    assert order.device.type == "cuda" and order.sort().values.cpu().equal(torch.arange(1000))


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "STUDY_DATA_ROOT"} | {"STUDY_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "study", "data", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_check_prints_class_counts(shared_datasets, isolated):
    result = run_cli("check", "mnist", "--data-root", str(shared_datasets), cache=isolated)
    assert result.returncode == 0, result.stderr
    assert "mnist test 10000 images  classes: " + " ".join(map(str, MNIST_TEST_COUNTS)) in result.stdout
    assert "mnist train: not available here, skipped" in result.stdout or "mnist train 60000 images" in result.stdout


def test_cli_check_on_corrupt_data_exits_3_with_one_line(tmp_path, isolated):
    folder = write_split(tmp_path / "root", "kmnist", "test", GOOD_IMAGES, GOOD_LABELS)
    corrupt_magic(folder)
    result = run_cli("check", "kmnist", "--data-root", str(tmp_path / "root"), cache=isolated)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ") and "magic number 2049" in result.stderr
