"""The benchmark scripts run end to end on toy data (their figures come from real runs, not from here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.interleave import COMPARISONS, USER, fault_fit, leg_value, paired_ratio
from tests.conftest import write_idx_folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_speed_benchmark_measures_only_the_parts_asked_for(tmp_path):
    data = write_idx_folder(tmp_path / "data", n_train=200, n_test=50)
    out = tmp_path / "speed.json"
    args = ["--data", str(data), "--parts", "svm", "startup", "--runs", "1", "--svm-runs", "1",
            "--latents", str(tmp_path / "none.npz"), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["train"] == {} and "quality" not in report
    from benchmarks.settings import settings

    assert report["svm"]["plain"]["features"].startswith(f"PCA-{settings().latent_dim}")
    assert 0 < report["svm"]["project"]["accuracy"] <= 1 and report["svm"]["ratio"] > 0
    assert set(report["startup"]) == {"download", "prepare", "tsne", "svm", "baselines", "report"}
    assert not any(entry["imports_torch"] for entry in report["startup"].values())
    assert "| architecture |" not in proc.stdout and "svm stage (sklearnex)" in proc.stdout


def test_the_gpu_benchmark_runs_on_the_cpu_and_writes_its_report(tmp_path):
    data = write_idx_folder(tmp_path / "data", n_train=200, n_test=50)
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--data", str(data), "--device", "cpu",
                           "--precision", "fp32", "--epochs", "2", "--archs", "stacked", "vae", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["n_train"] == 200 and report["epochs"] == 2
    assert set(report["archs"]) == {"stacked", "vae"}
    assert all(entry["train_seconds"] > 0 and entry["test_mse"] > 0 for entry in report["archs"].values())
    assert "total:" in proc.stdout


def test_the_gpu_benchmark_names_a_missing_device_in_one_line(tmp_path):
    data = write_idx_folder(tmp_path / "data", n_train=50, n_test=20)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--data", str(data), "--device", "cuda",
                           "--out", str(tmp_path / "gpu.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:  # a machine with a GPU
        return
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "cuda" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "gpu.json").exists()


def run_train_worker(way: str, data: Path, cache: Path) -> dict:
    # As from a user's shell: without the glibc variables Dask's nanny puts into the
    # environment of a process that started a cluster (an earlier test may have).
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "worker", "train", way, "stacked", str(data),
                           "all", "fp32", str(cache)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_notebook_baseline_runs_as_the_notebook_ran(tmp_path):
    """torchvision's own dataset class, and none of the settings the project's way adds to its process."""
    data = write_idx_folder(tmp_path / "data", n_train=300, n_test=50)
    notebook = run_train_worker("notebook", data, tmp_path / "cache")
    assert notebook["dataset_class"] == "MNIST" and notebook["n_images"] == 300
    assert notebook["n_test_images"] == 50  # its data cell made the test set before training, as the notebook's
    assert sorted(p.name for p in (tmp_path / "cache").glob("mnist-*/MNIST/raw/*")) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    default_threads = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                                     capture_output=True, text=True, check=True).stdout.strip()
    process = notebook["process"]
    assert {k: process[k] for k in ("deterministic_algorithms", "flush_denormal", "denormals_are_zero", "threads",
                                    "project_modules", "malloc_env")} == {
        "deterministic_algorithms": False, "flush_denormal": False, "denormals_are_zero": False,
        "threads": int(default_threads), "project_modules": [], "malloc_env": []}
    assert set(process["math_env"]) <= set(os.environ)  # recorded as the process had it
    assert process["inherited"]["affinity"] == sorted(os.sched_getaffinity(0))  # what its parent passed on
    # The same probe sees the project's settings where they are on, so it can tell.
    project_probe = subprocess.run(
        [sys.executable, "-c", "import json; from stages.common.models.allocator import keep_freed_memory_for_reuse;"
         "from stages.common.models.device import seed_everything; keep_freed_memory_for_reuse(); seed_everything(1);"
         "from benchmarks.notebook_way import process_settings; print(json.dumps(process_settings()))"],
        cwd=ROOT, capture_output=True, text=True, check=True)
    project = json.loads(project_probe.stdout)
    assert project["deterministic_algorithms"] and project["flush_denormal"] and project["denormals_are_zero"]
    assert project["project_modules"] == ["stages.common.models.allocator", "stages.common.models.device"]


def test_the_torchvision_copy_follows_the_data_it_stands_for(tmp_path):
    from benchmarks.notebook_way import dataset_class_for, torchvision_root

    first = write_idx_folder(tmp_path / "fashion-mnist", n_train=30, n_test=10)
    assert dataset_class_for(first) == "fashion-mnist"
    root = torchvision_root(first, "fashion-mnist", tmp_path / "cache")
    assert torchvision_root(first, "fashion-mnist", tmp_path / "cache") == root
    write_idx_folder(first, n_train=40, n_test=10)  # new files in the same folder: a new copy
    assert torchvision_root(first, "fashion-mnist", tmp_path / "cache") != root
    assert not list((tmp_path / "cache").rglob("*.partial"))


def test_the_speed_benchmark_times_both_ways_and_pairs_their_runs(tmp_path):
    data = write_idx_folder(tmp_path / "data", n_train=300, n_test=50)
    out = tmp_path / "speed.json"
    args = ["--data", str(data), "--parts", "train", "--archs", "stacked", "--runs", "2", "--train-limit", "100",
            "--torchvision-cache", str(tmp_path / "cache"), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(out.read_text())["train"]["stacked"]
    assert entry["n_images"] == 100
    notebook, project = entry["notebook_fp32"]["runs"], entry["project_fp32"]["runs"]
    literal = entry["literal_fp32"]["runs"]
    # Each round's baseline: the faster of the two equivalent runs of the notebook, with that round's seed.
    baseline = [min(n, lit) for n, lit in zip(notebook, literal)]
    assert entry["baseline_fp32"]["runs"] == baseline and entry["seeds"] == [42, 43]
    assert entry["paired_ratios_fp32"] == [p / b for p, b in zip(project, baseline)]
    medians = entry["project_fp32"]["seconds_per_epoch"], entry["baseline_fp32"]["seconds_per_epoch"]
    assert entry["ratio_fp32"] == medians[0] / medians[1]
    # Every way's epoch says what CPU time it took, so a slow run tells computing more from waiting.
    usage = entry["process"]["usage"]
    assert all(u["cpu_seconds"] > 0 and u["cores_busy"] > 0 for runs in usage.values() for u in runs), usage
    assert {"literal fp32", "notebook fp32", "project fp32"} <= set(usage)
    # The table gives the paired ratio with the range of the rounds' ratios beside it.
    ratios = entry["paired_ratios_fp32"]
    assert f"{entry['median_paired_ratio_fp32']:.2f} ({min(ratios):.2f}–{max(ratios):.2f})" in proc.stdout
    assert len(literal) == 2 and entry["baseline_vs_literal_paired"] == [n / lit for n, lit in zip(notebook, literal)]
    assert entry["baseline_vs_literal_medians"] == (entry["notebook_fp32"]["seconds_per_epoch"]
                                                    / entry["literal_fp32"]["seconds_per_epoch"])
    # The floating-point state of every notebook-way run, and the machine around every run, are recorded.
    assert [p["flush_denormal"] for p in entry["process"]["notebook way"]] == [False, False]
    assert all("steal_share" in m and "mhz_start" in m for m in entry["process"]["machine"]["literal fp32"])
    assert entry["baseline_same_loss_as_literal"] is True  # the baseline computes what the notebook's code does
    losses = entry["losses"]  # each round's, both ways: a mismatch says which round
    assert losses["notebook way"] == losses["notebook's code"] and len(losses["notebook way"]) == 2
    assert "| stacked |" in proc.stdout and "notebook's code s" in proc.stdout
    # Beside the baseline, not in it: the notebook's code with freed memory kept, paired with it and the project.
    kept = entry["literal_kept_fp32"]["runs"]
    assert len(kept) == 2 and entry["kept_vs_baseline_paired"] == [k / b for k, b in zip(kept, baseline)]
    assert entry["paired_ratios_fp32_vs_kept"] == [p / k for p, k in zip(project, kept)]
    assert all("system_seconds" in u for runs in usage.values() for u in runs), usage
    assert "freed memory kept s" in proc.stdout and "page faults, kernel s" in proc.stdout


def test_the_literal_notebook_imports_nothing_of_the_project(tmp_path, monkeypatch):
    from benchmarks.speed import measure_literal

    # Nothing the benchmark's own environment holds reaches it: it starts as from a fresh login shell.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("AE_BENCHMARK_MARKER", "set by the parent")
    data = write_idx_folder(tmp_path / "data", n_train=200, n_test=50)
    for arch in ("superres", "conv", "stacked", "vae", "denoising"):
        result = measure_literal(arch, data, "all", str(tmp_path / "cache"), 42)
        assert result["project_modules"] == [] and result["n_images"] == 200 and result["loss"] > 0, result
        assert result["n_test_images"] == 50, result  # the test set made before training, as the notebook did
        assert "PATH" in result["environment"], result["environment"]
        assert not {"OMP_NUM_THREADS", "AE_BENCHMARK_MARKER"} & set(result["environment"]), result["environment"]
    # Only what is added on purpose reaches it, and it still computes the same loss.
    from stages.common.models.allocator import freed_memory_kept_env

    plain = measure_literal("stacked", data, "all", str(tmp_path / "cache"), 42)
    kept = measure_literal("stacked", data, "all", str(tmp_path / "cache"), 42, freed_memory_kept_env())
    assert set(freed_memory_kept_env()) <= set(kept["environment"]) and kept["loss"] == plain["loss"]
    assert not set(freed_memory_kept_env()) & set(plain["environment"])


def test_the_interleaved_check_runs_the_notebook_inside_the_benchmark_and_alone(tmp_path):
    data = write_idx_folder(tmp_path / "data", n_train=300, n_test=50)
    out = tmp_path / "interleave.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.interleave", "--data", str(data), "--arch", "stacked",
                           "--train-limit", "100", "--rounds", "1", "--pause-seconds", "0", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    from stages.common.models.device import cpu_supports_bf16

    report = json.loads(out.read_text())
    [round_] = report["rounds"]
    inside, alone = round_["inside the benchmark"], round_["alone"]
    assert all(inside[k] > 0 for k in ("notebook way", "notebook's code", "project fp32"))
    assert alone["notebook's code alone"] > 0 and "steal_share" in alone["machine"]
    assert alone["machine"]["probe_ms_start"] > 0 and alone["machine"]["probe_ms_end"] > 0
    assert alone["usage"]["cpu_seconds"] > 0 and inside["usage"]["cpu_seconds"] > 0
    assert "cores busy" in proc.stdout
    # Both starting processes' inherited state, to be compared: here they are the same.
    assert inside["inherited from the benchmark"] == report["inherited from this process (the runs alone)"]
    # Straight after a bf16 epoch, where the CPU has bf16 hardware: does the clock it leaves slow the notebook?
    assert ("alone after bf16" in round_) == cpu_supports_bf16()
    if cpu_supports_bf16():
        assert round_["alone after bf16"]["notebook's code alone, after bf16"] > 0
    assert "| 1 |" in proc.stdout and "| median |" in proc.stdout and "threads a core" in proc.stdout
    # Once more alone, glibc keeping freed memory: the notebook's epoch without the faults of a heap handed back.
    kept = round_["alone, freed memory kept"]
    assert kept["notebook's code alone, freed memory kept"] > 0 and kept["usage"]["system_seconds"] >= 0
    assert "page faults M in / alone / after / kept in / kept" in proc.stdout
    # The benchmark's own run with freed memory kept, paired with the one alone: are the faults all it costs?
    kept_inside = round_["inside the benchmark, freed memory kept"]
    assert kept_inside["notebook's code, freed memory kept"] > 0 and kept_inside["usage"]["cpu_seconds"] > 0
    assert leg_value(round_, "inside the benchmark, freed memory kept", USER) > 0
    assert sorted(report["paired"]) == sorted(what for what, _, _ in COMPARISONS)  # one round pairs nothing yet
    assert all(found is None for found in report["paired"].values())


def test_the_interleaved_rounds_are_compared_in_pairs_with_an_interval():
    rounds = [{"inside the benchmark": {"notebook's code": inside}, "alone": {"notebook's code alone": alone}}
              for inside, alone in ((11.0, 10.0), (12.1, 11.0), (9.9, 9.0), (13.2, 12.0))]  # each round 1.1
    found = paired_ratio(rounds, ("inside the benchmark", "notebook's code"), ("alone", "notebook's code alone"))
    assert found["ratios"] == pytest.approx([1.1] * 4) and found["geometric_mean"] == pytest.approx(1.1)
    low, high = found["interval"]
    assert low == pytest.approx(1.1) and high == pytest.approx(1.1)  # no spread between rounds: no width
    rounds[0]["alone"]["notebook's code alone"] = 10.5  # one round 1.048: still every round slower inside
    low, high = paired_ratio(rounds, ("inside the benchmark", "notebook's code"),
                             ("alone", "notebook's code alone"))["interval"]
    assert 1 < low < 1.087 < high
    rounds[1]["alone"]["notebook's code alone"] = 13.0  # one round the other way: the interval takes in 1
    low, high = paired_ratio(rounds, ("inside the benchmark", "notebook's code"),
                             ("alone", "notebook's code alone"))["interval"]
    assert low < 1 < high
    # A round whose leg failed (no number) is left out, not counted as a ratio.
    rounds[2]["alone"] = {"error": "failed"}
    assert len(paired_ratio(rounds, ("inside the benchmark", "notebook's code"),
                            ("alone", "notebook's code alone"))["ratios"]) == 3


def test_a_legs_user_seconds_are_its_cpu_seconds_outside_the_kernel():
    round_ = {"alone": {"notebook's code alone": 30.0, "usage": {"cpu_seconds": 60.0, "system_seconds": 15.5}},
              "inside the benchmark": {"error": "failed"}}
    assert leg_value(round_, "alone", USER) == pytest.approx(44.5)
    assert leg_value(round_, "alone", "notebook's code alone") == 30.0
    # A failed leg, a leg that did not run, a usage without kernel seconds: no number, so no ratio from them.
    assert leg_value(round_, "inside the benchmark", USER) is None
    assert leg_value(round_, "alone after bf16", USER) is None
    assert leg_value({"alone": {"usage": {"cpu_seconds": 60.0}}}, "alone", USER) is None
    rounds = [{"a": {"usage": {"cpu_seconds": 2 * user + 1, "system_seconds": 1}}, "b": {"usage": {
        "cpu_seconds": user + 3, "system_seconds": 3}}} for user in (10.0, 12.0, 9.0)]
    assert paired_ratio(rounds, ("a", USER), ("b", USER))["geometric_mean"] == pytest.approx(2.0)


def fault_rounds(points: list) -> list:
    """Rounds whose notebook's-code runs took `seconds` with `faults` page faults, three legs a round."""
    legs = (("inside the benchmark", "notebook's code"), ("alone", "notebook's code alone"),
            ("alone after bf16", "notebook's code alone, after bf16"))
    return [{leg: {key: seconds, "usage": {"minor_faults": faults}} for (leg, key), (seconds, faults) in
             zip(legs, points[i:i + 3])} for i in range(0, len(points), 3)]


