"""Self-describing model files: rebuilt from the file alone, and a file from other settings named in one line."""
from __future__ import annotations

import torch

from stages.common.errors import PipelineError
from stages.common.models.checkpoint import ModelSpec, checkpoint_bytes, load_checkpoint


def save(tmp_path, spec: ModelSpec):
    torch.manual_seed(0)
    model = spec.build()
    path = tmp_path / f"{spec.arch}.pt"
    path.write_bytes(checkpoint_bytes(spec, model))
    return path, model


def test_a_checkpoint_rebuilds_its_model_from_the_file_alone(tmp_path):
    spec = ModelSpec("vae", 8, {"beta": 4.0, "reconstruction": "mse"})
    path, model = save(tmp_path, spec)
    loaded_spec, loaded = load_checkpoint(path)
    assert loaded_spec == spec
    assert (loaded.beta, loaded.reconstruction, loaded.latent_dim) == (4.0, "mse", 8)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_a_user_reads_it_with_plain_torch_load(tmp_path):
    path, _ = save(tmp_path, ModelSpec("conv", 4))
    saved = torch.load(path, weights_only=True)
    assert (saved["arch"], saved["latent_dim"], saved["settings"]) == ("conv", 4, {})


def test_the_same_model_gives_the_same_bytes(tmp_path):
    spec = ModelSpec("stacked", 4)
    torch.manual_seed(0)
    model = spec.build()
    assert checkpoint_bytes(spec, model) == checkpoint_bytes(spec, model)


def error(tmp_path, path, expected=None) -> str:
    try:
        load_checkpoint(path, expected)
    except PipelineError as err:
        message = str(err)
        assert "\n" not in message
        return message
    raise AssertionError("no error")


def test_a_checkpoint_from_other_settings_is_named_in_one_line(tmp_path):
    path, _ = save(tmp_path, ModelSpec("vae", 8, {"beta": 4.0, "reconstruction": "bce"}))
    message = error(tmp_path, path, ModelSpec("vae", 8, {"beta": 1.0, "reconstruction": "bce"}))
    assert "trained as vae with latent_dim 8, beta 4.0" in message
    assert "params.yaml asks for vae with latent_dim 8, beta 1.0" in message
    assert "dvc repro -f train@vae" in message
    assert "latent_dim 16" in error(tmp_path, path, ModelSpec("vae", 16, {"beta": 4.0, "reconstruction": "bce"}))


def test_damaged_missing_and_foreign_files(tmp_path):
    assert "missing" in error(tmp_path, tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    assert "damaged" in error(tmp_path, tmp_path / "junk.pt")
    old_style = tmp_path / "old.pt"
    torch.save(ModelSpec("conv", 4).build().state_dict(), old_style)
    assert "not a model file of this version" in error(tmp_path, old_style)
    path, _ = save(tmp_path, ModelSpec("conv", 4))
    saved = torch.load(path, weights_only=True)
    saved["arch"] = "gan"
    torch.save(saved, tmp_path / "gan.pt")
    assert "does not hold a model this code can build" in error(tmp_path, tmp_path / "gan.pt")
    saved["arch"], saved["state_dict"] = "conv", {}
    torch.save(saved, tmp_path / "empty.pt")
    assert "does not hold a model this code can build" in error(tmp_path, tmp_path / "empty.pt")
