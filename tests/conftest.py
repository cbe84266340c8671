"""Shared fixtures: where the real datasets of the kit's dev machines are."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """`../shared/datasets` beside the repository: real MNIST and Oracle-MNIST test splits."""
    root = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if not root.is_dir():
        pytest.skip("../shared/datasets not present (only on the kit's dev machines)")
    return root


@pytest.fixture(scope="session")
def fashion_root() -> Path:
    """The Debian package's flat folder of Fashion-MNIST IDX files."""
    root = Path("/usr/share/datasets/fashion-mnist")
    if not root.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed: apt-get install -y dataset-fashion-mnist")
    return root
