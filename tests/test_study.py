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
    pd.DataFrame(grid.latent_sizes(rows, 0.05, equivalence_margins(statistics))).to_csv(
        folder / "latent_sizes.csv", index=False)
    for name in study.FILES:  # what the README links to beside the tables
        (folder / name).write_text("made up")


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
    # The step-down's verdicts, counted, with the seeds that would decide the rest (a newer sweep's columns).
    assert "- Decided: " in text and " sizes below a best; " in text
    assert "- SVM accuracy %, holds at every size: no pair is separated at every size." in text


def test_the_readme_section_is_replaced_between_its_markers_only(tmp_path):
    readme = f"intro\n{study.BEGIN}\nold\n{study.END}\noutro\n"
    assert study.replace_section(readme, "NEW") == "intro\nNEW\noutro\n"
    for broken in ("no markers", f"{study.END}\n{study.BEGIN}", f"{study.BEGIN}{study.BEGIN}{study.END}"):
        with pytest.raises(PipelineError, match="markers"):
            study.replace_section(broken, "NEW")


def test_a_study_folder_without_its_tables_is_one_line(tmp_path):
    (tmp_path / "studies" / "half").mkdir(parents=True)
    (tmp_path / "studies" / "half" / "results.csv").write_text("latent_dim\n2\n")
    for name in study.FILES:
        (tmp_path / "studies" / "half" / name).write_text("made up")
    with pytest.raises(PipelineError, match="no comparisons.csv, latent_sizes.csv"):
        study.render(tmp_path / "studies")
    with pytest.raises(PipelineError, match="no study folder"):
        study.render(tmp_path / "nothing")


@pytest.mark.parametrize("name,text,says", [
    ("results.csv", "latent_dim,name\n2,conv\n", "missing metric"),
    ("results.csv", "\x00\x01garbage", "expected the sweep's columns"),
    ("latent_sizes.csv", "name,metric,latent_dim,best_dim,smallest_sufficient\nconv,accuracy,two,8,8\n",
     "column latent_dim, row 2: 'two'; expected a whole latent size"),
    ("comparisons.csv", "latent_dim,metric,a,b,mean_diff,significant,better\n2,<script>,conv,vae,0,False,\n",
     "column metric, row 2: '<script>'; expected one of"),
])
def test_a_hostile_study_table_is_one_line_naming_it(tmp_path, name, text, says):
    made_up_study(tmp_path / "studies" / "toy")
    (tmp_path / "studies" / "toy" / name).write_text(text)
    with pytest.raises(PipelineError, match=says) as caught:
        study.render(tmp_path / "studies")
    assert name in str(caught.value) and "\n" not in str(caught.value)


def study_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "studies" / "toy"
    made_up_study(folder)
    return folder


def edit(path: Path, column: str, row: int, value) -> None:
    frame = pd.read_csv(path)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


HOSTILE_VALUES = [  # (table, column, row, value, what the one line says), #43
    ("results.csv", "mean", 1, float("nan"), "column mean, row 3: None; expected a number from 0 to 1"),
    ("results.csv", "mean", 0, -53.4, "column mean, row 2: -53.4; expected a number from 0 to 1"),
    ("results.csv", "mean", 0, "fast", "column mean, row 2: 'fast'; expected a number"),
    ("results.csv", "seeds", 0, 0, "column seeds, row 2: 0; expected a whole number of seeds, at least 1"),
    ("results.csv", "seeds", 0, -1, "column seeds, row 2: -1; expected a whole number of seeds"),
    ("results.csv", "seeds", 0, 2.5, "column seeds, row 2: 2.5; expected a whole number of seeds"),
    ("results.csv", "name", 0, "zz", "column name, row 2: 'zz'; expected a feature space"),
    ("results.csv", "ci_high", 0, 1e308, "column ci_high, row 2: 1e+308; expected a number from 0 to 1"),
    ("results.csv", "latent_dim", 0, 100000, "column latent_dim, row 2: 100000; expected a whole latent size"),
    ("comparisons.csv", "mean_diff", 0, float("inf"), "column mean_diff, row 2: inf; expected a difference"),
    ("comparisons.csv", "better", 0, "<script>", "column better, row 2: '<script>'; expected empty, or the pair"),
    ("latent_sizes.csv", "smallest_sufficient", 0, "1e9", "column smallest_sufficient, row 2: 1000000000.0"),
    ("latent_sizes.csv", "metric", 0, "speed", "column metric, row 2: 'speed'; expected one of"),
]


@pytest.mark.parametrize("table,column,row,value,said", HOSTILE_VALUES)
def test_a_hostile_study_value_is_one_line_naming_the_file_column_and_row(tmp_path, table, column, row, value,
                                                                         said):
    folder = study_folder(tmp_path)
    edit(folder / table, column, row, value)
    with pytest.raises(PipelineError) as err:
        study.render(tmp_path / "studies")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{folder / table}: ") and said in message, message


def test_a_study_folder_whose_name_is_markup_is_refused(tmp_path):
    folder = study_folder(tmp_path)
    folder.rename(folder.parent / "<img src=x onerror=alert(1)>")
    with pytest.raises(PipelineError, match="a study folder's name is letters, digits"):
        study.render(tmp_path / "studies")


@pytest.mark.parametrize("name", ["latent_size.png", "report.md"])
def test_a_study_without_the_figure_or_report_the_readme_links_is_refused(tmp_path, name):
    folder = study_folder(tmp_path)
    (folder / name).unlink()
    with pytest.raises(PipelineError, match=f"{name}: missing"):
        study.render(tmp_path / "studies")


def test_a_fifo_or_an_oversized_table_is_refused_without_reading_it(tmp_path):
    import os

    folder = study_folder(tmp_path)
    (folder / "comparisons.csv").unlink()
    os.mkfifo(folder / "comparisons.csv")  # reading it would block for ever
    with pytest.raises(PipelineError, match="comparisons.csv: not a regular file"):
        study.render(tmp_path / "studies")
    (folder / "comparisons.csv").unlink()
    with open(folder / "comparisons.csv", "wb") as f:
        f.truncate(study.MAX_TABLE_BYTES + 1)  # sparse: no time or disk spent
    with pytest.raises(PipelineError, match="bytes, far more than a sweep writes"):
        study.render(tmp_path / "studies")


def test_the_tool_says_a_bad_table_in_one_line_and_writes_nothing(tmp_path):
    folder = study_folder(tmp_path)
    edit(folder / "results.csv", "mean", 0, float("nan"))
    (tmp_path / "README.md").write_text(f"intro\n{study.BEGIN}\nold\n{study.END}\n")
    proc = subprocess.run([sys.executable, "-m", "tools.study"], cwd=tmp_path, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "column mean, row 2" in proc.stderr
    assert "Traceback" not in proc.stderr and "old" in (tmp_path / "README.md").read_text()
