"""A sixth architecture with a setting of its own: its model class, its settings class, one catalogue entry,
its params.yaml entry.

Proved in a scratch copy of the project (code, params and tests): after those edits
and nothing else, the tests that enumerate architectures pass, `dvc repro` trains
and scores it, and changing its setting reruns its stages only.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT, data_source_for_e2e
from tests.stagerun import make_project, run, set_params

NEW_SETTINGS = '''

@dataclass(frozen=True)
class TinySettings:
    """models.tiny: the width of its one hidden layer."""

    hidden: int = setting(integer(1, 4096), "units of the hidden layer")
'''
NEW_MODEL = '''

class TinyAE(Autoencoder):
    """A throwaway architecture: one hidden layer each way."""

    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid(),
                                     nn.Unflatten(1, (1, 28, 28)))
'''
NEW_ENTRY = '''    Architecture("tiny", "Tiny AE", "stages.common.models.nets:TinyAE",
                 settings="stages.common.settings:TinySettings"),
)

CATALOGUE'''
# The tests that enumerate the catalogue or read params.yaml: what a new architecture could break.
ENUMERATING_TESTS = ["tests/test_models.py", "tests/test_settings.py", "tests/test_dvc_yaml.py",
                     "tests/test_checkpoint.py", "tests/test_report.py"]


def add_tiny_architecture(repo):
    nets = repo / "stages/common/models/nets.py"
    nets.write_text(nets.read_text() + NEW_MODEL)
    settings = repo / "stages/common/settings.py"
    settings.write_text(settings.read_text() + NEW_SETTINGS)
    catalogue = repo / "stages/common/models/catalogue.py"
    text = catalogue.read_text()
    assert text.count(")\n\nCATALOGUE") == 1
    catalogue.write_text(text.replace(")\n\nCATALOGUE", NEW_ENTRY, 1))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["tiny"] = {"hidden": 32}
    params["archs"].append("tiny")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_a_sixth_architecture_needs_only_a_class_a_catalogue_entry_and_its_params(tmp_path):
    repo = make_project(tmp_path / "repo")
    for folder in ("tests", "benchmarks"):  # the tests build models as the benchmarks do
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    add_tiny_architecture(repo)
    changed = run(["git", "diff", "--no-index", "--name-only", str(ROOT / "stages"), str(repo / "stages")], tmp_path)
    edited = sorted({Path(line).name for line in changed.stdout.split() if line.endswith(".py")})
    assert edited == ["catalogue.py", "nets.py", "settings.py"], changed.stdout

    tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ENUMERATING_TESTS], repo)
    assert tests.returncode == 0, tests.stdout[-3000:]

    source = data_source_for_e2e(tmp_path)
    set_params(repo, {
        "archs": ["stacked", "tiny"],
        "data": {"source": str(source), "train_limit": 300, "test_limit": 100},
        "train": {"epochs": 1},
        "tsne": {"per_class": 5, "perplexity": 4},
        "baselines": {"train_limit": 200},
    })
    run(["git", "init", "-q"], repo, check=True)
    run(["git", "add", "-A"], repo, check=True)
    first = run(["dvc", "repro"], repo, check=True)
    assert {"train@tiny", "train@stacked", "report"} <= set(ran_stages(first.stdout))
    facts = json.loads((repo / "metrics/run/train_tiny.json").read_text())
    latent = yaml.safe_load((repo / "params.yaml").read_text())["train"]["latent_dim"]
    assert facts["params_total"] == (784 * 32 + 32 + 32 * latent + latent) + (latent * 32 + 32 + 32 * 784 + 784)
    assert json.loads((repo / "metrics/svm_tiny.json").read_text())["accuracy"] > 0
    assert "| Tiny AE |" in (repo / "plots/report.md").read_text()
    for kind in ("samples", "interpolation", "denoising", "tsne", "confusion"):
        assert (repo / f"plots/{kind}/tiny.png").is_file()

    set_params(repo, {"models": {"tiny": {"hidden": 16}}})
    status = run(["dvc", "status", "--json"], repo, check=True)
    assert sorted(json.loads(status.stdout)) == ["latents@tiny", "train@tiny"]
    second = run(["dvc", "repro"], repo, check=True)
    assert sorted(ran_stages(second.stdout)) == ["latents@tiny", "report", "svm@tiny", "train@tiny", "tsne@tiny"]
