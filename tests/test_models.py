"""The models of the catalogue: parameter counts, shapes, their own losses, noise, sampling."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.settings import params_model
from stages.common.models.catalogue import ARCH_IDS, CATALOGUE, display_name
from stages.common.models.nets import Autoencoder, ConvVAE, DenoisingAE, SuperResAE, build_model, corrupt, param_counts

# encoder / decoder / total: the notebook's three as notebook-facts.md computes them;
# the VAE's encoder has the Conv AE's body and a 6272 -> 2 x 64 head. An architecture
# added later is checked by the shape tests, which take every catalogue entry.
EXPECTED_COUNTS = {
    "superres": (838_336, 863_745, 1_702_081),
    "conv": (494_592, 514_977, 1_009_569),
    "stacked": (574_400, 575_120, 1_149_520),
    "vae": (896_064, 514_977, 1_411_041),
    "denoising": (494_592, 514_977, 1_009_569),
}


def test_catalogue_entries_build_autoencoders_with_names():
    assert set(EXPECTED_COUNTS) <= set(ARCH_IDS)
    for arch in ARCH_IDS:
        assert issubclass(CATALOGUE[arch].model_class(), Autoencoder)
        assert display_name(arch)
    assert {a for a in ARCH_IDS if CATALOGUE[a].reference_mnist} == {"superres", "conv", "stacked"}


@pytest.mark.parametrize("arch", EXPECTED_COUNTS)
def test_parameter_counts(arch):
    counts = param_counts(params_model(arch, 64))  # the notebook's latent size, where its counts hold
    assert (counts["params_encoder"], counts["params_decoder"], counts["params_total"]) == EXPECTED_COUNTS[arch]


@pytest.mark.parametrize("arch", ARCH_IDS)
@pytest.mark.parametrize("latent_dim", [2, 64])
@torch.no_grad()
def test_shapes(arch, latent_dim):
    model = params_model(arch, latent_dim).eval()
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (3, latent_dim)
    out = model.decode(z)
    assert out.shape == (3, 1, 28, 28)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # Sigmoid output
    torch.testing.assert_close(model(x), out)


@pytest.mark.parametrize("arch", ["superres", "conv", "stacked"])
def test_the_notebooks_models_keep_plain_mse(arch):
    torch.manual_seed(0)
    model = build_model(arch, 8)
    x = torch.rand(4, 1, 28, 28)
    loss, parts = model.loss_function(x)
    torch.testing.assert_close(loss, F.mse_loss(model(x), x), rtol=0, atol=0)
    assert set(parts) == {"mse"}


def test_superres_encode_downsamples_itself():
    torch.manual_seed(0)
    model = SuperResAE(64).eval()
    x = torch.rand(2, 1, 28, 28)
    low_res = F.interpolate(x, size=(14, 14), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model.encode(x), model.encoder(low_res))


def test_vae_loss_is_reconstruction_plus_beta_kl_and_encode_is_the_mean():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 28, 28)
    for beta in (1.0, 4.0):
        model = ConvVAE(8, beta=beta, reconstruction="bce").eval()
        torch.manual_seed(1)
        loss, parts = model.loss_function(x)
        assert set(parts) == {"mse", "reconstruction", "kl"}
        torch.testing.assert_close(loss, parts["reconstruction"] + beta * parts["kl"])
        assert float(parts["kl"]) >= 0
        mean, _ = model.encode_distribution(x)
        torch.testing.assert_close(model.encode(x), mean)
    # Bernoulli NLL summed over pixels, per image: what F.binary_cross_entropy gives.
    model = ConvVAE(8, beta=1.0, reconstruction="bce").eval()
    torch.manual_seed(2)
    _, parts = model.loss_function(x)
    torch.manual_seed(2)
    mean, log_var = model.encode_distribution(x)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    expected = F.binary_cross_entropy(model.decode(z), x, reduction="sum") / 5
    torch.testing.assert_close(parts["reconstruction"], expected.detach(), rtol=1e-5, atol=1e-3)


def test_vae_samples_from_the_prior_and_plain_models_from_fitted_latents():
    generator = torch.Generator().manual_seed(0)
    z = ConvVAE(4, beta=1.0, reconstruction="bce").sample_latents(2000, generator, torch.zeros(1, 4))
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.1
    z_train = torch.randn(500, 3, generator=generator) * torch.tensor([5.0, 1.0, 0.1]) + 7
    drawn = build_model("conv", 3).sample_latents(4000, torch.Generator().manual_seed(1), z_train)
    torch.testing.assert_close(drawn.mean(0), z_train.mean(0), atol=0.3, rtol=0)
    torch.testing.assert_close(drawn.std(0), z_train.std(0), atol=0.0, rtol=0.1)


def test_noise_is_seeded_clipped_and_masking_zeroes_pixels():
    x = torch.full((2, 1, 28, 28), 0.5)
    a = corrupt(x, "gaussian", 0.3, 0.3, torch.Generator().manual_seed(3))
    b = corrupt(x, "gaussian", 0.3, 0.3, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    masked = corrupt(x, "masking", 0.3, 0.25, torch.Generator().manual_seed(3))
    zeroed = float((masked == 0).float().mean())
    assert 0.2 < zeroed < 0.3 and set(masked.unique().tolist()) == {0.0, 0.5}


def test_denoising_trains_on_noisy_input_against_the_clean_target():
    model = DenoisingAE(8, noise="gaussian", noise_std=0.5, mask_fraction=0.3)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(5)
    loss, _ = model.loss_function(x)
    torch.manual_seed(5)
    noisy = corrupt(x, "gaussian", 0.5, 0.3)
    torch.testing.assert_close(loss, F.mse_loss(model(noisy), x))
    assert param_counts(model) == param_counts(build_model("conv", 8))


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture 'gan'"):
        build_model("gan", 64)