def test_the_epoch_seconds_are_fitted_on_the_page_faults():
    # 10 s of work and 2 microseconds a fault, exactly: the fit says so, and that faults explain all the spread.
    exact = [(10 + 2e-6 * f, f) for f in (5e6, 6e6, 7e6, 8e6, 9e6, 5.5e6)]
    found = fault_fit(fault_rounds(exact))
    assert found["runs"] == 6 and found["microseconds_per_fault"] == pytest.approx(2.0)
    assert found["seconds_at_no_faults"] == pytest.approx(10.0) and found["r_squared"] == pytest.approx(1.0)
    assert found["interval"][0] == pytest.approx(2.0) and found["faults_millions"] == [5.0, 9.0]
    # Times that do not follow the faults: the slope's interval takes in 0 and r² is small.
    unrelated = [(s, f) for s, f in zip((10.0, 12.0, 10.0, 12.0, 11.0, 11.0), (5e6, 6e6, 7e6, 8e6, 5e6, 8e6))]
    found = fault_fit(fault_rounds(unrelated))
    assert found["interval"][0] < 0 < found["interval"][1] and found["r_squared"] < 0.5
    # Legs without a time or without a count are left out; too few runs, or one count only, fit nothing.
    rounds = fault_rounds(exact)
    rounds[0]["alone"] = {"error": "failed"}
    rounds[1]["alone"]["usage"] = None
    assert fault_fit(rounds)["runs"] == 4
    assert fault_fit(fault_rounds(exact[:2])) is None
    assert fault_fit(fault_rounds([(10.0, 5e6), (11.0, 5e6), (12.0, 5e6)])) is None
