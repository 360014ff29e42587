"""params.yaml as typed settings: one dataclass per section, one rule per field, no defaults in code.

params.yaml is the only place values live. Each section is a frozen dataclass
whose fields carry a `Rule` (what the value must be, said in words for the error);
an architecture with settings of its own names its dataclass in the catalogue.

A stage reads only what it declares, the same keys `dvc.yaml` lists under its
`params:` (tests/test_dvc_yaml.py keeps the two equal): `read(("seed", "train",
"latents.batch_size", "models.{arch}"), arch=...)` validates those and nothing else,
so a stage never refuses to run over a section it does not read. Each error is one
line naming the key, the value found and what is allowed. The bounds are those of
the libraries a value reaches, so a value that passes here cannot fail later with
a traceback.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import stat
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stages.common.data.datasets import DATASETS, N_CLASSES, PIXELS
from stages.common.errors import PipelineError

PARAMS_FILE = Path("params.yaml")
NOISES = ("gaussian", "masking")
# numpy's legacy seeding and scikit-learn's random_state take 32-bit seeds.
MAX_SEED = 2**32 - 1
# Past these a batch's activations outgrow a few GB of memory.
MAX_TRAIN_BATCH = 8192
MAX_ENCODE_BATCH = 16384
# A socket timeout of hours is a hang, not a timeout; the socket layer itself
# overflows past about 9e9 s.
MAX_TIMEOUT_SECONDS = 3600


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """What a value must be: a test, and the words that say it in an error ("an integer from 1 to 5")."""

    ok: Callable[[object], bool]
    expected: str


def fail(key: str, value, expected: str) -> PipelineError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return PipelineError(f"params.yaml: {key} is {shown}; expected {expected}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int, high: int, null: bool = False, why: str = "") -> Rule:
    expected = f"an integer from {low:,} to {high:,}" + (" or null" if null else "") + (f" ({why})" if why else "")
    return Rule(lambda v: (null and v is None) or (_is_int(v) and low <= v <= high), expected)


def positive(high: float, why: str = "") -> Rule:
    return Rule(lambda v: _is_number(v) and 0 < v <= high,
                f"a positive number up to {high:g}" + (f" ({why})" if why else ""))


def fraction() -> Rule:
    return Rule(lambda v: _is_number(v) and 0 < v < 1, "a number between 0 and 1")


def one_of(*choices) -> Rule:
    return Rule(lambda v: isinstance(v, str) and v in choices, "one of " + ", ".join(choices))


def boolean() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "true or false")


def _is_url(value) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def setting(rule: Rule, doc: str = ""):
    """A settings field: no default (params.yaml holds every value), its rule and one line of meaning."""
    return field(metadata={"rule": rule, "doc": doc})


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class DataSettings:
    """data: which dataset, where it comes from, and how many of its images."""

    dataset: str = setting(one_of(*DATASETS))
    source: str = setting(Rule(lambda v: isinstance(v, str) and bool(v),
                               "'mirrors' or the path of a folder holding the four IDX .gz files"))
    mirrors: list | None = setting(Rule(lambda v: v is None or (isinstance(v, list) and bool(v)
                                                               and all(map(_is_url, v))),
                                        "null (the official mirrors) or a non-empty list of http(s) base URLs"))
    timeout_seconds: float = setting(positive(MAX_TIMEOUT_SECONDS))
    retries: int = setting(integer(1, 100, why="attempts per mirror"))
    train_limit: int | None = setting(integer(N_CLASSES, 10**9, null=True, why="one image per class at least"))
    test_limit: int | None = setting(integer(N_CLASSES, 10**9, null=True, why="one image per class at least"))


@dataclass(frozen=True)
class TrainSettings:
    """train: how every architecture is trained."""

    # The budget: exactly one of the two is a number. Epochs are passes over however many images
    # data.train_limit keeps; steps are optimizer steps, so a sample trains as long as the full set did.
    epochs: int | None = setting(integer(1, 100_000, null=True, why="null when train.steps is set"))
    steps: int | None = setting(integer(1, 10**8, null=True, why="null when train.epochs is set"))
    batch_size: int = setting(integer(1, MAX_TRAIN_BATCH, why="larger batches need several GB of activations"))
    lr: float = setting(positive(1e3))
    latent_dim: int = setting(integer(1, PIXELS, why="a code larger than the 784 pixels it encodes compresses nothing"))
    device: str = setting(one_of("auto", "cpu", "cuda", "mps"))
    precision: str = setting(one_of("fp32", "bf16"))
    # A number, never "every core": torch's kernels split their sums by thread, so the
    # trained weights depend on it, and dvc.yaml's params must say what a result depends on.
    threads: int = setting(integer(1, 4096, why="torch threads per stage"))

    def __post_init__(self):
        if (self.epochs is None) == (self.steps is None):
            raise fail("train.steps", self.steps, f"{'null' if self.epochs is not None else 'a number'} while "
                       f"train.epochs is {self.epochs}: exactly one of train.epochs and train.steps sets the budget")


@dataclass(frozen=True)
class LatentsSettings:
    """latents: encoding and evaluating in batches."""

    batch_size: int = setting(integer(1, MAX_ENCODE_BATCH, why="larger batches need several GB of activations"))


@dataclass(frozen=True)
class TsneSettings:
    """tsne: which test latents are embedded, and t-SNE's own settings."""

    per_class: int | None = setting(integer(1, 10**6, null=True))
    perplexity: float = setting(positive(1e6))
    max_iter: int = setting(integer(250, 10**6, why="scikit-learn's minimum is 250"))

    def __post_init__(self):
        if self.per_class is not None and self.perplexity >= self.per_class * N_CLASSES:
            raise fail("tsne.perplexity", self.perplexity,
                       f"a number below the {self.per_class * N_CLASSES} t-SNE points")


