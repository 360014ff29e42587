"""Is a slow baseline the benchmark's doing or the machine's? Interleaved runs of the notebook inside and outside it.

    python -m benchmarks.interleave [--data DIR] [--arch superres] [--train-limit N] [--rounds 3] [--out PATH]

Each round runs, one after the other:
1. `python -m benchmarks.speed --parts train --runs 1` for one architecture: the benchmark
   as it times the notebook (its notebook-way worker and the notebook's own code,
   benchmarks/notebook_literal.py, both started by the benchmark, the latter with a
   fresh login shell's environment in a new folder);
2. benchmarks/notebook_literal.py alone, as a user starts it from a fresh login shell:
   a clean environment (`env -i` with PATH, HOME, LANG and the variables this machine
   sets for its math libraries), a new working folder, after a pause. What differs
   from the same script in step 1 is the process that starts it (the benchmark, with
   its memory, its threads and its other children) and the pause;
3. where the CPU has bf16 hardware, the same run alone again, but straight after one
   bf16 epoch of the project's way (the benchmark's heaviest vector work), no pause:
   is the notebook slower after bf16 work, as a lower clock would make it?
4. (run between 2 and 3) the same run alone once more, after a pause, with glibc told by its environment to keep
   freed memory (what the train stage sets with mallopt): the notebook's epoch without the
   page faults of a heap handed back to the kernel and taken again. The benchmark in step 1
   runs it so too (`literal_kept`): inside against alone with no faults on either side says
   whether the faults are all that the benchmark's way of starting children costs.

Over every run of the notebook's code with the allocator as it comes, a least-squares line
of epoch seconds on page faults says what a fault costs on this machine and how much of the
run-to-run spread the faults explain (r²).

Each leg's CPU seconds outside the kernel (user seconds) are paired the same way: a
gap in them is work or waiting that the page faults' kernel time does not count.

If the notebook's code is slower inside the benchmark than alone in the same rounds,
the benchmark's way of starting children costs it; if both move together from round
to round, the machine does. Every run also records the cores' clock as reported, a
clock probe (a fixed scalar workload's milliseconds, before and after: a VM reports
its nominal clock, the probe slows when the cores do) and the CPU time the host stole
from this VM; the notebook's code reports its epoch's CPU time (so the cores it kept
busy) and involuntary context switches: a slow run that computed more points at the
cores, one that waited at its neighbours. The report records what each starting
process passes on to its children (affinity, niceness, huge pages, CPU quota) and
the CPU's topology. Writes JSON (default benchmarks/results/interleave.json) and
prints a table. The same seed in every run: the same arithmetic.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_topology, inherited_state  # noqa: E402
from benchmarks.notebook_way import MATH_ENV_PREFIXES  # noqa: E402
from benchmarks.speed import DEFAULT_DATA, NOTEBOOK_CACHE, cpu_model, measure, measure_literal  # noqa: E402

WAY, CODE, ALONE, PROJECT = "notebook way", "notebook's code", "notebook's code alone", "project fp32"
AFTER_BF16 = "notebook's code alone, after bf16"
KEPT = "notebook's code alone, freed memory kept"
KEPT_INSIDE = "notebook's code, freed memory kept"
USER = "user CPU seconds"  # not a key of the legs: leg_value reads it off a leg's usage


def benchmark_round(arch: str, data: Path, limit, seed: int, scratch: Path) -> dict:
    """One run of the benchmark: its legs "inside the benchmark" and "inside the benchmark, freed memory kept"."""
    out = scratch / "speed.json"
    args = ["--data", str(data), "--parts", "train", "--archs", arch, "--runs", "1", "--quality-epochs", "0",
            "--baseline-seeds", str(seed), "--out", str(out)]
    if limit:
        args += ["--train-limit", str(limit)]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        return {"inside the benchmark": {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}}
    report = json.loads(out.read_text())
    entry = report["train"][arch]
    machine, usage = entry["process"]["machine"], entry["process"]["usage"]
    return {"inside the benchmark": {WAY: entry["notebook_fp32"]["runs"][0], CODE: entry["literal_fp32"]["runs"][0],
                                     PROJECT: entry["project_fp32"]["runs"][0], "machine": machine["literal fp32"][0],
                                     "usage": usage["literal fp32"][0],
                                     "inherited from the benchmark": report["machine"]["inherited"]},
            "inside the benchmark, freed memory kept": {KEPT_INSIDE: entry["literal_kept_fp32"]["runs"][0],
                                                        "machine": machine["literal_kept fp32"][0],
                                                        "usage": usage["literal_kept fp32"][0]}}


def standalone_round(arch: str, data: Path, limit, seed: int, pause_seconds: float, after_bf16: bool = False,
                     kept: bool = False) -> dict:
    """The notebook's code alone, after `pause_seconds` idle, or (`after_bf16`) straight after a bf16 epoch: the
    benchmark's own run of it (a login shell's environment, a new folder), started from this process instead.
    `kept`: with glibc told by its environment to keep freed memory, as the train stage tells it (no page faults
    of a heap handed back and taken again): what the notebook's time is without them."""
    from stages.common.models.allocator import freed_memory_kept_env

    if after_bf16:
        warm = measure("train", "project", arch, data, limit or "all", "bf16", NOTEBOOK_CACHE, seed)
        if "error" in warm:
            return {"error": f"the bf16 epoch before: {warm['error']}"}
    else:
        time.sleep(pause_seconds)  # as a user's separate command: the machine idle a moment before
    result = measure_literal(arch, data, str(limit or "all"), "", seed, freed_memory_kept_env() if kept else None)
    if "error" in result:
        return result
    return {KEPT if kept else AFTER_BF16 if after_bf16 else ALONE: result["seconds"], "usage": result["usage"],
            "machine": result["machine"]}


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--arch", default="superres")
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pause-seconds", type=float, default=5, help="idle before each run alone (default 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/interleave.json")
    args = parser.parse_args(argv)
    data = args.data or next((d for d in DEFAULT_DATA if d.is_dir()), None)
    if data is None:
        sys.exit("error: no data folder; pass --data DIR holding the four IDX .gz files")
    from stages.common.models.device import cpu_supports_bf16

    bf16 = cpu_supports_bf16()
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(args.rounds):
            inside = benchmark_round(args.arch, data, args.train_limit, args.seed, Path(scratch))
            alone = standalone_round(args.arch, data, args.train_limit, args.seed, args.pause_seconds)
            kept = standalone_round(args.arch, data, args.train_limit, args.seed, args.pause_seconds, kept=True)
            rounds.append({**inside, "alone": alone, "alone, freed memory kept": kept})
            if bf16:
                rounds[-1]["alone after bf16"] = standalone_round(args.arch, data, args.train_limit, args.seed, 0,
                                                                  after_bf16=True)
            print(f"round {number + 1}: {json.dumps(rounds[-1])}", flush=True)
    math_env = {k: v for k, v in os.environ.items() if k.startswith(MATH_ENV_PREFIXES)}
    report = {"cpu": cpu_model(), **cpu_topology(), "data": str(data), "arch": args.arch,
              "train_limit": args.train_limit, "math_env": math_env,
              "inherited from this process (the runs alone)": inherited_state(), "rounds": rounds}
    report["paired"] = {what: paired_ratio(rounds, top, bottom) for what, top, bottom in COMPARISONS}
    report["seconds_on_page_faults"] = fault_fit(rounds)
    from stages.common.outputs.atomic import write_json

    write_json(args.out, report)
    print(table(report))


# The comparisons the rounds answer: (what, numerator's leg and key, denominator's leg and key), paired by round.
COMPARISONS = (
    ("notebook's code: inside the benchmark / alone", ("inside the benchmark", CODE), ("alone", ALONE)),
    ("notebook way inside / notebook's code alone", ("inside the benchmark", WAY), ("alone", ALONE)),
    ("notebook's code alone: after bf16 / after a pause", ("alone after bf16", AFTER_BF16), ("alone", ALONE)),
    ("notebook's code alone: freed memory kept / as glibc comes", ("alone, freed memory kept", KEPT),
     ("alone", ALONE)),
    ("notebook's code, freed memory kept: inside the benchmark / alone",
     ("inside the benchmark, freed memory kept", KEPT_INSIDE), ("alone, freed memory kept", KEPT)),
    ("user CPU s, notebook's code: inside the benchmark / alone", ("inside the benchmark", USER), ("alone", USER)),
    ("user CPU s, freed memory kept: inside the benchmark / alone", ("inside the benchmark, freed memory kept", USER),
     ("alone, freed memory kept", USER)),
)
# Every leg that runs the notebook's code with glibc's allocator as it comes: (leg, key).
AS_IT_COMES = (("inside the benchmark", CODE), ("alone", ALONE), ("alone after bf16", AFTER_BF16))


def fault_fit(rounds: list, confidence: float = 0.95) -> dict | None:
    """Epoch seconds against page faults over every run of the notebook's code with the allocator as it comes:
    the least-squares line (scipy's linregress), its slope in microseconds a fault with a t interval, and r². The
    same code and seed every run, so what moves its time from run to run and is not the faults is left to r²."""
    from scipy import stats

    runs = [(leg_value(r, leg, key), ((r.get(leg) or {}).get("usage") or {}).get("minor_faults"))
            for r in rounds for leg, key in AS_IT_COMES]
    points = [(seconds, faults) for seconds, faults in runs if seconds is not None and faults]
    if len(points) < 3 or len({faults for _, faults in points}) < 2:
        return None
    seconds, faults = zip(*points)
    fit = stats.linregress(faults, seconds)
    half_width = stats.t.ppf((1 + confidence) / 2, len(points) - 2) * fit.stderr
    return {"runs": len(points), "microseconds_per_fault": float(fit.slope * 1e6), "confidence": confidence,
            "interval": [float((fit.slope - half_width) * 1e6), float((fit.slope + half_width) * 1e6)],
            "seconds_at_no_faults": float(fit.intercept), "r_squared": float(fit.rvalue ** 2),
            "faults_millions": [min(faults) / 1e6, max(faults) / 1e6]}


def user_seconds(leg: dict):
    """A leg's CPU seconds outside the kernel, from its usage; None where it has no usage with both numbers."""
    usage = leg.get("usage") or {}
    cpu, system = usage.get("cpu_seconds"), usage.get("system_seconds")
    return cpu - system if isinstance(cpu, (int, float)) and isinstance(system, (int, float)) else None


def leg_value(round_: dict, leg: str, key: str):
    """A number of one leg of a round: under `key`, or for USER its user seconds; None if the leg failed or did
    not run."""
    found = round_.get(leg) or {}
    if key == USER:
        return user_seconds(found)
    value = found.get(key)
    return value if isinstance(value, (int, float)) else None


def paired_ratio(rounds: list, numerator: tuple, denominator: tuple, confidence: float = 0.95) -> dict | None:
    """Round-by-round ratios of two legs, their geometric mean and its t interval (on the log ratios, so a
    slow spell of the host that moves both legs of a round cancels), and Wilcoxon's signed-rank p."""
    from scipy import stats

    pairs = [(leg_value(r, *numerator), leg_value(r, *denominator)) for r in rounds]
    ratios = [top / bottom for top, bottom in pairs if top is not None and bottom]
    if len(ratios) < 2:
        return None
    logs = [math.log(x) for x in ratios]
    mean = statistics.fmean(logs)
    half_width = stats.t.ppf((1 + confidence) / 2, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return {"ratios": ratios, "geometric_mean": math.exp(mean), "confidence": confidence,
            "interval": [math.exp(mean - half_width), math.exp(mean + half_width)],
            "wilcoxon_p": float(stats.wilcoxon(logs).pvalue)}


def _number(value, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "–"


def table(report: dict) -> str:
    inside = [r["inside the benchmark"] for r in report["rounds"]]
    alone = [r["alone"] for r in report["rounds"]]
    after = [r.get("alone after bf16", {}) for r in report["rounds"]]
    kept = [r.get("alone, freed memory kept", {}) for r in report["rounds"]]
    kept_inside = [r.get("inside the benchmark, freed memory kept", {}) for r in report["rounds"]]

    def median(runs: list, key: str) -> str:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        return _number(statistics.median(values)) if values else "–"

    def machine(runs: tuple, key: str, spec: str, record: str = "machine") -> str:
        return " / ".join(_number((r.get(record) or {}).get(key), spec) for r in runs)

    lines = [f"{report['cpu']} ({report.get('logical_cpus')} CPUs, {report.get('threads_per_core')} threads a "
             f"core), {report['arch']}, {report['data']} ({report['train_limit'] or 'all'} images)",
             f"| round | {WAY} (in benchmark) s | {CODE} (in benchmark) s | {ALONE} s | {AFTER_BF16} s | "
             f"{KEPT_INSIDE} (in benchmark) s | {KEPT} s | {PROJECT} s | MHz in / alone / after | "
             "probe ms in / alone / after | stolen in / alone / after | cores busy in / alone / after | "
             "involuntary switches in / alone / after | page faults M in / alone / after / kept in / kept | "
             "kernel s in / alone / after / kept in / kept | user CPU s in / alone / after / kept in / kept |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for number, runs in enumerate(zip(inside, alone, after), 1):
        i, a, b = runs
        every = (*runs, kept_inside[number - 1], kept[number - 1])
        faults = " / ".join(_number((r.get("usage") or {}).get("minor_faults", 0) / 1e6 or None, ".2f")
                            for r in every)
        user = " / ".join(_number(user_seconds(r)) for r in every)
        lines.append(f"| {number} | {_number(i.get(WAY))} | {_number(i.get(CODE))} | {_number(a.get(ALONE))} | "
                     f"{_number(b.get(AFTER_BF16))} | {_number(kept_inside[number - 1].get(KEPT_INSIDE))} | "
                     f"{_number(kept[number - 1].get(KEPT))} | "
                     f"{_number(i.get(PROJECT))} | {machine(runs, 'mhz_start', '.0f')}"
                     f" | {machine(runs, 'probe_ms_start', '.1f')} | {machine(runs, 'steal_share', '.1%')} | "
                     f"{machine(runs, 'cores_busy', '.2f', 'usage')} | "
                     f"{machine(runs, 'involuntary_switches', '.0f', 'usage')} | {faults} | "
                     f"{machine(every, 'system_seconds', '.1f', 'usage')} | {user} |")
    lines.append(f"| median | {median(inside, WAY)} | {median(inside, CODE)} | {median(alone, ALONE)} | "
                 f"{median(after, AFTER_BF16)} | {median(kept_inside, KEPT_INSIDE)} | {median(kept, KEPT)} | "
                 f"{median(inside, PROJECT)} | | | | | | | | |")
    lines += ["", "| paired by round | ratios | geometric mean | interval | Wilcoxon p |", "|---|---|---|---|---|"]
    for what, _, _ in COMPARISONS:  # in their order: the JSON keeps its keys sorted
        found = report.get("paired", {}).get(what)
        if found:
            low, high = found["interval"]
            lines.append(f"| {what} | {', '.join(format(x, '.2f') for x in found['ratios'])} | "
                         f"{found['geometric_mean']:.3f} | {found['confidence']:.0%}: {low:.3f} to {high:.3f} | "
                         f"{found['wilcoxon_p']:.3g} |")
    fit = report.get("seconds_on_page_faults")
    if fit:
        low, high = fit["interval"]
        lines += ["", f"epoch seconds against page faults, {fit['runs']} runs of the notebook's code with the "
                  f"allocator as it comes ({fit['faults_millions'][0]:.2f}M to {fit['faults_millions'][1]:.2f}M "
                  f"faults): {fit['microseconds_per_fault']:.2f} µs a fault ({fit['confidence']:.0%}: {low:.2f} to "
                  f"{high:.2f}), {fit['seconds_at_no_faults']:.1f} s at none, r² {fit['r_squared']:.2f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
