"""Loading and checking params.yaml: every key is validated before any stage does work.

Each error names the key, the value found and what is allowed, in one line. The
bounds are those of the libraries the value reaches (numpy's and scikit-learn's
seeds, the socket layer's timeouts, scikit-learn's SVM and t-SNE), so a value that
passes here cannot fail later with a traceback.
"""
from __future__ import annotations

import copy
import math
import numbers
import os
import re
import urllib.parse
from pathlib import Path

import yaml

from stages.common.catalogue import ARCH_IDS, CATALOGUE
from stages.common.errors import PipelineError

DATASET_IDS = ("mnist", "fashion-mnist")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")
SVM_KERNELS = ("linear", "poly", "rbf", "sigmoid")
SVM_IMPLEMENTATIONS = ("sklearnex", "sklearn")
VAE_RECONSTRUCTIONS = ("bce", "mse")
NOISES = ("gaussian", "masking")

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
        "threads": None,
    },
    "vae": {"beta": 1.0, "reconstruction": "bce"},
    "denoising": {"noise": "gaussian", "noise_std": 0.3, "mask_fraction": 0.3},
    "latents": {"batch_size": 1024},
    "tsne": {"per_class": 20, "perplexity": 30, "max_iter": 1000},
    "svm": {"kernel": "rbf", "C": 10, "gamma": "scale", "scale": True, "implementation": "sklearnex", "n_jobs": -1},
    "baselines": {"enabled": True, "train_limit": None},
    "sweep": {"latent_dims": [2, 8, 32, 128], "jobs": 1},
}

N_CLASSES = 10
PIXELS = 28 * 28
# numpy's legacy seeding and scikit-learn's random_state take 32-bit seeds.
MAX_SEED = 2**32 - 1
# Past these a batch's activations outgrow a few GB of memory (the Conv AE needs
# about 0.4 MB per training image, 0.1 MB per image when only encoding).
MAX_TRAIN_BATCH = 8192
MAX_ENCODE_BATCH = 16384
# A socket timeout of hours is a hang, not a timeout; the socket layer itself
# overflows past about 9e9 s.
MAX_TIMEOUT_SECONDS = 3600
MAX_RETRIES = 100
# The baseline SVMs need every class several times over to mean anything.
MIN_BASELINE_TRAIN = 10 * N_CLASSES