@dataclass(frozen=True)
class SvmSettings:
    """svm: the classifier that scores each latent space (and the baselines)."""

    kernel: str = setting(one_of("linear", "poly", "rbf", "sigmoid"))
    C: float = setting(positive(1e9))
    gamma: str | float = setting(Rule(lambda v: v in ("scale", "auto") or (_is_number(v) and 0 < v <= 1e9),
                                      "'scale', 'auto' or a positive number"))
    scale: bool = setting(boolean())
    implementation: str = setting(one_of("sklearnex", "sklearn"))
    # oneDAL's fit splits its work by thread and its solution depends on the count
    # (docs/guarantees.md), so this is a number, never "every core".
    threads: int = setting(integer(1, 4096, why="threads of the SVM"))


@dataclass(frozen=True)
class BaselinesSettings:
    """baselines: the same SVM on raw pixels and on PCA."""

    enabled: bool = setting(boolean())
    train_limit: int | None = setting(integer(10 * N_CLASSES, 10**9, null=True, why="ten images per class at least"))


# --------------------------------------------------------------------------- architectures' own settings
# models.<id>: each architecture with settings of its own names its class here in the
# catalogue (stages/common/models/catalogue.py); the torch layer never imports this module.
@dataclass(frozen=True)
class NoiseSettings:
    """A kind of image noise: additive Gaussian clipped to [0, 1], or masking (pixels set to 0).

    Two sections use it: `test_noise` (every model's denoise_mse) and `models.denoising`
    (what the Denoising AE trains on).
    """

    noise: str = setting(one_of(*NOISES))
    noise_std: float = setting(positive(10), "standard deviation of the Gaussian noise")
    mask_fraction: float = setting(fraction(), "share of pixels masked by masking noise")


@dataclass(frozen=True)
class VAESettings:
    """models.vae: the Variational AE's objective."""

    beta: float = setting(positive(1e6), "weight of the KL term: loss = reconstruction + beta * KL")
    reconstruction: str = setting(one_of("bce", "mse"),
                                  "bce (Bernoulli likelihood, summed over pixels) or mse (summed squared error)")


def distinct_ints(low: int, high: int, what: str) -> Rule:
    return Rule(lambda v: (isinstance(v, list) and bool(v) and all(_is_int(d) and low <= d <= high for d in v)
                           and len(set(v)) == len(v)),
                f"a non-empty list of distinct {what} from {low:,} to {high:,}")


@dataclass(frozen=True)
class SweepSettings:
    """sweep: the seeds x latent-size grid `make sweep` runs (read by tools/sweep.py, no stage)."""

    latent_dims: list = setting(distinct_ints(1, PIXELS, "latent sizes"))
    seeds: list = setting(distinct_ints(0, MAX_SEED, "seeds"))
    threads: int = setting(integer(1, 4096, why="torch threads of every cell"))
    jobs: int | None = setting(integer(1, 64, null=True, why="cells at a time; null = usable cores / sweep.threads"))
    steps: int | None = setting(integer(1, 10**8, null=True,
                                        why="each cell's train.steps, its train.epochs null; null: train.* as it is"))


