"""Stage `svm@<arch>`: how well a kernel SVM separates the classes in an autoencoder's latent space.

Usage: python -m stages.svm <arch>

Fits SVC(kernel=svm.kernel, C=svm.C, gamma=svm.gamma) on all train latents, scores
it on all test latents. Writes metrics/svm_<arch>.json and plots/confusion/<arch>.png.
"""
from __future__ import annotations

import numpy as np

from stages.common.atomic import save_figure, write_json
from stages.common.classify import fit_and_score
from stages.common.errors import run_stage
from stages.common.layout import PLOTS_DIR, latents_path, metrics_path, parse_arch
from stages.common.params import ARCH_NAMES, load_params
from stages.common.usage import peak_rss_mb


def main(argv: list[str]) -> None:
    arch = parse_arch(argv, "svm")
    params = load_params()
    with np.load(latents_path(arch)) as f:
        z_train, y_train, z_test, y_test = f["z_train"], f["y_train"], f["z_test"], f["y_test"]
        class_names = [str(c) for c in f["class_names"]]

    metrics, confusion = fit_and_score(z_train, y_train, z_test, y_test, len(class_names), **params["svm"])
    from stages.common.figures import confusion_figure

    title = f"{ARCH_NAMES[arch]} latents: SVM accuracy {metrics['accuracy']:.2%}"
    save_figure(confusion_figure(confusion, class_names, title), PLOTS_DIR / "confusion" / f"{arch}.png")
    write_json(metrics_path("svm", arch), {**metrics, "peak_rss_mb": peak_rss_mb()})
    print(f"svm {arch}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} "
          f"(fit {metrics['fit_seconds']:.1f} s, predict {metrics['predict_seconds']:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
