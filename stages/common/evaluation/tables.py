"""Markdown for the reports: the one table renderer, and the single-run report's page.

Pure functions over already-loaded metrics dicts, so they are testable on made-up data.
`results[kind][arch]` holds metrics/<kind>_<arch>.json (train, tsne, svm) and
`facts[kind][arch]` metrics/run/<kind>_<arch>.json (train, latents, tsne, svm).

One run is one seed: the page states each figure's uncertainty over the test images
(a test MSE's standard error, an accuracy's Wilson interval) and compares each latent
SVM with the baselines by McNemar's exact test on the same test images, Holm-corrected.
It names no winner and ranks nothing: differences between architectures need
several seeds (`make sweep`, plots/sweep/report.md, whose tables are rendered here too).
"""
from __future__ import annotations

import html

from stages.common.evaluation.metrics import BASELINES, feature_label
from stages.common.evaluation.statistics import holm, mcnemar_exact
from stages.common.models.catalogue import CATALOGUE, display_name


def _fmt(value, spec: str = ".6f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def escape(text) -> str:
    """Text from outside the code (an experiment's name, an error line) made safe in a Markdown table cell:
    HTML escaped, table pipes and line breaks neutralised, Markdown's code and math marks escaped."""
    cell = html.escape(" ".join(str(text).split()), quote=False)
    for mark in ("\\", "|", "`", "$", "*", "_", "[", "]"):
        cell = cell.replace(mark, "\\" + mark)
    return cell


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def loss_rows(histories: dict) -> list[dict]:
    """Long-format rows for the loss chart: one per architecture, split and epoch.

    `histories`: arch -> DataFrame of plots/loss/<arch>.csv. The train series is the
    per-pixel MSE during training (for every model comparable with test MSE; for the
    plain autoencoders it is their training loss).
    """
    rows = []
    for arch, history in histories.items():
        for split, column in (("train", "train_mse"), ("test", "test_mse")):
            for epoch, mse in zip(history["epoch"], history[column]):
                rows.append({"epoch": int(epoch), "architecture": display_name(arch), "split": split,
                             "mse": float(mse)})
    return rows


def baseline_tests(archs: list, predictions: dict, enabled: list, alpha: float) -> list[dict]:
    """McNemar's exact test of each latent SVM against each enabled baseline, Holm-corrected over all of them.

    `predictions[name]` holds `predicted` and `y_test` of data/predictions/<name>.npz.
    """
    pairs = []
    for arch in archs:
        correct = predictions[arch]["predicted"] == predictions[arch]["y_test"]
        for base in enabled:
            base_correct = predictions[base]["predicted"] == predictions[base]["y_test"]
            pairs.append((arch, base, mcnemar_exact(correct, base_correct)))
    adjusted = holm([test.p_value for _, _, test in pairs]) if pairs else []
    rows = []
    for (arch, base, test), p_holm in zip(pairs, adjusted):
        if p_holm >= alpha:
            verdict = "no significant difference"
        else:
            verdict = "latents better" if test.only_a > test.only_b else "baseline better"
        rows.append({"arch": arch, "baseline": base, "only_latents": test.only_a, "only_baseline": test.only_b,
                     "p": test.p_value, "p_holm": p_holm, "verdict": verdict})
    return rows


def _interval(low, high) -> str:
    return f"{low * 100:.2f}–{high * 100:.2f}"


def _reference(arch: str, key: str):
    return CATALOGUE[arch].reference_mnist.get(key)


def _reconstruction(archs: list, train: dict) -> list[str]:
    out = ["## Reconstruction", "", table(
        ["architecture", "final train loss", "test MSE ± standard error", "denoise MSE (noisy in, clean target)",
         "reference train loss (MNIST)", "reference test MSE (MNIST)"],
        [[display_name(a), _fmt(train[a]["train_loss"]),
          f"{_fmt(train[a]['test_mse'])} ± {_fmt(train[a].get('test_mse_se'))}",
          _fmt(train[a].get("denoise_mse")), _fmt(_reference(a, "train_loss")), _fmt(_reference(a, "test_mse"))]
         for a in archs]),
        "",
        "The Variational AE's train loss is its own objective (per image: reconstruction + beta x KL), "
        "not an MSE; its test MSE is that of the decoded mean, like the others'.",
        "", "![loss curves](compare/loss.png)", "", "![reconstructions](compare/reconstructions.png)", ""]
    vae_like = [a for a in archs if "kl" in train[a]]
    if vae_like:
        out += ["## Variational terms", "",
                table(["architecture", "reconstruction (per image)", "KL (per image)"],
                      [[display_name(a), _fmt(train[a]["reconstruction"], ".3f"), _fmt(train[a]["kl"], ".3f")]
                       for a in vae_like]), ""]
    return out


def _pictures(archs: list) -> list[str]:
    out = ["## Pictures", ""]
    for a in archs:
        out += [f"### {display_name(a)}", "", f"![samples](samples/{a}.png)", "",
                f"![interpolation](interpolation/{a}.png)", "", f"![denoising](denoising/{a}.png)", ""]
    return out


def _svm_rows(archs: list, svm: dict, svm_facts: dict, baselines: dict) -> list[list]:
    rows = [[f"{display_name(a)} latents", _fmt(svm[a]["accuracy"] * 100, ".2f"),
             _interval(svm[a]["accuracy_ci_low"], svm[a]["accuracy_ci_high"]), _fmt(svm[a]["macro_f1"], ".4f"),
             f"{svm_facts[a]['n_train']:,}", svm_facts[a]["n_features"]] for a in archs]
    for name in BASELINES:
        base, base_facts = baselines[name]
        if base_facts.get("enabled"):
            rows.append([feature_label(name), _fmt(base["accuracy"] * 100, ".2f"),
                         _interval(base["accuracy_ci_low"], base["accuracy_ci_high"]),
                         _fmt(base["macro_f1"], ".4f"), f"{base_facts['n_train']:,}", base_facts["n_features"]])
        else:
            rows.append([feature_label(name), "not run (baselines.enabled: false)", "–", "–", "–", "–"])
    return rows


def _latent_space(archs: list, results: dict, facts: dict, baselines: dict, tests: list[dict], n_test: int,
                  confidence: float, alpha: float) -> list[str]:
    out = ["## Latent space", "",
           table(["features", "SVM test accuracy %",
                  f"{confidence:.0%} interval (Wilson, over test images)", "macro F1", "train images", "dims"],
                 _svm_rows(archs, results["svm"], facts["svm"], baselines)), ""]
    if tests:
        out += [
            f"Each latent SVM against each baseline on the same {n_test:,} test images: McNemar's exact test "
            f"on the images only one of the two classified correctly, p-values Holm-corrected over the "
            f"{len(tests)} comparisons (the family: every latent space against every baseline), "
            f"significance level {alpha}.", "",
            table(["latents", "against", "right only with latents", "right only with baseline", "p", "p (Holm)",
                   "verdict"],
                  [[display_name(t["arch"]), feature_label(t["baseline"]), t["only_latents"], t["only_baseline"],
                    f"{t['p']:.3g}", f"{t['p_holm']:.3g}", t["verdict"]] for t in tests]),
            ""]
    out += [
        f"Reference: the notebook's SVM on Convolutional AE latents scored {_reference('conv', 'svm_accuracy'):.2%} "
        "on MNIST.", "",
        table(["architecture", "t-SNE trustworthiness (k=5)", "points"],
              [[display_name(a), _fmt(results["tsne"][a]["trustworthiness"], ".4f"), facts["tsne"][a]["n_points"]]
               for a in archs]),
        "", "![t-SNE](compare/tsne.png)", ""]
    return out


def _cost(archs: list, facts: dict) -> list[str]:
    train, svm = facts["train"], facts["svm"]
    return ["## Model size and time", "", table(
        ["architecture", "encoder params", "decoder params", "total params", "s/epoch", "train s", "latents s",
         "t-SNE s", "SVM s"],
        [[display_name(a), f"{train[a]['params_encoder']:,}", f"{train[a]['params_decoder']:,}",
          f"{train[a]['params_total']:,}", _fmt(train[a]["seconds_per_epoch"], ".1f"),
          _fmt(train[a]["seconds"], ".1f"), _fmt(facts["latents"][a]["seconds"], ".1f"),
          _fmt(facts["tsne"][a]["seconds"], ".1f"),
          _fmt(svm[a]["fit_seconds"] + svm[a]["predict_seconds"], ".1f")] for a in archs]), ""]


def markdown(archs: list, dataset: str, results: dict, facts: dict, baselines: dict, tests: list[dict],
             confidence: float, alpha: float) -> str:
    """The report page; `baselines[name]` is (results, facts) of metrics/svm_<name>.json, `tests` baseline_tests'."""
    run = facts["train"][archs[0]]
    out = [
        "# Autoencoder comparison report",
        "",
        f"Dataset **{dataset}**: {run['n_train']:,} training / {run['n_test']:,} test images, "
        f"{run['epochs']} epochs ({run['steps']:,} optimizer steps), {run['precision']} on {run['device']}.",
        "Reference figures are what the notebook printed for **MNIST** (60,000/10,000); "
        "they are comparable only when this run is MNIST at full size, and exist only for its three models.",
        "",
        "This is one run (one seed). Each figure comes with its uncertainty over the test images; whether one "
        "architecture is better than another needs several seeds: `make sweep` (plots/sweep/report.md).",
        "",
    ]
    out += _reconstruction(archs, results["train"])
    out += _pictures(archs)
    out += _latent_space(archs, results, facts, baselines, tests, run["n_test"], confidence, alpha)
    out += _cost(archs, facts)
    return "\n".join(out)
