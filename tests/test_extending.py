"""Adding an architecture is one model class and one catalogue entry: proved in a scratch copy."""
from __future__ import annotations

import json

from tests.conftest import data_source_for_e2e
from tests.stagerun import make_project, run

NEW_MODEL = '''

class TinyAE(Autoencoder):
    """A throwaway architecture: one linear layer each way."""

    def __init__(self, latent_dim: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
'''
NEW_ENTRY = '''    Architecture("tiny", "Tiny AE", "stages.common.models:TinyAE"),
)

CATALOGUE'''


def test_a_sixth_architecture_needs_only_a_class_and_a_catalogue_entry(tmp_path):
    source = data_source_for_e2e(tmp_path)
    repo = make_project(tmp_path / "repo", {
        "archs": ["tiny"],
        "data": {"source": str(source), "train_limit": 300, "test_limit": 100},
        "train": {"epochs": 1},
        "tsne": {"per_class": 5, "perplexity": 4},
        "baselines": {"train_limit": 200},
    })
    models = repo / "stages/common/models.py"
    models.write_text(models.read_text() + NEW_MODEL)
    catalogue = repo / "stages/common/catalogue.py"
    text = catalogue.read_text()
    assert text.count(")\n\nCATALOGUE") == 1
    catalogue.write_text(text.replace(")\n\nCATALOGUE", NEW_ENTRY, 1))
    run(["git", "init", "-q"], repo, check=True)
    run(["dvc", "repro", "report"], repo, check=True)
    facts = json.loads((repo / "metrics/run/train_tiny.json").read_text())
    assert facts["params_total"] == 784 * 64 + 64 + 64 * 784 + 784
    assert json.loads((repo / "metrics/svm_tiny.json").read_text())["accuracy"] > 0
    assert "| Tiny AE |" in (repo / "plots/report.md").read_text()
    for kind in ("samples", "interpolation", "denoising", "tsne", "confusion"):
        assert (repo / f"plots/{kind}/tiny.png").is_file()
