"""tools/: the sweep report and the experiments table, from made-up `dvc exp show --json` output."""
from __future__ import annotations

from stages.common.evaluation.seeds import aggregate, compare, ranks
from tools.exps import experiments, rows_of, table
from tools.sweep import cell_rows, finished_cells, markdown, matches


def params(latent_dim: int, threads=1, seed=42) -> dict:
    return {"seed": seed, "data": {"dataset": "mnist"}, "train": {"latent_dim": latent_dim, "threads": threads,
                                                                  "epochs": 5}}


def metrics(mse: float, acc: float) -> dict:
    return {f"metrics/{kind}_{arch}.json": {"data": values} for arch in ("conv", "vae") for kind, values in (
        ("train", {"test_mse": mse, "denoise_mse": 2 * mse}), ("svm", {"accuracy": acc}),
        ("tsne", {"trustworthiness": 0.99}))} | {"metrics/svm_pca.json": {"data": {"accuracy": acc - 0.01}}}


def revision(name: str, latent_dim: int, mse: float, acc: float, threads=1, seed=42) -> dict:
    return {"rev": name * 5, "name": name,
            "data": {"params": {"params.yaml": {"data": params(latent_dim, threads, seed)}},
                     "metrics": metrics(mse, acc)}}


SHOW = [
    {"rev": "workspace", "name": None, "data": {"params": {"params.yaml": {"data": params(64, None)}}, "metrics": {}}},
    {"rev": "abc1234", "name": "main", "data": {"params": {"params.yaml": {"data": params(64, None)}},
                                                "metrics": metrics(0.01, 0.95)},
     "experiments": [
         {"name": "new-8", "executor": None, "revs": [revision("new-8", 8, 0.02, 0.97)]},
         {"name": "old-8", "executor": None, "revs": [revision("old-8", 8, 0.5, 0.1)]},
         {"name": "two", "executor": None, "revs": [revision("two", 2, 0.04, 0.90)]},
         {"name": "other-threads", "executor": None, "revs": [revision("other-threads", 32, 0.01, 0.98, 2)]},
         {"name": "broken", "executor": {"state": "failed"}, "revs": [revision("broken", 16, 0.01, 0.98)]},
     ]},
]


def test_experiments_skip_failed_ones():
    assert [e["name"] for e in experiments(SHOW)] == ["new-8", "old-8", "two", "other-threads"]


def test_sweep_rows_take_the_newest_experiment_per_cell_with_the_same_settings():
    cells = finished_cells(experiments(SHOW), {"train.threads": 1, "data.dataset": "mnist"})
    assert sorted(cells) == [(42, 2), (42, 8)]
    rows = cell_rows(cells, ["conv", "vae"])
    conv8 = next(r for r in rows if r["latent_dim"] == 8 and r["name"] == "conv")
    assert conv8["test_mse"] == 0.02 and conv8["denoise_mse"] == 0.04 and conv8["experiment"] == "new-8"
    pca = [r for r in rows if r["name"] == "pca"]
    assert len(pca) == 2 and pca[1]["test_mse"] is None and pca[1]["accuracy"] == 0.96
    assert not [r for r in rows if r["name"] == "pixels"]  # no baseline that never ran


GRID = [{"rev": "abc1234", "name": "main", "data": {"params": {"params.yaml": {"data": params(64, None)}},
                                                    "metrics": {}},
         "experiments": [{"name": f"s{seed}-{dim}", "executor": None,
                          "revs": [revision(f"s{seed}-{dim}", dim, 0.01 + 0.001 * seed, 0.95 + 0.002 * seed,
                                            seed=seed)]}
                         for seed in (1, 2, 3) for dim in (8, 32)]}]


def test_the_grid_report_gives_intervals_ranks_and_what_is_indistinguishable():
    cells = finished_cells(experiments(GRID), {"train.threads": 1})
    assert sorted(cells) == [(s, d) for s in (1, 2, 3) for d in (8, 32)]
    rows = cell_rows(cells, ["conv", "vae"])
    summary, comparisons = aggregate(rows), compare(rows)
    page = markdown(summary, comparisons, ranks(rows, comparisons), ["conv", "vae", "pca"], "grid",
                    {"wall_seconds": 12.0, "cells": 6, "where": "2 worker(s) x 1 thread(s)"},
                    [{"seed": 4, "latent_dim": 8, "error": "error: params.yaml: a | b"}])
    assert "Wall time of the sweep run that computed 6 of these cells: 12 s on 2 worker(s) x 1 thread(s)." in page
    assert "| 4 | 8 | error: params.yaml: a / b |" in page
    # conv and vae are equal on every seed: one rank, said to be indistinguishable; PCA is 1 point lower on each.
    assert "| Convolutional AE | 95.40 ± 0.50 (n=3, rank 1) | 95.40 ± 0.50 (n=3, rank 1) |" in page
    assert "| PCA (baseline) | 94.40 ± 0.50 (n=3, rank 3) |" in page
    assert "- latent 8: indistinguishable with 3 seeds: Convolutional AE, Variational AE." in page
    assert "| 8 | Convolutional AE | PCA (baseline) | 1.00 [1.00, 1.00] | – |" in page
    assert "SVM accuracy %" in page and "0.954" not in page  # accuracy in percent, never as a fraction


def test_matches_compares_dotted_keys():
    assert matches(params(8), {"train.threads": 1, "data.dataset": "mnist"})
    assert not matches(params(8, 2), {"train.threads": 1})
    assert not matches({}, {"train.threads": 1})


def test_experiments_table_shows_changed_params_and_short_result_columns():
    frame = table(rows_of(SHOW))
    assert list(frame.columns[:3]) == ["experiment", "train.latent_dim", "train.threads"]
    assert "seed" not in frame.columns  # unchanged everywhere
    assert {"conv mse", "conv acc", "vae trust", "pca acc"} <= set(frame.columns)
    text = frame.to_string(index=False)
    assert max(len(line) for line in text.splitlines()) <= 200
    main = frame[frame["experiment"] == "main"].iloc[0]
    assert main["conv mse"] == "0.01000" and main["conv acc"] == "95.00"


def test_compare_runs_tells_a_changed_output_from_a_new_checkpoint_format(tmp_path):
    import torch

    from tools.compare_runs import compare

    state = {"w": torch.arange(4.0)}
    for run, wrapped in (("a", False), ("b", True)):
        (tmp_path / run / "data/models").mkdir(parents=True)
        (tmp_path / run / "metrics/run").mkdir(parents=True)
        torch.save({"state_dict": state} if wrapped else state, tmp_path / run / "data/models/conv.pt")
        (tmp_path / run / "metrics/svm_conv.json").write_text('{"accuracy": 0.9}')
        (tmp_path / run / "metrics/run/svm_conv.json").write_text(f'{{"seconds": {len(run)}.{run == "b"}}}')
    same, differ = compare(tmp_path / "a", tmp_path / "b")
    assert (same, differ) == (["data/models/conv.pt (weights)", "metrics/svm_conv.json"], [])
    (tmp_path / "b/metrics/svm_conv.json").write_text('{"accuracy": 0.8}')
    assert compare(tmp_path / "a", tmp_path / "b")[1] == ["metrics/svm_conv.json"]


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
