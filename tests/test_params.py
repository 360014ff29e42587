"""params.yaml validation: defaults, and one clear error per kind of bad value."""
from __future__ import annotations

import copy

import pytest
import yaml

from stages.common.errors import PipelineError
from stages.common.params import DEFAULTS, load_params, validate
from tests.conftest import ROOT


def test_committed_params_are_valid_and_match_the_reference_setup():
    params = load_params(ROOT / "params.yaml")
    assert params["train"] == {
        "epochs": 5, "batch_size": 128, "lr": 0.001, "latent_dim": 64, "device": "auto", "precision": "fp32",
        "threads": None,
    }
    assert params["seed"] == 42
    assert params["archs"] == ["superres", "conv", "stacked", "vae", "denoising"]
    assert params["vae"] == {"beta": 1.0, "reconstruction": "bce"}
    assert params["denoising"]["noise"] == "gaussian" and params["denoising"]["noise_std"] == 0.3
    assert params["data"]["dataset"] == "mnist" and params["data"]["source"] == "mirrors"
    assert params["tsne"]["per_class"] == 20 and params["tsne"]["perplexity"] == 30
    assert (params["svm"]["kernel"], params["svm"]["C"], params["svm"]["gamma"]) == ("rbf", 10, "scale")


def test_missing_keys_take_defaults():
    assert validate({}) == DEFAULTS


def with_value(key: str, value) -> dict:
    params = copy.deepcopy(DEFAULTS)
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return params


BAD_VALUES = [
    ("archs", ["conv", "gan"], "gan"),
    ("archs", [], "non-empty"),
    ("train.epochs", 0, "an integer from 1"),
    ("train.epochs", 2.5, "an integer from 1"),
    ("train.epochs", "5", "an integer from 1"),
    ("train.batch_size", -1, "an integer from 1"),
    ("train.latent_dim", True, "an integer from 1"),
    ("train.lr", 0, "positive number"),
    ("train.lr", "fast", "positive number"),
    ("train.device", "tpu", "one of auto, cpu, cuda, mps"),
    ("train.precision", "fp16", "one of fp32, bf16"),
    ("data.dataset", "cifar10", "one of mnist, fashion-mnist"),
    ("data.source", "/no/such/folder", "existing folder"),
    ("data.train_limit", 5, "an integer from 10"),
    ("tsne.perplexity", 200, "below the 200 t-SNE points"),
    ("svm.kernel", "gaussian", "one of linear, poly, rbf, sigmoid"),
    ("svm.C", -1, "positive number"),
    ("svm.gamma", "wide", "'scale', 'auto' or a positive number"),
    ("svm.implementation", "cuml", "one of sklearnex, sklearn"),
    ("baselines.enabled", "yes", "true or false"),
]


@pytest.mark.parametrize("key,value,allowed", BAD_VALUES)
def test_bad_value_names_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(PipelineError) as err:
        validate(with_value(key, value))
    message = str(err.value)
    assert "\n" not in message
    assert key in message
    shown = "'gan'" if value == ["conv", "gan"] else repr(value)  # a bad list item is named alone
    assert shown in message
    assert allowed in message


def test_more_tsne_points_per_class_than_the_test_limit_allows():
    params = with_value("data.test_limit", 100)
    params["tsne"]["per_class"] = 20
    params["tsne"]["perplexity"] = 5
    with pytest.raises(PipelineError, match=r"tsne.per_class is 20; expected at most 10 per class"):
        validate(params)


def test_unknown_key_is_rejected():
    with pytest.raises(PipelineError, match="unknown key 'train.epoch'"):
        validate({"train": {"epoch": 3}})


def test_data_source_folder_resolves_against_the_params_file(tmp_path):
    (tmp_path / "mydata").mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"source": "mydata"}}))
    assert load_params(tmp_path / "params.yaml")["data"]["source"] == "mydata"


def test_unreadable_yaml_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [epochs: 5\n")
    with pytest.raises(PipelineError, match="not valid YAML") as err:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(err.value)
