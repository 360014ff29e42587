"""Loading and checking params.yaml: every key is validated before any stage does work.

Each error names the key, the value found and what is allowed, in one line.
"""
from __future__ import annotations

import copy
import numbers
import os
from pathlib import Path

import yaml

from stages.common.errors import PipelineError

ARCH_IDS = ("superres", "conv", "stacked")
ARCH_NAMES = {"superres": "Super-Resolution AE", "conv": "Convolutional AE", "stacked": "Stacked AE"}
DATASET_IDS = ("mnist", "fashion-mnist")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")
SVM_KERNELS = ("linear", "poly", "rbf", "sigmoid")
SVM_IMPLEMENTATIONS = ("sklearnex", "sklearn")

DEFAULTS = {
    "seed": 42,
    "archs": list(ARCH_IDS),
    "data": {
        "dataset": "mnist",
        "source": "mirrors",
        "mirrors": None,
        "timeout_seconds": 30,
        "retries": 3,
        "train_limit": None,
        "test_limit": None,
    },
    "train": {
        "epochs": 5,
        "batch_size": 128,
        "lr": 0.001,
        "latent_dim": 64,
        "device": "auto",
        "precision": "fp32",
    },
    "latents": {"batch_size": 1024},
    "tsne": {"per_class": 20, "perplexity": 30, "max_iter": 1000},
    "svm": {"kernel": "rbf", "C": 10, "gamma": "scale", "scale": True, "implementation": "sklearnex", "n_jobs": -1},
    "baselines": {"enabled": True, "train_limit": None},
}

N_CLASSES = 10


def _fail(key: str, value, allowed: str) -> PipelineError:
    return PipelineError(f"params.yaml: {key} is {value!r}; expected {allowed}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_int(params: dict, key: str, allow_null: bool = False) -> None:
    value = _get(params, key)
    if allow_null and value is None:
        return
    if not _is_int(value) or value <= 0:
        raise _fail(key, value, "a positive integer" + (" or null" if allow_null else ""))


def _positive_number(params: dict, key: str) -> None:
    value = _get(params, key)
    if not _is_number(value) or not value > 0 or value != value or value == float("inf"):
        raise _fail(key, value, "a positive number")


def _choice(params: dict, key: str, choices) -> None:
    value = _get(params, key)
    if value not in choices:
        raise _fail(key, value, "one of " + ", ".join(map(str, choices)))


def _boolean(params: dict, key: str) -> None:
    value = _get(params, key)
    if not isinstance(value, bool):
        raise _fail(key, value, "true or false")


def _get(params: dict, key: str):
    node = params
    for part in key.split("."):
        node = node[part]
    return node


def _merge(defaults: dict, given: dict, prefix: str = "") -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        name = f"{prefix}{key}"
        if key not in defaults:
            raise PipelineError(f"params.yaml: unknown key {name!r}; known keys here: {', '.join(defaults)}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise _fail(name, value, "a mapping of " + ", ".join(defaults[key]))
            merged[key] = _merge(defaults[key], value, f"{name}.")
        else:
            merged[key] = value
    return merged


def validate(given: dict, root: str | os.PathLike = ".") -> dict:
    """Return params with defaults filled in, or raise PipelineError naming the bad key.

    `root` is the folder relative paths (data.source) are resolved against.
    """
    if not isinstance(given, dict):
        raise PipelineError(f"params.yaml: expected a mapping at the top level, found {type(given).__name__}")
    params = _merge(DEFAULTS, given)

    if not _is_int(params["seed"]) or params["seed"] < 0:
        raise _fail("seed", params["seed"], "a non-negative integer")
    archs = params["archs"]
    if not isinstance(archs, list) or not archs:
        raise _fail("archs", archs, "a non-empty list of " + ", ".join(ARCH_IDS))
    for arch in archs:
        if arch not in ARCH_IDS:
            raise _fail("archs", arch, "architecture ids from " + ", ".join(ARCH_IDS))
    if len(set(archs)) != len(archs):
        raise _fail("archs", archs, "each architecture id at most once")

    _choice(params, "data.dataset", DATASET_IDS)
    source = params["data"]["source"]
    if not isinstance(source, str) or not source:
        raise _fail("data.source", source, "'mirrors' or the path of a folder holding the four IDX .gz files")
    if source != "mirrors" and not (Path(root) / source).is_dir():
        raise _fail("data.source", source, "'mirrors' or an existing folder holding the four IDX .gz files")
    mirrors = params["data"]["mirrors"]
    if mirrors is not None and (
        not isinstance(mirrors, list) or not mirrors or not all(isinstance(m, str) and "://" in m for m in mirrors)
    ):
        raise _fail("data.mirrors", mirrors, "null (the official mirrors) or a non-empty list of base URLs")
    _positive_number(params, "data.timeout_seconds")
    retries = params["data"]["retries"]
    if not _is_int(retries) or retries < 1:
        raise _fail("data.retries", retries, "a positive integer (attempts per mirror)")
    for key in ("data.train_limit", "data.test_limit"):
        _positive_int(params, key, allow_null=True)
        limit = _get(params, key)
        if limit is not None and limit < N_CLASSES:
            raise _fail(key, limit, f"null or at least {N_CLASSES} (one image per class)")

    for key in ("train.epochs", "train.batch_size", "train.latent_dim"):
        _positive_int(params, key)
    _positive_number(params, "train.lr")
    _choice(params, "train.device", DEVICES)
    _choice(params, "train.precision", PRECISIONS)
    _positive_int(params, "latents.batch_size")

    _positive_int(params, "tsne.per_class", allow_null=True)
    _positive_number(params, "tsne.perplexity")
    _positive_int(params, "tsne.max_iter")
    if params["tsne"]["max_iter"] < 250:
        raise _fail("tsne.max_iter", params["tsne"]["max_iter"], "an integer of at least 250 (scikit-learn's minimum)")
    per_class = params["tsne"]["per_class"]
    test_limit = params["data"]["test_limit"]
    if per_class is not None:
        n_points = per_class * N_CLASSES
        if test_limit is not None and n_points > test_limit:
            limit = f"at most {test_limit // N_CLASSES} per class (data.test_limit is {test_limit})"
            raise _fail("tsne.per_class", per_class, limit)
        if params["tsne"]["perplexity"] >= n_points:
            raise _fail(
                "tsne.perplexity", params["tsne"]["perplexity"], f"a number below the {n_points} t-SNE points"
            )

    _choice(params, "svm.kernel", SVM_KERNELS)
    _positive_number(params, "svm.C")
    gamma = params["svm"]["gamma"]
    if gamma not in ("scale", "auto") and not (_is_number(gamma) and gamma > 0):
        raise _fail("svm.gamma", gamma, "'scale', 'auto' or a positive number")
    _boolean(params, "svm.scale")
    _choice(params, "svm.implementation", SVM_IMPLEMENTATIONS)
    n_jobs = params["svm"]["n_jobs"]
    if not _is_int(n_jobs) or n_jobs == 0 or n_jobs < -1:
        raise _fail("svm.n_jobs", n_jobs, "a positive integer, or -1 for every core")
    _boolean(params, "baselines.enabled")
    _positive_int(params, "baselines.train_limit", allow_null=True)
    return params


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    """Read and validate params.yaml; relative paths inside resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found; run the stage from the project root") from None
    try:
        given = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    return validate(given or {}, root=path.parent)
