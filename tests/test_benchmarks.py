"""The benchmark scripts run end to end on toy data (their figures come from real runs, not from here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert report["svm"]["plain"]["features"].startswith("PCA-64")
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
