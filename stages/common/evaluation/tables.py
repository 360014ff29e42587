"""Building the comparison report (markdown tables and plot data) from the metrics of a run.

Pure functions over already-loaded metrics dicts, so they are testable on made-up data.
`results[kind][arch]` holds metrics/<kind>_<arch>.json (train, tsne, svm) and
`facts[kind][arch]` metrics/run/<kind>_<arch>.json (train, latents, tsne, svm).

One run is one seed: the page states each figure's uncertainty over the test images
(a test MSE's standard error, an accuracy's Wilson interval) and compares each latent
SVM with the baselines by McNemar's exact test on the same test images, Holm-corrected.
It names no winner and ranks nothing: differences between architectures need
several seeds (`make sweep`, plots/sweep/report.md).
"""
from __future__ import annotations

from stages.common.evaluation.statistics import holm, mcnemar_exact
from stages.common.models.catalogue import CATALOGUE, display_name

ALPHA = 0.05

BASELINES = (("pixels", "raw pixels (baseline)"), ("pca", "PCA (baseline)"))


def _fmt(value, spec: str = ".6f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


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


def baseline_tests(archs: list, predictions: dict, enabled: list) -> list[dict]:
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
        if p_holm >= ALPHA:
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


def markdown(archs: list, dataset: str, results: dict, facts: dict, baselines: dict, tests: list[dict]) -> str:
    """The report page; `baselines[name]` is (results, facts) of metrics/svm_<name>.json, `tests` baseline_tests'."""
    train, tsne, svm = results["train"], results["tsne"], results["svm"]
    run = facts["train"][archs[0]]
    out = [
        "# Autoencoder comparison report",
        "",
        f"Dataset **{dataset}**: {run['n_train']:,} training / {run['n_test']:,} test images, "
        f"{run['epochs']} epochs, {run['precision']} on {run['device']}.",
        "Reference figures are what the notebook printed for **MNIST** (60,000/10,000); "
        "they are comparable only when this run is MNIST at full size, and exist only for its three models.",
        "",
        "This is one run (one seed). Each figure comes with its uncertainty over the test images; whether one "
        "architecture is better than another needs several seeds: `make sweep` (plots/sweep/report.md).",
        "",
        "## Reconstruction",
        "",
        table(
            ["architecture", "final train loss", "test MSE ± standard error", "denoise MSE (noisy in, clean target)",
             "reference train loss (MNIST)", "reference test MSE (MNIST)"],
            [[display_name(a), _fmt(train[a]["train_loss"]),
              f"{_fmt(train[a]['test_mse'])} ± {_fmt(train[a].get('test_mse_se'))}",
              _fmt(train[a].get("denoise_mse")), _fmt(_reference(a, "train_loss")), _fmt(_reference(a, "test_mse"))]
             for a in archs],
        ),
        "",
        "The Variational AE's train loss is its own objective (per image: reconstruction + beta x KL), "
        "not an MSE; its test MSE is that of the decoded mean, like the others'.",
        "",
        "![loss curves](compare/loss.png)",
        "",
        "![reconstructions](compare/reconstructions.png)",
        "",
    ]
    vae_like = [a for a in archs if "kl" in train[a]]
    if vae_like:
        out += ["## Variational terms", "",
                table(["architecture", "reconstruction (per image)", "KL (per image)"],
                      [[display_name(a), _fmt(train[a]["reconstruction"], ".3f"), _fmt(train[a]["kl"], ".3f")]
                       for a in vae_like]), ""]
    out += ["## Pictures", ""]
    for a in archs:
        out += [f"### {display_name(a)}", "", f"![samples](samples/{a}.png)", "",
                f"![interpolation](interpolation/{a}.png)", "", f"![denoising](denoising/{a}.png)", ""]
    out += ["## Latent space", ""]
    svm_facts = facts["svm"]
    svm_rows = [[f"{display_name(a)} latents", _fmt(svm[a]["accuracy"] * 100, ".2f"),
                 _interval(svm[a]["accuracy_ci_low"], svm[a]["accuracy_ci_high"]), _fmt(svm[a]["macro_f1"], ".4f"),
                 f"{svm_facts[a]['n_train']:,}", svm_facts[a]["n_features"]] for a in archs]
    for name, label in BASELINES:
        base, base_facts = baselines[name]
        if base_facts.get("enabled"):
            svm_rows.append([label, _fmt(base["accuracy"] * 100, ".2f"),
                             _interval(base["accuracy_ci_low"], base["accuracy_ci_high"]),
                             _fmt(base["macro_f1"], ".4f"), f"{base_facts['n_train']:,}", base_facts["n_features"]])
        else:
            svm_rows.append([label, "not run (baselines.enabled: false)", "–", "–", "–", "–"])
    conv_reference = _reference("conv", "svm_accuracy")
    labels = dict(BASELINES)
    out += [
        table(["features", "SVM test accuracy %", "95% interval (Wilson, over test images)", "macro F1",
               "train images", "dims"], svm_rows),
        "",
    ]
    if tests:
        out += [
            f"Each latent SVM against each baseline on the same {run['n_test']:,} test images: McNemar's exact test "
            f"on the images only one of the two classified correctly, p-values Holm-corrected over the "
            f"{len(tests)} comparisons, significance level {ALPHA}.",
            "",
            table(["latents", "against", "right only with latents", "right only with baseline", "p", "p (Holm)",
                   "verdict"],
                  [[display_name(t["arch"]), labels[t["baseline"]], t["only_latents"], t["only_baseline"],
                    f"{t['p']:.3g}", f"{t['p_holm']:.3g}", t["verdict"]] for t in tests]),
            "",
        ]
    out += [
        f"Reference: the notebook's SVM on Convolutional AE latents scored {conv_reference * 100:.2f}% on MNIST.",
        "",
        table(["architecture", "t-SNE trustworthiness (k=5)", "points"],
              [[display_name(a), _fmt(tsne[a]["trustworthiness"], ".4f"), facts["tsne"][a]["n_points"]]
               for a in archs]),
        "",
        "![t-SNE](compare/tsne.png)",
        "",
        "## Model size and time",
        "",
        table(
            ["architecture", "encoder params", "decoder params", "total params", "s/epoch", "train s", "latents s",
             "t-SNE s", "SVM s"],
            [[display_name(a), f"{facts['train'][a]['params_encoder']:,}", f"{facts['train'][a]['params_decoder']:,}",
              f"{facts['train'][a]['params_total']:,}", _fmt(facts["train"][a]["seconds_per_epoch"], ".1f"),
              _fmt(facts["train"][a]["seconds"], ".1f"), _fmt(facts["latents"][a]["seconds"], ".1f"),
              _fmt(facts["tsne"][a]["seconds"], ".1f"),
              _fmt(svm_facts[a]["fit_seconds"] + svm_facts[a]["predict_seconds"], ".1f")] for a in archs],
        ),
        "",
    ]
    return "\n".join(out)
