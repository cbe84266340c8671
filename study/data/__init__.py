"""Datasets: where images come from (`sources`), how a run splits them (`splits`), how a study degrades
them (`degrade`) and how they reach the model (`loader`). The names below are the package's API."""

from study.data.degrade import (
    DEGRADATIONS,
    Degradation,
    apply_degradation,
    format_degradation,
    parse_degradation,
)
from study.data.loader import AUGMENTS, DeviceLoader, parse_augment
from study.data.sources import (
    DATASETS,
    DOWNLOAD_TIMEOUT_S,
    IMAGE_SIZE,
    SPLITS,
    DatasetFiles,
    DatasetInfo,
    cache_dir,
    get_dataset,
    list_datasets,
    load_split,
    locate,
    read_idx_pair,
    register_dataset,
)
from study.data.splits import (
    PROTOCOLS,
    Splits,
    derive_seed,
    make_splits,
    stratified_folds,
    stratified_split,
)

__all__ = [
    "AUGMENTS", "DATASETS", "DEGRADATIONS", "DOWNLOAD_TIMEOUT_S", "IMAGE_SIZE", "PROTOCOLS", "SPLITS", "DatasetFiles", "DatasetInfo",
    "Degradation", "DeviceLoader", "Splits", "apply_degradation", "cache_dir", "derive_seed", "format_degradation",
    "get_dataset", "list_datasets", "load_split", "locate", "make_splits", "parse_augment", "parse_degradation",
    "read_idx_pair", "register_dataset", "stratified_folds", "stratified_split",
]
