"""DVC stage scripts of the autoencoder comparison; each runs as `python -m stages <name> [arg]`."""
import sys

# Every stage, in pipeline order; each is a module here with a `main(argv)`.
STAGES = ("download", "prepare", "train", "latents", "tsne", "svm", "baselines", "report")
# The stages that take one argument (an architecture, or a baseline's feature space); the rest take none.
TAKES_ONE_ARGUMENT = ("train", "latents", "tsne", "svm", "baselines")
# The stages that never import torch, so they start in a fraction of a second.
TORCH_FREE_STAGES = ("download", "prepare", "tsne", "svm", "baselines", "report")


def dvc_stage_name(name: str, args: list[str]) -> str:
    """The dvc.yaml name of `python -m stages <name> [arg]`: train@conv, baseline_pixels, report."""
    if not args:
        return name
    return f"baseline_{args[0]}" if name == "baselines" else f"{name}@{args[0]}"


def run_as_module(name: str) -> None:
    """`python -m stages.<name> [arg]`, the entry point before `python -m stages <name> [arg]`: runs the same."""
    from stages.__main__ import main

    sys.argv = [sys.argv[0], name, *sys.argv[1:]]
    main()
