"""Downloads over real HTTP: a local `http.server` plays the mirrors of a test-only dataset.

The MD5 check accepts the published file and caches it, a mirror serving a wrong MD5 (or nothing)
falls back to the next one, and a cache the kit cannot write to ends in one line naming the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import stat
import threading
from pathlib import Path

import pytest
import torch

from study import data
from study.data import sources
from study.errors import DataError
from tests.helpers import idx_bytes

IMAGES = torch.randint(0, 256, (20, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
LABELS = torch.arange(20) % 10
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records each path asked for, and logs nothing."""

    requested: list[str]

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        self.requested.append(self.path)
        super().do_GET()


@pytest.fixture
def mirrors(tmp_path, monkeypatch):
    """Two mirror folders served over HTTP on localhost; yields (folders, base URLs, requested paths)."""
    root = tmp_path / "www"
    folders = [root / "one", root / "two"]
    for folder in folders:
        folder.mkdir(parents=True)
    requested: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("STUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STUDY_DATA_ROOT", raising=False)
    monkeypatch.setattr(sources, "_UNREACHABLE", set())
    try:
        yield folders, [f"{base}/one/", f"{base}/two/"], requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _register(monkeypatch, urls: list[str], md5: dict[str, bytes] | None = None) -> data.DatasetInfo:
    """Register "local-test" (like MNIST, but served by `urls`) in a registry the test may change."""
    published = tuple((name, hashlib.md5(payload).hexdigest()) for name, payload in (md5 or {}).items())
    info = dataclasses.replace(data.get_dataset("mnist"), name="local-test", mirrors=tuple(urls), md5=published,
                               system_dirs=(), offline_hint="")
    monkeypatch.setattr(sources, "DATASETS", dict(sources.DATASETS))
    return data.register_dataset(info)


def _payloads() -> dict[str, bytes]:
    return {TEST_FILES[0]: idx_bytes(IMAGES), TEST_FILES[1]: idx_bytes(LABELS)}


def _publish(folder: Path, payloads: dict[str, bytes]) -> None:
    for name, payload in payloads.items():
        (folder / name).write_bytes(payload)


def test_file_with_the_published_md5_is_accepted_and_cached(mirrors, monkeypatch, tmp_path):
    folders, urls, requested = mirrors
    payloads = _payloads()
    _publish(folders[0], payloads)
    _register(monkeypatch, urls, md5=payloads)
    images, labels, source = data.load_split("local-test", "test")
    cached = tmp_path / "cache" / "datasets" / "local-test"
    assert torch.equal(images, IMAGES) and torch.equal(labels, LABELS)
    assert source == f"cache:{cached} (downloaded from {urls[0].rstrip('/')}/)"
    assert requested == [f"/one/{TEST_FILES[0]}", f"/one/{TEST_FILES[1]}"]
    assert {p.name: p.read_bytes() for p in cached.iterdir()} == payloads  # cached byte for byte
    # The next lookup is answered by the cache: the mirror sees no new request.
    assert data.locate("local-test", "test").source == f"cache:{cached}"
    assert len(requested) == 2


def test_wrong_md5_on_the_first_mirror_falls_back_to_the_second(mirrors, monkeypatch, tmp_path):
    folders, urls, requested = mirrors
    payloads = _payloads()
    tampered = dict(payloads, **{TEST_FILES[0]: idx_bytes(255 - IMAGES)})  # a valid IDX file, but not the published one
    _publish(folders[0], tampered)
    _publish(folders[1], payloads)
    _register(monkeypatch, urls, md5=payloads)
    images, _, source = data.load_split("local-test", "test")
    assert torch.equal(images, IMAGES)  # the tampered copy never reached the cache
    assert source.endswith(f"(downloaded from {urls[1].rstrip('/')}/)")
    assert requested[:2] == [f"/one/{TEST_FILES[0]}", f"/two/{TEST_FILES[0]}"]
    cached = tmp_path / "cache" / "datasets" / "local-test" / TEST_FILES[0]
    assert cached.read_bytes() == payloads[TEST_FILES[0]]


def test_missing_file_on_the_first_mirror_falls_back_to_the_second(mirrors, monkeypatch):
    folders, urls, requested = mirrors
    _publish(folders[1], _payloads())
    _register(monkeypatch, urls)  # no published MD5: the parse alone vouches for the file
    _, labels, source = data.load_split("local-test", "test")
    assert torch.equal(labels, LABELS) and source.endswith(f"(downloaded from {urls[1].rstrip('/')}/)")
    assert requested[0] == f"/one/{TEST_FILES[0]}"


def test_every_mirror_wrong_is_one_line_naming_each_url(mirrors, monkeypatch, tmp_path):
    folders, urls, _ = mirrors
    payloads = _payloads()
    bad = dict(payloads, **{TEST_FILES[0]: b"not the file"})
    _publish(folders[0], bad)
    _publish(folders[1], bad)
    _register(monkeypatch, urls, md5=payloads)
    with pytest.raises(DataError) as err:
        data.locate("local-test", "test")
    message = str(err.value)
    assert "\n" not in message
    assert f"{urls[0]}{TEST_FILES[0]} gave a file with the wrong MD5" in message
    assert f"{urls[1]}{TEST_FILES[0]} gave a file with the wrong MD5" in message
    assert not (tmp_path / "cache").exists()


def _read_only_cache(tmp_path: Path) -> Path:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(folder, os.W_OK):  # root ignores the mode bits
        folder.chmod(stat.S_IRWXU)
        pytest.skip("this user can write to a read-only folder (root)")
    return folder


def _file_in_the_way(tmp_path: Path) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    return blocker


@pytest.mark.parametrize("unwritable", [_read_only_cache, _file_in_the_way])
def test_unwritable_cache_is_one_line_data_error(mirrors, monkeypatch, tmp_path, unwritable):
    folders, urls, _ = mirrors
    payloads = _payloads()
    _publish(folders[0], payloads)
    _register(monkeypatch, urls, md5=payloads)
    cache = unwritable(tmp_path)
    monkeypatch.setenv("STUDY_CACHE", str(cache))
    try:
        with pytest.raises(DataError) as err:
            data.locate("local-test", "test")
    finally:
        cache.chmod(stat.S_IRWXU)
    message = str(err.value)
    assert "\n" not in message
    assert f"cannot write to the dataset cache {cache / 'datasets' / 'local-test'}" in message
    assert message.endswith("point STUDY_CACHE at a writable folder; get it with: "
                            + sources._FETCH_HINT.format(name="local-test"))