@dataclass(frozen=True)
class StatisticsSettings:
    """statistics: the confidence of every interval and the level of every test, in every report."""

    confidence: float = setting(Rule(lambda v: _is_number(v) and 0.5 <= v < 1, "a number from 0.5 to below 1"))
    alpha: float = setting(Rule(lambda v: _is_number(v) and 0 < v <= 0.5, "a number above 0 and at most 0.5"))
    # The latent-size study's margins of equivalence: a latent size suffices for a metric when the whole
    # interval of (that size - the architecture's best size) lies within the metric's margin.
    margin_accuracy_points: float = setting(positive(100, "SVM accuracy points"))
    margin_mse_percent: float = setting(positive(100, "percent of the best size's test and denoise MSE"))
    margin_trustworthiness: float = setting(positive(1, "t-SNE trustworthiness, a number from 0 to 1"))
    # A run failed when its test MSE is no better than this share of the MSE of predicting every pixel's
    # training-set mean (or its loss was not finite): counted apart, never averaged in.
    failure_mse_fraction: float = setting(positive(1, "a share of the mean image's test MSE, at most 1"))
    # A run had not converged when its training loss still fell by more than this over the last fifth of
    # its steps (against the fifth before): flagged in the sweep's report.
    convergence_drop_percent: float = setting(positive(100, "percent of the training loss"))
    # The power the seed planner aims at, for each comparison a study left undecided.
    power: float = setting(Rule(lambda v: _is_number(v) and 0.5 <= v < 1, "a number from 0.5 to below 1"))


def arch_list(catalogue: dict) -> Rule:
    return Rule(lambda v: (isinstance(v, list) and bool(v) and all(isinstance(a, str) and a in catalogue for a in v)
                           and len(set(v)) == len(v)),
                "a non-empty list of distinct architecture ids from " + ", ".join(catalogue))


# Every key params.yaml may have: seed, the architectures (checked against the
# catalogue a stage passes in, so stages that never name an architecture do not
# depend on the catalogue's code), and the sections.
SEED = integer(0, MAX_SEED, why="numpy's and scikit-learn's range")
ARCHS = "archs"
SECTIONS: dict[str, type] = {
    "data": DataSettings,
    "train": TrainSettings,
    "test_noise": NoiseSettings,
    "latents": LatentsSettings,
    "tsne": TsneSettings,
    "svm": SvmSettings,
    "baselines": BaselinesSettings,
    "sweep": SweepSettings,
    "statistics": StatisticsSettings,
}
MODELS = "models"  # models.<arch>: each architecture's own settings, its catalogue entry's class


@dataclass(frozen=True)
class NoSettings:
    """An architecture without settings of its own: its models.<arch> entry is {}."""


# --------------------------------------------------------------------------- validation
def _rules(cls) -> dict[str, Rule]:
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls)}


def check_value(key: str, rule: Rule, value):
    if not rule.ok(value):
        raise fail(key, value, rule.expected)
    return value


def build_section(cls, name: str, given):
    """`cls` built from params.yaml's mapping at `name`, every field checked; PipelineError otherwise."""
    rules = _rules(cls)
    if given is None and not rules:
        given = {}
    if not isinstance(given, dict):
        expected = "a mapping of " + ", ".join(rules) if rules else "{} (this architecture has no settings)"
        raise fail(name, given, expected)
    unknown = [key for key in given if key not in rules]
    if unknown:
        known = ", ".join(rules) or "none"
        raise PipelineError(f"params.yaml: unknown key '{name}.{unknown[0]}'; known keys here: {known}")
    for key, rule in rules.items():
        if key not in given:
            raise PipelineError(f"params.yaml: {name}.{key} is missing; expected {rule.expected}")
        check_value(f"{name}.{key}", rule, given[key])
    return cls(**given)




def _lookup(raw: dict, key: str):
    node = raw
    for depth, part in enumerate(key.split(".")):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(key.split(".")[:depth + 1])
            raise PipelineError(f"params.yaml: {where} is missing; this stage reads {key}")
        node = node[part]
    return node


def read_key(raw: dict, key: str, catalogue: dict | None = None):
    """One declared key of params.yaml, validated: a section's dataclass, or a single value.

    `archs` and `models.<arch>` need the architecture catalogue.
    """
    head, _, rest = key.partition(".")
    if key == "seed":
        return check_value(key, SEED, _lookup(raw, key))
    if head in (ARCHS, MODELS) and catalogue is None:
        raise ValueError(f"reading {key!r} needs the catalogue")
    if key == ARCHS:
        return check_value(key, arch_list(catalogue), _lookup(raw, key))
    if head == MODELS and rest in catalogue:
        cls = catalogue[rest].settings_class() or NoSettings
        return build_section(cls, key, _lookup(raw, key))
    if head in SECTIONS:
        cls = SECTIONS[head]
        if not rest:
            return build_section(cls, key, _lookup(raw, key))
        rules = _rules(cls)
        if rest in rules:
            section = _lookup(raw, head)
            if not isinstance(section, dict):
                raise fail(head, section, "a mapping of " + ", ".join(rules))
            if rest not in section:
                raise PipelineError(f"params.yaml: {key} is missing; expected {rules[rest].expected}")
            return check_value(key, rules[rest], section[rest])
    raise ValueError(f"{key!r} is not a params.yaml key this code knows")


