"""DVC stage scripts of the autoencoder comparison; each runs as `python -m stages <name> [arg]`."""

# Every stage, in pipeline order; each is a module here with a `main(argv)`.
STAGES = ("download", "prepare", "train", "latents", "tsne", "svm", "baselines", "report")
# The stages that never import torch, so they start in a fraction of a second.
TORCH_FREE_STAGES = ("download", "prepare", "tsne", "svm", "baselines", "report")
