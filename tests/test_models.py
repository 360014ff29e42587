"""The model registry: layer shapes, latent shapes and the parameter counts of the notebook's layers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stages.common.models import REGISTRY, SuperResAE, build_model, param_counts
from stages.common.params import ARCH_IDS

# encoder / decoder / total, as notebook-facts.md computes them.
EXPECTED_COUNTS = {
    "superres": (838_336, 863_745, 1_702_081),
    "conv": (494_592, 514_977, 1_009_569),
    "stacked": (574_400, 575_120, 1_149_520),
}


def test_registry_holds_exactly_the_param_ids():
    assert tuple(REGISTRY) == ARCH_IDS


@pytest.mark.parametrize("arch", ARCH_IDS)
def test_parameter_counts_match_the_notebook(arch):
    counts = param_counts(build_model(arch, 64))
    assert (counts["params_encoder"], counts["params_decoder"], counts["params_total"]) == EXPECTED_COUNTS[arch]


@pytest.mark.parametrize("arch", ARCH_IDS)
@pytest.mark.parametrize("latent_dim", [2, 64])
@torch.no_grad()
def test_shapes(arch, latent_dim):
    model = build_model(arch, latent_dim).eval()
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (3, latent_dim)
    out = model.decode(z)
    assert out.shape == (3, 1, 28, 28)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # Sigmoid output
    torch.testing.assert_close(model(x), out)


def test_superres_encode_downsamples_itself():
    torch.manual_seed(0)
    model = SuperResAE(64).eval()
    x = torch.rand(2, 1, 28, 28)
    low_res = F.interpolate(x, size=(14, 14), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model.encode(x), model.encoder(low_res))


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture 'vae'"):
        build_model("vae", 64)
