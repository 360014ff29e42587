"""tools/: the sweep report and the experiments table, from made-up `dvc exp show --json` output."""
from __future__ import annotations

from tools.exps import experiments, rows_of, table
from tools.sweep import markdown, matches, rows


def params(latent_dim: int, threads=1) -> dict:
    return {"seed": 42, "data": {"dataset": "mnist"}, "train": {"latent_dim": latent_dim, "threads": threads,
                                                                "epochs": 5}}


def metrics(mse: float, acc: float) -> dict:
    return {f"metrics/{kind}_{arch}.json": {"data": values} for arch in ("conv", "vae") for kind, values in (
        ("train", {"test_mse": mse}), ("svm", {"accuracy": acc}), ("tsne", {"trustworthiness": 0.99}))} | {
        "metrics/svm_pca.json": {"data": {"accuracy": acc - 0.01}}}


def revision(name: str, latent_dim: int, mse: float, acc: float, threads=1) -> dict:
    return {"rev": name * 5, "name": name, "data": {"params": {"params.yaml": {"data": params(latent_dim, threads)}},
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


def test_sweep_rows_take_the_newest_experiment_per_size_with_the_same_settings():
    table_rows = rows(experiments(SHOW), ["conv", "vae"], {"train.threads": 1, "data.dataset": "mnist"})
    assert sorted({r["latent_dim"] for r in table_rows}) == [2, 8]
    conv8 = next(r for r in table_rows if r["latent_dim"] == 8 and r["architecture"] == "Convolutional AE")
    assert conv8["test_mse"] == 0.02 and conv8["experiment"] == "new-8"
    pca = [r for r in table_rows if r["architecture"] == "PCA (baseline)"]
    assert len(pca) == 2 and pca[0]["test_mse"] is None
    page = markdown(table_rows, "sweep", 12.0)
    assert "| Variational AE | 0.040000 | 0.020000 |" in page and "Wall time of this sweep: 12 s." in page


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
