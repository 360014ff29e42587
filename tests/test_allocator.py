"""glibc allocator settings: training keeps its freed buffers, and neither setting changes a value."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest

from stages.common.models import allocator
from tests.conftest import ROOT

# Trains the Super-Resolution AE (the largest activations, 6 MB) in a fresh process,
# with or without the training setting, and reports the page faults of each step of
# its second epoch, and the loss. The median step is what the setting is about: a
# step may still fault now and then (one CI run counted 3,137 faults in the first
# four steps with the setting on, against 22,773 without).
TRAIN_STEPS = """
import json, resource, sys, torch
from stages.common.models.allocator import keep_freed_memory_for_reuse
from stages.common.models.device import seed_everything
from stages.common.models.nets import build_model
from stages.common.models.training import adam, fast_layout, train_epoch
took = keep_freed_memory_for_reuse() if sys.argv[1] == "reuse" else None  # "env": glibc read it at start
seed_everything(0)
torch.set_num_threads(1)
model = fast_layout(build_model("superres", 16), torch.device("cpu"))
optimizer = adam(model, 1e-3)
x = torch.rand(8 * 128, 1, 28, 28)
train_epoch(model, optimizer, x, 128, torch.Generator().manual_seed(0), "fp32")  # warm-up
faults_so_far = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt]
def count_faults():
    faults_so_far.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
loss, _ = train_epoch(model, optimizer, x, 128, torch.Generator().manual_seed(1), "fp32", count_faults)
faults = [after - before for before, after in zip(faults_so_far, faults_so_far[1:])]
print(json.dumps({"took": took, "faults_per_step": faults, "loss": loss}))
"""

glibc_only = pytest.mark.skipif(sys.platform != "linux", reason="the settings are glibc's")


def train_steps(mode: str, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", TRAIN_STEPS, mode], cwd=ROOT, capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})})
    return json.loads(done.stdout.splitlines()[-1])


@glibc_only
def test_reusing_freed_memory_stops_the_page_faults_and_changes_no_value():
    default, reuse = train_steps("default"), train_steps("reuse")
    assert reuse["took"] is True
    default_step = statistics.median(default["faults_per_step"])
    reuse_step = statistics.median(reuse["faults_per_step"])
    # Without it every step faults its activations in anew: thousands of pages a step.
    assert default_step > 1000, default["faults_per_step"]
    assert reuse_step < default_step / 10, (reuse["faults_per_step"], default["faults_per_step"])
    assert reuse["loss"] == default["loss"]


def test_both_settings_are_no_ops_where_there_is_no_glibc(monkeypatch):
    def no_libc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(allocator.ctypes, "CDLL", no_libc)
    assert allocator.keep_freed_memory_for_reuse() is False
    assert allocator.keep_large_buffers_off_heap() is False


@glibc_only
def test_the_same_setting_given_by_the_environment_stops_the_faults_too():
    """What the speed benchmark gives the notebook's own code, which cannot call mallopt: the same two settings
    through glibc's environment variables, with the same effect and the same loss."""
    env = allocator.freed_memory_kept_env()
    assert env == {"MALLOC_MMAP_THRESHOLD_": str(allocator.MMAP_THRESHOLD_MAX_BYTES),
                   "MALLOC_TRIM_THRESHOLD_": str(allocator.TRIM_NEVER_BYTES)}
    default, by_env = train_steps("default"), train_steps("env", env)
    assert by_env["took"] is None  # nothing called mallopt: the environment did it
    default_step = statistics.median(default["faults_per_step"])
    assert statistics.median(by_env["faults_per_step"]) < default_step / 10, (by_env, default["faults_per_step"])
    assert by_env["loss"] == default["loss"]