def _fail(key: str, value, allowed: str) -> PipelineError:
    return PipelineError(f"params.yaml: {key} is {value!r}; expected {allowed}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _get(params: dict, key: str):
    node = params
    for part in key.split("."):
        node = node[part]
    return node


def _int_in(params: dict, key: str, low: int, high: int, allow_null: bool = False, why: str = "") -> None:
    value = _get(params, key)
    if allow_null and value is None:
        return
    if not _is_int(value) or not low <= value <= high:
        allowed = f"an integer from {low:,} to {high:,}" + (" or null" if allow_null else "")
        allowed += f" ({why})" if why else ""
        raise _fail(key, value, allowed)


def _positive_number(params: dict, key: str, high: float | None = None) -> None:
    value = _get(params, key)
    if not _is_number(value) or not value > 0 or (high is not None and value > high):
        raise _fail(key, value, "a positive number" + (f" up to {high:g}" if high is not None else ""))


def _choice(params: dict, key: str, choices) -> None:
    value = _get(params, key)
    if value not in choices:
        raise _fail(key, value, "one of " + ", ".join(map(str, choices)))


def _boolean(params: dict, key: str) -> None:
    value = _get(params, key)
    if not isinstance(value, bool):
        raise _fail(key, value, "true or false")


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


def _is_url(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)


def experiment_origin(root: Path) -> Path | None:
    """The repository a queued DVC experiment was started from, if `root` is its temporary copy.

    `dvc exp run --queue` and `--temp` run in <repo>/.dvc/tmp/exps/.../<copy>.
    """
    parts = root.resolve().parts
    for i in range(len(parts) - 3):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return None


def resolve_source(source: str, root: str | os.PathLike) -> str:
    """data.source as a folder path that exists from the project root (or raise naming the key)."""
    root = Path(root)
    if (root / source).is_dir():
        return source
    if not Path(source).is_absolute():
        origin = experiment_origin(root)
        if origin is not None:
            if (origin / source).is_dir():
                return str(origin / source)
            raise _fail("data.source", source,
                        f"a folder; in this queued experiment a relative path resolves against {origin}, "
                        "where it does not exist: write an absolute path")
    raise _fail("data.source", source, "'mirrors' or an existing folder holding the four IDX .gz files "
                                       "(relative paths start at the project root)")


def _validate_data(params: dict, root: Path) -> None:
    data = params["data"]
    _choice(params, "data.dataset", DATASET_IDS)
    source = data["source"]
    if not isinstance(source, str) or not source:
        raise _fail("data.source", source, "'mirrors' or the path of a folder holding the four IDX .gz files")
    if source != "mirrors":
        data["source"] = resolve_source(source, root)
    mirrors = data["mirrors"]
    if mirrors is not None and (not isinstance(mirrors, list) or not mirrors or not all(map(_is_url, mirrors))):
        raise _fail("data.mirrors", mirrors, "null (the official mirrors) or a non-empty list of http(s) base URLs")
    _positive_number(params, "data.timeout_seconds", high=MAX_TIMEOUT_SECONDS)
    _int_in(params, "data.retries", 1, MAX_RETRIES, why="attempts per mirror")
    for key in ("data.train_limit", "data.test_limit"):
        _int_in(params, key, N_CLASSES, 10**9, allow_null=True, why="one image per class at least")


def _validate_model(params: dict) -> None:
    _int_in(params, "train.epochs", 1, 100_000)
    _int_in(params, "train.batch_size", 1, MAX_TRAIN_BATCH, why="larger batches need several GB of activations")
    _int_in(params, "train.latent_dim", 1, PIXELS,
            why="a code larger than the 784 pixels it encodes compresses nothing")
    _positive_number(params, "train.lr", high=1e3)
    _choice(params, "train.device", DEVICES)
    _choice(params, "train.precision", PRECISIONS)
    _int_in(params, "train.threads", 1, 4096, allow_null=True, why="torch threads per process; null = every core")
    _positive_number(params, "vae.beta", high=1e6)
    _choice(params, "vae.reconstruction", VAE_RECONSTRUCTIONS)
    _choice(params, "denoising.noise", NOISES)
    _positive_number(params, "denoising.noise_std", high=10)
    fraction = params["denoising"]["mask_fraction"]
    if not _is_number(fraction) or not 0 < fraction < 1:
        raise _fail("denoising.mask_fraction", fraction, "a fraction of pixels between 0 and 1")
    _int_in(params, "latents.batch_size", 1, MAX_ENCODE_BATCH, why="larger batches need several GB of activations")


def _validate_analysis(params: dict) -> None:
    _int_in(params, "tsne.per_class", 1, 10**6, allow_null=True)
    _positive_number(params, "tsne.perplexity")
    _int_in(params, "tsne.max_iter", 250, 10**6, why="scikit-learn's minimum is 250")
    per_class = params["tsne"]["per_class"]
    test_limit = params["data"]["test_limit"]
    if per_class is not None:
        n_points = per_class * N_CLASSES
        if test_limit is not None and n_points > test_limit:
            limit = f"at most {test_limit // N_CLASSES} per class (data.test_limit is {test_limit})"
            raise _fail("tsne.per_class", per_class, limit)
        if params["tsne"]["perplexity"] >= n_points:
            raise _fail("tsne.perplexity", params["tsne"]["perplexity"], f"a number below the {n_points} t-SNE points")

    _choice(params, "svm.kernel", SVM_KERNELS)
    _positive_number(params, "svm.C", high=1e9)
    gamma = params["svm"]["gamma"]
    if gamma not in ("scale", "auto") and not (_is_number(gamma) and 0 < gamma <= 1e9):
        raise _fail("svm.gamma", gamma, "'scale', 'auto' or a positive number")
    _boolean(params, "svm.scale")
    _choice(params, "svm.implementation", SVM_IMPLEMENTATIONS)
    n_jobs = params["svm"]["n_jobs"]
    if not _is_int(n_jobs) or n_jobs == 0 or n_jobs < -1 or n_jobs > 4096:
        raise _fail("svm.n_jobs", n_jobs, "a positive integer, or -1 for every core")
    _boolean(params, "baselines.enabled")
    _int_in(params, "baselines.train_limit", MIN_BASELINE_TRAIN, 10**9, allow_null=True,
            why="ten images per class at least")

    dims = params["sweep"]["latent_dims"]
    if (not isinstance(dims, list) or not dims or not all(_is_int(d) and 1 <= d <= PIXELS for d in dims)
            or len(set(dims)) != len(dims)):
        raise _fail("sweep.latent_dims", dims, f"a non-empty list of distinct latent sizes from 1 to {PIXELS}")
    _int_in(params, "sweep.jobs", 1, 64, why="parallel experiment workers")


def validate(given: dict, root: str | os.PathLike = ".") -> dict:
    """Return params with defaults filled in, or raise PipelineError naming the bad key.

    `root` is the folder relative paths (data.source) are resolved against.
    """
    if not isinstance(given, dict):
        raise PipelineError(f"params.yaml: expected a mapping at the top level, found {type(given).__name__}")
    params = _merge(DEFAULTS, given)

    if not _is_int(params["seed"]) or not 0 <= params["seed"] <= MAX_SEED:
        raise _fail("seed", params["seed"], f"an integer from 0 to {MAX_SEED:,} (numpy's and scikit-learn's range)")
    archs = params["archs"]
    if not isinstance(archs, list) or not archs:
        raise _fail("archs", archs, "a non-empty list of " + ", ".join(ARCH_IDS))
    for arch in archs:
        if not isinstance(arch, str) or arch not in CATALOGUE:
            raise _fail("archs", arch, "architecture ids from " + ", ".join(ARCH_IDS))
    if len(set(archs)) != len(archs):
        raise _fail("archs", archs, "each architecture id at most once")

    _validate_data(params, Path(root))
    _validate_model(params)
    _validate_analysis(params)
    return params


def model_options(params: dict, arch: str) -> dict:
    """The keyword arguments of `arch`'s model: its own params.yaml section, if the catalogue names one."""
    section = CATALOGUE[arch].options
    return dict(params[section]) if section else {}


# --------------------------------------------------------------------------- YAML
# DVC reads params.yaml as YAML 1.2 (ruamel), PyYAML as YAML 1.1; where the two read
# one text differently, a stage would run another value than `dvc params diff` shows.
class _ParamsLoader(yaml.SafeLoader):
    pass


_LEADING_ZERO_TAG = "tag:ae-compare,2026:leading-zero"
# YAML 1.2 floats that YAML 1.1 leaves as strings: 1e-3, 5E4, 1.e+2 (no dot, or an unsigned exponent).
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")


def _prepend_resolver(tag: str, regexp: re.Pattern, first: str) -> None:
    resolvers = {key: list(value) for key, value in _ParamsLoader.yaml_implicit_resolvers.items()}
    for char in first:
        resolvers.setdefault(char, []).insert(0, (tag, regexp))
    _ParamsLoader.yaml_implicit_resolvers = resolvers


def _refuse_leading_zero(loader, node):
    raise yaml.constructor.ConstructorError(
        None, None,
        f"{node.value!r} is an integer with a leading zero, which YAML readers disagree on "
        f"(PyYAML: octal, DVC: decimal); write it without the leading zero",
        node.start_mark,
    )


_ParamsLoader.yaml_implicit_resolvers = dict(yaml.SafeLoader.yaml_implicit_resolvers)
_prepend_resolver("tag:yaml.org,2002:float", _FLOAT_12, "-+0123456789.")
_prepend_resolver(_LEADING_ZERO_TAG, _LEADING_ZERO, "-+0")
_ParamsLoader.add_constructor(_LEADING_ZERO_TAG, _refuse_leading_zero)


def parse_yaml(text: str):
    """Parse params.yaml text as DVC does for the values that matter here (YAML 1.2 numbers)."""
    return yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass


def load_params(path: str | os.PathLike = "params.yaml") -> dict:
    """Read and validate params.yaml; relative paths inside resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found; run the stage from the project root") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PipelineError(f"{path}: cannot be read ({err}); expected a UTF-8 YAML file") from None
    try:
        given = parse_yaml(text)
    except yaml.constructor.ConstructorError as err:
        line = f", line {err.problem_mark.line + 1}" if err.problem_mark else ""
        raise PipelineError(f"{path}{line}: {err.problem}") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    return validate({} if given is None else given, root=path.parent)
