"""Training and evaluation helpers: the loss bookkeeping, determinism, encoding."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmarks.settings import params_model
from stages.common.errors import PipelineError
from stages.common.models.device import check_precision, cpu_supports_bf16, resolve_device, seed_everything
from stages.common.models.nets import build_model
from stages.common.models.training import (
    TrainingDiverged,
    adam,
    encode_all,
    evaluate_mse,
    final_loss_drop,
    fit,
    to_float_images,
    total_steps,
)
from tests.conftest import ROOT, make_images

CPU = torch.device("cpu")


def test_to_float_images_scales_like_totensor():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = to_float_images(images, CPU)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))


def test_evaluate_mse_is_the_batch_size_weighted_mean_of_batch_losses():
    torch.manual_seed(0)
    model = build_model("stacked", 8)
    x = torch.rand(70, 1, 28, 28)
    batch_means = [(torch.nn.functional.mse_loss(model(x[i:i + 32]), x[i:i + 32]).item(), len(x[i:i + 32]))
                   for i in range(0, 70, 32)]
    expected = sum(m * n for m, n in batch_means) / 70
    assert evaluate_mse(model, x, batch_size=32) == pytest.approx(expected, rel=1e-5)
    assert evaluate_mse(model, x, batch_size=7) == pytest.approx(expected, rel=1e-5)


def train_once(arch: str):
    seed_everything(3)
    images, _ = make_images(200)
    x = to_float_images(images, CPU)
    model = params_model(arch, 16)
    history = fit(model, x[:160], x[160:], steps=total_steps(160, 32, epochs=2, steps=None), batch_size=32, lr=1e-3,
                  seed=3, precision="fp32", eval_batch_size=64).history
    return model, history


@pytest.mark.parametrize("arch", ["conv", "stacked", "vae", "denoising"])
def test_training_lowers_the_loss_and_repeats_exactly(arch):
    model_a, history_a = train_once(arch)
    model_b, history_b = train_once(arch)
    assert [r.epoch for r in history_a] == [1, 2]
    assert history_a[1].train_loss < history_a[0].train_loss
    assert "mse" in history_a[0].parts
    assert [(r.train_loss, r.test_mse, r.parts) for r in history_a] == [
        (r.train_loss, r.test_mse, r.parts) for r in history_b]
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key


def test_adam_uses_the_fused_kernel_where_the_device_has_one():
    optimizer = adam(build_model("stacked", 8), 1e-3)
    assert optimizer.defaults["fused"] is True
    assert optimizer.defaults["lr"] == 1e-3


def test_bf16_training_repeats_exactly_too():
    if not cpu_supports_bf16():
        pytest.skip("this CPU has no bf16 hardware; bf16 is refused (tested below)")
    runs = []
    for _ in range(2):
        seed_everything(5)
        model = build_model("conv", 8)
        x = to_float_images(make_images(96, seed=2)[0], CPU)
        history = fit(model, x[:64], x[64:], steps=2, batch_size=32, lr=1e-3, seed=5, precision="bf16",
                      eval_batch_size=32).history
        runs.append((history[0].train_loss, history[0].test_mse))
    assert runs[0] == runs[1]


def test_a_diverging_run_raises_at_its_epoch():
    seed_everything(3)
    images, _ = make_images(100)
    x = to_float_images(images, CPU)
    with pytest.raises(TrainingDiverged) as err:
        fit(build_model("stacked", 8), x[:80], x[80:], steps=15, batch_size=16, lr=1e6, seed=3, precision="fp32",
            eval_batch_size=64)
    assert err.value.epoch >= 1


def test_evaluate_mse_against_another_target():
    torch.manual_seed(0)
    model = build_model("stacked", 8)
    x, clean = torch.rand(20, 1, 28, 28), torch.rand(20, 1, 28, 28)
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(model.eval()(x), clean).item()
    assert evaluate_mse(model, x, batch_size=7, target=clean) == pytest.approx(expected, rel=1e-5)


def test_encode_all_matches_encode_in_one_batch():
    torch.manual_seed(0)
    model = build_model("superres", 8).eval()
    x = torch.rand(50, 1, 28, 28)
    z = encode_all(model, x, batch_size=16)
    assert z.shape == (50, 8) and z.dtype == np.float32
    with torch.no_grad():
        np.testing.assert_allclose(z, model.encode(x).numpy(), rtol=1e-5, atol=1e-6)


def test_seeding_also_flushes_denormals_so_late_epochs_stay_fast():
    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0  # a denormal, computed as one
    seed_everything(0)
    assert (torch.tensor([1e-39]) * 1.0).item() == 0.0
    assert (torch.tensor([1e-37]) * 1.0).item() != 0.0  # normal floats untouched


def test_seeding_asks_for_deterministic_kernels_without_importing_the_compiler():
    # In a fresh process: this one may have imported torch._inductor already.
    probe = ("import sys, torch; from stages.common.models.device import seed_everything; "
             "before = torch.are_deterministic_algorithms_enabled(); seed_everything(0); "
             "print(before, torch.are_deterministic_algorithms_enabled(), "
             "torch.is_deterministic_algorithms_warn_only_enabled(), 'torch._inductor' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "True", "False"]


def test_device_auto_falls_back_to_cpu_here():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(PipelineError, match="train.device is 'cuda' but torch sees no CUDA GPU"):
            resolve_device("cuda")


def test_bf16_is_refused_in_one_line_where_the_cpu_lacks_it():
    check_precision("fp32", CPU)
    if cpu_supports_bf16():
        check_precision("bf16", CPU)
    else:
        with pytest.raises(PipelineError, match="train.precision is 'bf16' but this CPU has neither"):
            check_precision("bf16", CPU)


def test_a_budget_of_steps_counts_optimizer_steps_and_cuts_the_last_pass_short():
    assert total_steps(60_000, 128, epochs=5, steps=None) == 2_345  # the notebook's 5 epochs of 60,000 images
    assert total_steps(8_000, 128, epochs=5, steps=None) == 315     # the MNIST sample's: a seventh of them
    assert total_steps(8_000, 128, epochs=None, steps=2_345) == 2_345
    seed_everything(3)
    x = to_float_images(make_images(120)[0], CPU)
    trained = fit(build_model("stacked", 8), x[:100], x[100:], steps=9, batch_size=32, lr=1e-3, seed=3,
                  precision="fp32", eval_batch_size=64)
    # 4 steps a pass (100 images, batches of 32): passes of 4, 4 and 1 step.
    assert trained.steps == 9 and [r.epoch for r in trained.history] == [1, 2, 3]
    assert np.isfinite(trained.step_losses).all() and (trained.step_losses > 0).all()


def test_a_budget_of_whole_passes_in_steps_trains_exactly_as_by_epochs():
    runs = []
    for steps in (total_steps(100, 32, epochs=2, steps=None), 8):
        seed_everything(4)
        model = build_model("conv", 8)
        x = to_float_images(make_images(120, seed=1)[0], CPU)
        trained = fit(model, x[:100], x[100:], steps=steps, batch_size=32, lr=1e-3, seed=4, precision="fp32",
                      eval_batch_size=64)
        runs.append((trained.step_losses.tolist(), [r.test_mse for r in trained.history],
                     [v.clone() for v in model.state_dict().values()]))
    assert runs[0][:2] == runs[1][:2]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][2], runs[1][2]))


def test_the_final_loss_drop_compares_the_last_fifth_of_the_steps_with_the_fifth_before():
    flat = np.full(100, 0.5)
    assert final_loss_drop(flat) == 0.0
    falling = np.concatenate([np.full(60, 9.0), np.full(20, 1.0), np.full(20, 0.9)])
    assert final_loss_drop(falling) == pytest.approx(0.1)      # 1.0 -> 0.9: still falling 10%
    rising = np.concatenate([np.full(80, 1.0), np.full(20, 1.1)])
    assert final_loss_drop(rising) == pytest.approx(-0.1)
    assert np.isnan(final_loss_drop(np.ones(9)))               # too few steps for two windows
