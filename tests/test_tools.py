"""tools/: finding a sweep's cells, its report, the experiments table, compare_runs and facts, on made-up
experiments (the real ones: tests/test_sweep.py, tests/test_cluster.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from stages.common.evaluation import grid, grid_report
from stages.common.evaluation.grid_report import markdown
from tools.experiments import Experiment
from tools.exps import INVALID, table
from tools.sweep import cell_settings, finished_cells


def params(latent_dim: int, threads=1, seed=42) -> dict:
    return {"seed": seed, "data": {"dataset": "mnist"}, "train": {"latent_dim": latent_dim, "threads": threads,
                                                                  "epochs": 5},
            "sweep": {"seeds": [1, 2]}, "statistics": {"alpha": 0.05}}


def metrics(mse: float, acc: float) -> dict:
    return {f"metrics/{kind}_{arch}.json": values for arch in ("conv", "vae") for kind, values in (
        ("train", {"test_mse": mse, "denoise_mse": 2 * mse}), ("svm", {"accuracy": acc}),
        ("tsne", {"trustworthiness": 0.99}))} | {"metrics/svm_pca.json": {"accuracy": acc - 0.01}}


def experiment(name: str, latent_dim: int, mse: float, acc: float, threads=1, seed=42, rev=None) -> Experiment:
    return Experiment(name, rev or name * 5, "abc1234", params(latent_dim, threads, seed), metrics(mse, acc))


FOUND = [experiment("new-8", 8, 0.02, 0.97), experiment("old-8", 8, 0.5, 0.1), experiment("two", 2, 0.04, 0.90),
         experiment("other-threads", 32, 0.01, 0.98, threads=2)]


def test_a_cell_is_the_newest_experiment_with_the_same_settings_and_code():
    settings = cell_settings(params(64, threads=None), threads=1, steps=None)
    assert "sweep.seeds" not in settings and "statistics.alpha" not in settings and "seed" not in settings
    cells = finished_cells(FOUND, settings, lambda rev: True)
    assert sorted(cells) == [(42, 2), (42, 8)] and cells[(42, 8)].name == "new-8"
    # An experiment of other code (a commit that changed a stage) is not this sweep's cell.
    assert sorted(finished_cells(FOUND, settings, lambda rev: rev != "new-8" * 5)) == [(42, 2), (42, 8)]
    assert finished_cells(FOUND, settings, lambda rev: rev != "new-8" * 5)[(42, 8)].name == "old-8"
    assert finished_cells(FOUND, {**settings, "data.dataset": "fashion-mnist"}, lambda rev: True) == {}
    # sweep.steps: a cell trained 5 epochs is not a cell of a sweep by optimizer steps.
    by_steps = cell_settings(params(64, threads=None), threads=1, steps=2345)
    assert by_steps["train.steps"] == 2345 and by_steps["train.epochs"] is None
    assert finished_cells(FOUND, by_steps, lambda rev: True) == {}


def grid_rows() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for seed in (1, 2, 3):
        conv = rng.random(2000) < 0.95
        rows += [{"seed": seed, "latent_dim": 8, "name": "conv", "trustworthiness": 0.95,
                  "per_image": {"accuracy": conv, "test_mse": rng.random(2000) / 100,
                                "denoise_mse": rng.random(2000) / 50}},
                 {"seed": seed, "latent_dim": 8, "name": "vae", "trustworthiness": 0.96,
                  "per_image": {"accuracy": conv, "test_mse": rng.random(2000) / 100,
                                "denoise_mse": rng.random(2000) / 50}},
                 {"seed": seed, "latent_dim": 8, "name": "pca", "per_image": {"accuracy": rng.random(2000) < 0.5}}]
    return rows


def test_the_grid_report_names_its_noises_its_family_and_what_is_not_separated():
    rows = grid_rows()
    summary, comparisons = grid.aggregate(rows, 0.95), grid.compare(rows, 0.95, 0.05)
    statistics = SimpleNamespace(confidence=0.95, alpha=0.05)
    page = markdown(summary, comparisons, grid.ranks(rows, comparisons), ["conv", "vae", "pca"], "grid",
                    {"wall_seconds": 12.0, "cells": 3, "where": "this machine (2 cell(s) at a time)"}, statistics,
                    excluded=["cell-x: metrics/svm_conv.json has accuracy = nan; expected a number from 0 to 1"],
                    failed=[{"seed": 4, "latent_dim": 8, "name": "cell-s4", "error": "error: a | b <script>"}],
                    command="python -m tools.sweep --out 'a b'")
    assert "Wall time of the sweep run that computed 3 of these cells: 12 s on this machine" in page
    assert "| 4 | 8 | error: a \\| b &lt;script&gt; | logs/cell-s4.log |" in page
    assert "## Excluded cells" in page and "accuracy = nan" in page
    assert "one Holm family (baselines included)" in page and "count both noises" in page
    assert "t-SNE trustworthiness (higher is better; intervals over seeds only)" in page
    assert "- latent 8: not separated with 3 seeds and 2,000 test images (Holm): Convolutional AE, " \
           "Variational AE." in page  # identical outcomes
    assert "indistinguishable" not in page
    assert "| 8 | Convolutional AE | PCA (baseline) |" in page and "3 of 3 (1.00 [0.29, 1.00])" in page
    assert "SVM accuracy %" in page and "0.95" not in page.split("## SVM accuracy")[1].split("##")[0]
    assert "## How this was made" in page and "`python -m tools.sweep --out 'a b'`" in page
    assert "## Which latent size" not in page  # one latent size: nothing to choose


def test_the_grid_report_says_which_latent_size_suffices_and_draws_bands():
    from stages.common.settings import StatisticsSettings
    from tools.sweep import equivalence_margins

    rows = []
    for row in grid_rows():
        rows.append(row)
        per_image = dict(row["per_image"])
        if row["name"] == "conv":  # at size 32: the same outcomes as at 8 (a size that suffices)
            rows.append({**row, "latent_dim": 32, "per_image": per_image})
        if row["name"] == "vae":  # at size 32 far better: size 8 does not suffice
            rows.append({**row, "latent_dim": 32, "trustworthiness": 0.99,
                         "per_image": {**per_image, "accuracy": np.ones(2000, dtype=bool),
                                       "test_mse": per_image["test_mse"] / 4}})
    statistics = StatisticsSettings(confidence=0.95, alpha=0.05, margin_accuracy_points=0.5, margin_mse_percent=5,
                                    margin_trustworthiness=0.005, failure_mse_fraction=1.0,
                                    convergence_drop_percent=2, power=0.8)
    sizes = grid.latent_sizes(rows, 0.05, equivalence_margins(statistics))
    accuracy = {(r["name"], r["latent_dim"]): r for r in sizes if r["metric"] == "accuracy"}
    assert accuracy[("conv", 8)]["equivalent"] and accuracy[("conv", 8)]["smallest_sufficient"] == 8
    assert not accuracy[("vae", 8)]["equivalent"] and accuracy[("vae", 8)]["smallest_sufficient"] == 32
    assert accuracy[("vae", 8)]["best_dim"] == 32 and accuracy[("vae", 8)]["mean_diff"] < 0
    summary, comparisons = grid.aggregate(rows, 0.95), grid.compare(rows, 0.95, 0.05)
    page = markdown(summary, comparisons, grid.ranks(rows, comparisons), ["conv", "vae", "pca"], "grid", None,
                    statistics, sizes=sizes)
    section = page.split("## Which latent size each feature space needs")[1]
    best = "(best; none smaller ≡)"
    assert f"| Convolutional AE | 8 {best} | 8 {best} | 8 {best} | 8 {best} |" in section  # ties: the smaller
    largest = "(best, the largest tried; none smaller ≡)"
    assert f"| Variational AE | 32 {largest} | 8 {best} | 32 {largest} | 32 {largest} |" in section
    assert "not \"sufficient\"" in section and "≡" in section and "| ±0.50 |" in section
    assert "| Variational AE | ±0.50 | -5.03 [-5.63, -4.44] ✗ | best |" in section  # the 90% interval of a test at 0.05
    figure = grid_report.figure(summary, ["conv", "vae", "pca"], "grid")
    assert all(ax.collections for ax in figure.axes[:3])  # a band (fill_between) on every panel with data


def test_experiments_table_shows_changed_params_short_columns_and_names_invalid_values():
    broken = experiment("broken", 16, 0.01, float("nan"))
    found = [("workspace", experiment("workspace", 64, 0.01, 0.95)), *((f"  {e.name}", e) for e in FOUND),
             ("  broken", broken)]
    frame = table(found)
    assert list(frame.columns[:3]) == ["experiment", "train.latent_dim", "train.threads"]
    assert "seed" not in frame.columns  # unchanged everywhere
    assert {"conv mse", "conv acc", "vae trust", "pca acc"} <= set(frame.columns)
    assert max(len(line) for line in frame.to_string(index=False).splitlines()) <= 200
    row = frame[frame["experiment"] == "workspace"].iloc[0]
    assert row["conv mse"] == "0.010000" and row["conv acc"] == "95.00"
    assert frame[frame["experiment"] == "  broken"].iloc[0]["conv acc"] == INVALID
    assert broken.problems and "metrics/svm_conv.json has accuracy = nan" in broken.problems[0]


def test_compare_runs_compares_weights_not_bytes_and_names_a_file_that_is_no_model(tmp_path):
    import pickle

    import pytest
    import torch

    from stages.common.errors import PipelineError
    from stages.common.models.checkpoint import FORMAT
    from tools.compare_runs import compare

    state = {"w": torch.arange(4.0)}
    for run in ("a", "b"):
        (tmp_path / run / "data/models").mkdir(parents=True)
        (tmp_path / run / "metrics/run").mkdir(parents=True)
        saved = {"format": FORMAT, "arch": "conv", "latent_dim": 4, "settings": {}, "state_dict": state}
        torch.save({**saved, "note": run}, tmp_path / run / "data/models/conv.pt")  # other bytes, same weights
        (tmp_path / run / "metrics/svm_conv.json").write_text('{"accuracy": 0.9}')
        (tmp_path / run / "metrics/run/svm_conv.json").write_text(f'{{"seconds": {len(run)}.{run == "b"}}}')
    same, differ = compare(tmp_path / "a", tmp_path / "b")
    assert (same, differ) == (["data/models/conv.pt (weights)", "metrics/svm_conv.json"], [])
    (tmp_path / "b/metrics/svm_conv.json").write_text('{"accuracy": 0.8}')
    assert compare(tmp_path / "a", tmp_path / "b")[1] == ["metrics/svm_conv.json"]

    class Runs:  # a pickle that would run code on loading
        def __reduce__(self):
            return (print, ("pwned",))

    model = tmp_path / "b/data/models/conv.pt"
    for damage in (pickle.dumps(Runs(), protocol=4), model.read_bytes()[:200]):
        model.write_bytes(damage)
        with pytest.raises(PipelineError) as err:
            compare(tmp_path / "a", tmp_path / "b")
        assert str(model) in str(err.value) and "weights_only" not in str(err.value)
    torch.save({**saved, "state_dict": [1, 2]}, model)
    with pytest.raises(PipelineError, match="holds no state dict"):
        compare(tmp_path / "a", tmp_path / "b")


def test_facts_print_counts_as_counts(tmp_path, monkeypatch, capsys):
    from tools import facts

    (tmp_path / "metrics/run").mkdir(parents=True)
    (tmp_path / "metrics/run/train_conv.json").write_text('{"n_train": 64, "seconds": 1.5}')
    (tmp_path / "metrics/run/train_vae.json").write_text('{"seconds": 2.5}')
    monkeypatch.chdir(tmp_path)
    facts.main(["train"])
    out = capsys.readouterr().out
    assert " 64 " in out + " " and "64.0" not in out


def test_exps_cut_long_param_values():
    from tools.exps import MAX_PARAM_CHARS, _param

    long = "/home/someone/datasets/fashion-mnist/version-2/raw"
    shown = _param(long)
    assert len(shown) == MAX_PARAM_CHARS and shown.startswith("…") and long.endswith(shown[1:])
    assert _param(None) == "null" and _param(64) == "64"


def test_a_cells_time_is_split_by_its_stages_own_facts_and_the_rest_is_overhead(tmp_path):  # #44
    from tools.sweep import LOG_HEAD, cell_cost, cost_summary

    log = tmp_path / "cell.log"
    log.write_text(f"{LOG_HEAD} 100.0 s on host\n$ dvc exp run\nStage 'prepare' is cached - skipping run\n"
                   "Running stage 'train@conv':\n> python -m stages train conv\nRunning stage 'svm@conv':\n"
                   "Running stage 'baseline_pca':\nRunning stage 'tsne@conv':\n")
    facts = {"train_conv": {"process_seconds": 50.0, "seconds": 40.0},
             "svm_conv": {"process_seconds": 20.0, "fit_seconds": 12.0, "predict_seconds": 5.0},
             "svm_pca": {"process_seconds": 9.0, "fit_seconds": 6.0, "predict_seconds": 2.0},
             "tsne_conv": {"process_seconds": 1e99},  # a value no stage records: left out, never summed
             "latents_conv": {"process_seconds": 4.0}}  # restored from the run-cache in this cell: costs nothing
    cost = cell_cost(facts, log)
    assert cost["parts"] == pytest.approx({
        "train@conv steps": 40.0, "train@conv rest": 10.0, "svm@conv fit": 12.0, "svm@conv predict": 5.0,
        "svm@conv rest": 3.0, "baseline_pca fit": 6.0, "baseline_pca predict": 2.0, "baseline_pca rest": 1.0,
        "overhead": 21.0})
    assert cost_summary([cost, cost])["median_seconds"]["overhead"] == 21.0
    headless = tmp_path / "old.log"
    headless.write_text("Running stage 'train@conv':\n")  # a log of a sweep before the head line: no overhead
    assert "overhead" not in cell_cost(facts, headless)["parts"]
    assert cell_cost(facts, tmp_path / "absent.log") is None
