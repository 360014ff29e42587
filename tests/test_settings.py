"""params.yaml as typed settings: the committed file, one clear error per bad value, per-key reading."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml

from stages.common.errors import PipelineError
from stages.common.models.catalogue import CATALOGUE
from stages.common.settings import SECTIONS, NoSettings, load_yaml, read, resolve_source, select
from tests.conftest import ROOT

COMMITTED = load_yaml(ROOT / "params.yaml")


def every_key() -> list[str]:
    return ["seed", "archs", *SECTIONS, *(f"models.{arch}" for arch in CATALOGUE)]


def test_the_committed_params_are_valid_and_complete():
    values = select(COMMITTED, every_key(), catalogue=CATALOGUE)
    assert values["archs"] == list(CATALOGUE)
    for arch in CATALOGUE:
        assert isinstance(values[f"models.{arch}"], CATALOGUE[arch].settings_class() or NoSettings)


def test_no_settings_class_has_a_default():
    # params.yaml is the one home of every value: a default in code would be a second.
    classes = [*SECTIONS.values(), *(e.settings_class() for e in CATALOGUE.values() if e.settings)]
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f"{cls}.{f.name}"


def with_value(key: str, value) -> dict:
    params = copy.deepcopy(COMMITTED)
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return params


def section_of(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "models" else parts[0]


BAD_VALUES = [
    ("archs", ["conv", "gan"], "architecture ids"),
    ("archs", [], "non-empty"),
    ("archs", ["conv", "conv"], "distinct"),
    ("train.epochs", 0, "an integer from 1"),
    ("train.epochs", 2.5, "an integer from 1"),
    ("train.epochs", "5", "an integer from 1"),
    ("train.epochs", None, "a number while train.epochs is None: exactly one of"),  # neither: no budget
    ("train.steps", 2345, "null while train.epochs is 5: exactly one of"),          # both: which one?
    ("train.steps", 0, "an integer from 1"),
    ("train.steps", 1.5, "an integer from 1"),
    ("sweep.steps", -5, "an integer from 1"),
    ("sweep.steps", "2345", "an integer from 1"),
    ("statistics.failure_mse_fraction", 0, "a positive number up to 1"),
    ("statistics.failure_mse_fraction", 1.5, "a positive number up to 1"),
    ("statistics.convergence_drop_percent", float("nan"), "a positive number"),
    ("statistics.power", 0.3, "a number from 0.5 to below 1"),
    ("statistics.power", 1, "a number from 0.5 to below 1"),
    ("train.batch_size", -1, "an integer from 1"),
    ("train.latent_dim", True, "an integer from 1"),
    ("train.lr", 0, "positive number"),
    ("train.lr", "fast", "positive number"),
    ("train.device", "tpu", "one of auto, cpu, cuda, mps"),
    ("train.precision", "fp16", "one of fp32, bf16"),
    ("data.dataset", "cifar10", "one of mnist, fashion-mnist"),
    ("data.train_limit", 5, "an integer from 10"),
    ("tsne.perplexity", 200, "below the 200 t-SNE points"),
    ("svm.kernel", "gaussian", "one of linear, poly, rbf, sigmoid"),
    ("svm.C", -1, "positive number"),
    ("svm.gamma", "wide", "'scale', 'auto' or a positive number"),
    ("svm.implementation", "cuml", "one of sklearnex, sklearn"),
    ("baselines.enabled", "yes", "true or false"),
    ("models.vae.beta", 0, "positive number"),
    ("models.vae.reconstruction", "l1", "one of bce, mse"),
    ("models.denoising.noise", "salt", "one of gaussian, masking"),
    ("test_noise.mask_fraction", 1.0, "between 0 and 1"),
    ("models.conv", {"width": 3}, "unknown key 'models.conv.width'; known keys here: none"),
    ("models.conv", [1], "{} (this architecture has no settings)"),
]


@pytest.mark.parametrize("key,value,allowed", BAD_VALUES)
def test_bad_value_names_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(PipelineError) as err:
        select(with_value(key, value), [section_of(key)], catalogue=CATALOGUE)
    message = str(err.value)
    assert "\n" not in message
    assert allowed in message
    if "unknown key" not in message:
        assert f"{key} is " in message and repr(value) in message


def test_a_long_value_is_quoted_short():
    with pytest.raises(PipelineError) as err:
        select(with_value("train.device", "x" * 10_000), ["train"])
    assert len(str(err.value)) < 200


def test_a_missing_key_is_named():
    params = copy.deepcopy(COMMITTED)
    del params["train"]["lr"]
    with pytest.raises(PipelineError, match=r"train.lr is missing; expected a positive number"):
        select(params, ["train"])
    del params["models"]["conv"]
    with pytest.raises(PipelineError, match=r"models.conv is missing"):
        select(params, ["models.{arch}"], arch="conv", catalogue=CATALOGUE)


def test_unknown_keys_are_refused():
    with pytest.raises(PipelineError, match="unknown key 'train.epoch'"):
        select(with_value("train.epoch", 3), ["train"])
    with pytest.raises(PipelineError, match="unknown key 'trian'"):
        select({**COMMITTED, "trian": {}}, ["seed"])


def test_a_stage_checks_only_the_keys_it_reads():
    broken = with_value("data.source", "/no/such/folder")
    broken["svm"]["C"] = -1
    broken["models"]["vae"]["beta"] = "large"
    values = select(broken, ["seed", "train", "test_noise", "latents.batch_size", "models.{arch}"], arch="conv",
                    catalogue=CATALOGUE)
    assert values["train"].latent_dim == COMMITTED["train"]["latent_dim"] and values["models.conv"] == NoSettings()
    # A single key of a section is checked alone: prepare reads data.train_limit, never data.source.
    assert select(broken, ["data.train_limit"]) == {"data.train_limit": None}
    with pytest.raises(PipelineError, match="svm.C is -1"):
        select(broken, ["svm"])


def test_sections_and_keys_come_back_typed():
    values = select(COMMITTED, ["train.latent_dim", "models.{arch}", "svm"], arch="vae", catalogue=CATALOGUE)
    assert values["train.latent_dim"] == COMMITTED["train"]["latent_dim"]
    assert values["models.vae"] == CATALOGUE["vae"].settings_class()(**COMMITTED["models"]["vae"])
    assert values["svm"].implementation == COMMITTED["svm"]["implementation"]


def test_data_source_folder_resolves_against_the_project_root(tmp_path):
    (tmp_path / "mydata").mkdir()
    assert resolve_source("mydata", tmp_path) == "mydata"
    with pytest.raises(PipelineError, match="data.source is '/no/such/folder'; expected 'mirrors' or an existing"):
        resolve_source("/no/such/folder", tmp_path)


def test_read_goes_through_the_file(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 7}))
    assert read(["seed"], tmp_path / "params.yaml") == {"seed": 7}


def test_unreadable_yaml_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [epochs: 5\n")
    with pytest.raises(PipelineError, match="not valid YAML") as err:
        read(["seed"], tmp_path / "params.yaml")
    assert "\n" not in str(err.value)