def check_top_level(raw) -> dict:
    """The parsed file as a mapping whose top-level keys are all known (a typo is never silently ignored)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"params.yaml: expected a mapping at the top level, found {type(raw).__name__}")
    known = ["seed", ARCHS, *SECTIONS, MODELS]
    for key in raw:
        if key not in known:
            raise PipelineError(f"params.yaml: unknown key {key!r}; known keys: {', '.join(known)}")
    return raw


def select(raw, keys: Iterable[str], arch: str | None = None, catalogue: dict | None = None) -> dict:
    """The settings at `keys` of parsed params (as in dvc.yaml: 'train', 'train.latent_dim', 'models.{arch}').

    Returns key -> value (keys with {arch} filled in): a section's dataclass for a
    section, the value for a single key.
    """
    raw = check_top_level(raw)
    keys = [key.format(arch=arch) for key in keys]
    return {key: read_key(raw, key, catalogue) for key in keys}


def read(keys: Iterable[str], path: str | os.PathLike = PARAMS_FILE, arch: str | None = None,
         catalogue: dict | None = None) -> dict:
    """`select` over the params file at `path`: what a stage calls with its PARAMS."""
    return select(load_yaml(path), keys, arch, catalogue)


def as_kwargs(settings) -> dict:
    """A settings dataclass as keyword arguments (a model's constructor, the SVM's)."""
    return dataclasses.asdict(settings)


# --------------------------------------------------------------------------- data.source
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
            raise fail("data.source", source,
                       f"a folder; in this queued experiment a relative path resolves against {origin}, "
                       "where it does not exist: write an absolute path")
    raise fail("data.source", source, "'mirrors' or an existing folder holding the four IDX .gz files "
                                      "(relative paths start at the project root)")


# --------------------------------------------------------------------------- YAML
# The stages read params.yaml with the parser DVC itself uses (ruamel's safe loader,
# YAML 1.2, as dvc.utils.serialize.parse_yaml), so `dvc.lock` and `dvc params diff`
# record the values a stage ran with: `seed: 1:30` is a string to both, `svm.scale:
# yes` is the string "yes" (refused: not a boolean), `010` is 10, and a duplicate key
# is an error for both. What DVC does not bound, this does: a params file is a
# regular file of at most MAX_PARAMS_BYTES, and nested aliases may not expand past
# MAX_PARAMS_VALUES values ("billion laughs").
MAX_PARAMS_BYTES = 1 << 20
MAX_PARAMS_VALUES = 100_000


def _expanded_size(node, sizes: dict, depth: int = 0) -> int:
    """Values in `node` counted as if every alias were copied out, without copying (shared nodes memoised)."""
    if depth > 100:
        raise RecursionError
    key = id(node)
    if key in sizes:
        return sizes[key]
    if isinstance(node, dict):
        size = 1 + sum(_expanded_size(k, sizes, depth + 1) + _expanded_size(v, sizes, depth + 1)
                       for k, v in node.items())
    elif isinstance(node, list):
        size = 1 + sum(_expanded_size(v, sizes, depth + 1) for v in node)
    else:
        return 1
    sizes[key] = size
    return size


def parse_yaml(text: str, name: str = "params.yaml"):
    """params.yaml text parsed as DVC parses it; PipelineError naming `name` for anything else."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import YAMLError

    try:
        value = YAML(typ="safe").load(text)
        if _expanded_size(value, {}) > MAX_PARAMS_VALUES:
            raise PipelineError(f"{name}: its aliases expand to more than {MAX_PARAMS_VALUES:,} values; "
                                "expected a plain settings file")
    except DuplicateKeyError as err:
        mark = err.problem_mark
        where = f", line {mark.line + 1}" if mark else ""
        raise PipelineError(f"{name}{where}: a key appears twice ({' '.join(str(err.problem).split())[:120]}); "
                            "DVC refuses such a file too: keep one") from None
    except YAMLError as err:
        raise PipelineError(f"{name}: not valid YAML ({' '.join(str(err).split())[:200]})") from None
    except RecursionError:
        raise PipelineError(f"{name}: nested more than 100 levels deep; expected a plain settings file") from None
    return value


def load_yaml(path: str | os.PathLike = PARAMS_FILE):
    """params.yaml parsed, unvalidated; PipelineError naming the file if it cannot be read or parsed."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise PipelineError(f"{path}: not a regular file; expected a YAML file")
        if info.st_size > MAX_PARAMS_BYTES:
            raise PipelineError(f"{path}: {info.st_size:,} bytes; expected a settings file of at most "
                                f"{MAX_PARAMS_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found; run the stage from the project root") from None
    except PermissionError:
        raise PipelineError(f"{path}: not readable (permissions); fix and rerun") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PipelineError(f"{path}: cannot be read ({' '.join(str(err).split())[:120]}); "
                            "expected a UTF-8 YAML file") from None
    return parse_yaml(text, str(path))
