"""tools/study.py: the README's study section is made from the committed study tables alone, and agrees with them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.common.errors import PipelineError
from stages.common.evaluation import grid
from tools import study
from tools.sweep import equivalence_margins

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_says_what_the_committed_study_tables_say():
    """The one-fact check: rendering studies/*/ again gives the README's section byte for byte."""
    proc = subprocess.run([sys.executable, "-m", "tools.study", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(study.BEGIN) == 1 and readme.count(study.END) == 1
    for folder in sorted((ROOT / "studies").iterdir()):
        if folder.is_dir():
            assert f"### {folder.name}:" in readme and (folder / "latent_size.png").is_file()
            assert (folder / "params.yaml").is_file() and "## How this was made" in (folder / "report.md").read_text()


def made_up_study(folder: Path) -> None:
    """Two feature spaces at three latent sizes, 3 seeds, 1,000 images: conv saturates at 8, stacked keeps
    improving, and their accuracy order flips between sizes 2 and 32."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in (1, 2, 3):
        draw = rng.random(1000)
        for dim, conv, stacked in ((2, 0.70, 0.90), (8, 0.97, 0.92), (32, 0.97, 0.99)):
            rows += [{"seed": seed, "latent_dim": dim, "name": name, "trustworthiness": 0.9,
                      "per_image": {"accuracy": draw < accuracy,
                                    "test_mse": (np.full(1000, 0.01 / dim) + draw / 1e4) * factor}}
                     for name, accuracy, factor in (("conv", conv, 1), ("stacked", stacked, 2))]
    statistics = type("S", (), {"margin_accuracy_points": 0.5, "margin_mse_percent": 5,
                                "margin_trustworthiness": 0.005})
    folder.mkdir(parents=True)
    comparisons = grid.compare(rows, 0.95, 0.05)
    pd.DataFrame(grid.aggregate(rows, 0.95)).to_csv(folder / "results.csv", index=False)
    pd.DataFrame(comparisons).to_csv(folder / "comparisons.csv", index=False)
    pd.DataFrame(grid.latent_sizes(rows, 0.95, 0.05, equivalence_margins(statistics))).to_csv(
        folder / "latent_sizes.csv", index=False)


def test_the_section_names_sufficient_sizes_what_holds_and_what_flips(tmp_path):
    made_up_study(tmp_path / "studies" / "toy")
    text = study.render(tmp_path / "studies")
    assert text.startswith(study.BEGIN) and text.endswith(study.END)
    assert "### toy: 3 seeds, 1,000 test images, latent sizes 2, 8, 32" in text
    # Accuracy: conv's 8 and 32 give the same outcomes, so 8 is best (ties go to the smaller); stacked needs
    # 32. Trustworthiness is the same at every size: the smallest is best. Test MSE falls with every size.
    # Where only the best size is sufficient, the cell says no smaller one is.
    # A best at the largest size tried is said so: a larger one might do better still.
    best, edge = "(best; none smaller ≡)", "(best, the largest tried; none smaller ≡)"
    assert f"| Convolutional AE | 32 {edge} | – | 8 {best} | 2 {best} |" in text
    assert f"| Stacked AE | 32 {edge} | – | 32 {edge} | 2 {best} |" in text
    assert "Convolutional AE against Stacked AE: better is Stacked AE at 2, then Convolutional AE at 8, then " \
        "Stacked AE at 32." \
        in text
    assert "test MSE, holds at every size (Holm within each size): Convolutional AE better than Stacked AE at " \
           "every size (by +0.000" in text


def test_the_readme_section_is_replaced_between_its_markers_only(tmp_path):
    readme = f"intro\n{study.BEGIN}\nold\n{study.END}\noutro\n"
    assert study.replace_section(readme, "NEW") == "intro\nNEW\noutro\n"
    for broken in ("no markers", f"{study.END}\n{study.BEGIN}", f"{study.BEGIN}{study.BEGIN}{study.END}"):
        with pytest.raises(PipelineError, match="markers"):
            study.replace_section(broken, "NEW")


def test_a_study_folder_without_its_tables_is_one_line(tmp_path):
    (tmp_path / "studies" / "half").mkdir(parents=True)
    (tmp_path / "studies" / "half" / "results.csv").write_text("latent_dim\n2\n")
    with pytest.raises(PipelineError, match="no comparisons.csv, latent_sizes.csv"):
        study.render(tmp_path / "studies")
    with pytest.raises(PipelineError, match="no study folder"):
        study.render(tmp_path / "nothing")


@pytest.mark.parametrize("name,text,says", [
    ("results.csv", "latent_dim,name\n2,conv\n", "missing metric"),
    ("results.csv", "\x00\x01garbage", "expected the sweep's columns"),
    ("latent_sizes.csv", "name,metric,latent_dim,best_dim,smallest_sufficient\nconv,accuracy,two,8,8\n",
     "latent_dim must be whole numbers"),
    ("comparisons.csv", "latent_dim,metric,a,b,mean_diff,significant,better\n2,<script>,a,b,0,False,\n",
     "metric one of"),
])
def test_a_hostile_study_table_is_one_line_naming_it(tmp_path, name, text, says):
    made_up_study(tmp_path / "studies" / "toy")
    (tmp_path / "studies" / "toy" / name).write_text(text)
    with pytest.raises(PipelineError, match=says) as caught:
        study.render(tmp_path / "studies")
    assert name in str(caught.value) and "\n" not in str(caught.value)
