"""Which of glibc's decisions lets what a process freed before its training loop change the loop's page faults?

glibc's malloc serves a block of at least `mmap_threshold` bytes with its own `mmap` (unmapped when freed) and
gives the top of its main heap back to the kernel (`brk` down) once more than `trim_threshold` bytes are free
there. Both start at 128 KiB and are dynamic: freeing a block that was mmapped and is at most
32 MiB raises `mmap_threshold` to its size and `trim_threshold` to twice that, unless a MALLOC_*_ environment
variable or `mallopt` fixed them. The notebook's training loop (the Super-Resolution AE, LIMIT images, seed 42,
notebook_literal.py's layers, data cell and loop), each run in a fresh process from a clean environment, started:

    train-only      the training set and its loader only (the benchmark's notebook runs before issue #34's fix)
    test-set        the test set and its loader made too, as the notebook's data cell does (notebook_literal.py now)
    free-BYTES      training set only, but first malloc and free BYTES with libc, nothing else
    test-set-fixed  test set made, with MALLOC_MMAP_THRESHOLD_=131072 (glibc's default, fixed: no dynamic change)
    train-fixed     training set only, with MALLOC_MMAP_THRESHOLD_=131072
    train-kept      training set only, with freed memory kept (allocator.freed_memory_kept_env(), as the benchmark
                    gives the notebook's code)

    python glibc_state.py state N TORCHVISION_ROOT [LIMIT]
        glibc's thresholds, read with gdb (glibc's debug symbols: Debian's libc6-dbg) before the clock starts and
        after it stops, and the loop's page faults; N rounds of every start, alternating; then each start's median
        and its faults paired by round against training set only (or test-set-fixed against train-fixed).
    python glibc_state.py trace N TORCHVISION_ROOT [LIMIT]
        the loop's memory system calls under strace (no gdb): bytes the heap grew and shrank by `brk`, mapped and
        unmapped, and given back by `madvise`, against its page faults; N rounds of train-only, test-set,
        train-fixed, train-kept.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from benchmarks.interleave import paired_ratio  # noqa: E402
from stages.common.models.allocator import freed_memory_kept_env  # noqa: E402

TEST_IMAGES_FILE_BYTES = 7_840_016
CHILD = r"""
import ctypes, json, os, re, resource, subprocess, sys, time
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

start, root, limit, project, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
sys.path.insert(0, project)
from benchmarks.notebook_literal import SuperResolutionAE

FIELDS = ("mp_.mmap_threshold", "mp_.trim_threshold", "mp_.no_dyn_threshold", "main_arena.system_mem")


def glibc_state():
    if mode == "trace":  # strace holds the process: mark the loop in its trace instead
        os.path.exists("/glibc-state-loop-marker")
        return None
    command = ["gdb", "-p", str(os.getpid()), "-batch", "-nx"] + [a for f in FIELDS for a in ("-ex", "print " + f)]
    printed = subprocess.run(command, capture_output=True, text=True).stdout
    values = [int(v) for v in re.findall(r"^\$\d+ = (\d+)$", printed, re.M)]
    if len(values) != len(FIELDS):
        raise SystemExit("gdb did not print glibc's state: " + printed[-400:])
    return dict(zip((f.split(".")[1] for f in FIELDS), values))


if start.startswith("free-"):
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(int(start.removeprefix("free-"))))
torch.manual_seed(42)
np.random.seed(42)
transform = transforms.ToTensor()
train_dataset = Subset(datasets.FashionMNIST(root=root, train=True, download=False, transform=transform),
                       list(range(limit)))
if start.startswith("test-set"):
    test_dataset = datasets.FashionMNIST(root=root, train=False, download=False, transform=transform)
    test_loader = DataLoader(test_dataset, batch_size=128, shuffle=False)
train_loader = DataLoader(train_dataset, batch_size=128, shuffle=True)
model = SuperResolutionAE(64)
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

before = glibc_state()
used, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
running_loss = 0.0
for data, _ in train_loader:
    optimizer.zero_grad()
    loss = criterion(model(data), data)
    loss.backward()
    optimizer.step()
    running_loss += loss.item()
seconds = time.perf_counter() - started
after_usage = resource.getrusage(resource.RUSAGE_SELF)
after = glibc_state()
print(json.dumps({"seconds": seconds, "minor_faults": after_usage.ru_minflt - used.ru_minflt,
                  "system_seconds": after_usage.ru_stime - used.ru_stime, "loss": running_loss / len(train_loader),
                  "before": before, "after": after}))
"""
STATE_STARTS = ("train-only", "test-set", f"free-{TEST_IMAGES_FILE_BYTES}", "free-16000000", "free-31000000",
                "free-40000000", "test-set-fixed", "train-fixed")
TRACE_STARTS = ("train-only", "test-set", "train-fixed", "train-kept")
SYSCALL = re.compile(r"(\d+)\s+(\w+)\((.*)\)\s+= (\S+)")


def run(start: str, root: Path, limit: str, mode: str) -> dict:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    if start.endswith("-fixed"):
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    if start.endswith("-kept"):
        env.update(freed_memory_kept_env())
    with tempfile.TemporaryDirectory() as fresh:
        trace = Path(fresh) / "strace.txt"
        command = [sys.executable, "-c", CHILD, start, str(root), limit, str(ROOT), mode]
        if mode == "trace":
            command = ["strace", "-f", "-qq", "-e", "trace=newfstatat,brk,mmap,munmap,madvise", "-o", str(trace),
                       *command]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=fresh)
        if proc.returncode:
            raise SystemExit(f"{start}: the child failed: {proc.stderr.strip()[-600:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if mode == "trace":
            result["calls"] = loop_calls(trace.read_text().splitlines())
    return result


def loop_calls(lines: list[str]) -> dict:
    """Bytes the heap grew and shrank by, mapped, unmapped and advised away between the loop's two markers."""
    marks = [number for number, line in enumerate(lines) if "glibc-state-loop-marker" in line]
    totals = {"brk_grown": 0, "brk_shrunk": 0, "brk_shrinks": 0, "mapped": 0, "unmapped": 0, "advised_away": 0}
    top = None
    for line in lines[marks[0]:marks[-1]]:
        found = SYSCALL.match(line)
        if not found:
            continue
        _, name, args, returned = found.groups()
        args = args.split(", ")
        if name == "brk":
            new_top = int(returned, 16)
            if top is not None and new_top != top:
                totals["brk_grown" if new_top > top else "brk_shrunk"] += abs(new_top - top)
                totals["brk_shrinks"] += new_top < top
            top = new_top
        elif name == "mmap" and "MAP_ANONYMOUS" in args[3]:
            totals["mapped"] += int(args[1])
        elif name == "munmap":
            totals["unmapped"] += int(args[1])
        elif name == "madvise" and args[2] in ("MADV_DONTNEED", "MADV_FREE"):
            totals["advised_away"] += int(args[1])
    return totals


def state(rounds: int, root: Path, limit: str) -> None:
    import numpy as np

    found = [{} for _ in range(rounds)]
    for number in range(rounds):
        for start in STATE_STARTS if number % 2 == 0 else STATE_STARTS[::-1]:
            result = found[number][start] = run(start, root, limit, "state")
            b, a = result["before"], result["after"]
            print(f"round {number + 1} {start:15s} {result['seconds']:5.2f}s"
                  f" faults {result['minor_faults'] / 1e3:5.0f}k sys {result['system_seconds']:4.2f}"
                  f" mmap_threshold {b['mmap_threshold']}->{a['mmap_threshold']}"
                  f" trim_threshold {b['trim_threshold']}->{a['trim_threshold']} fixed {b['no_dyn_threshold']}"
                  f" heap_mb {b['system_mem'] / 2**20:.1f}->{a['system_mem'] / 2**20:.1f} loss {result['loss']!r}",
                  flush=True)
    print("start | faults, thousands: median (range) | seconds: median (range) | trim_threshold at the loop's "
          "start -> end, bytes | faults / against's, paired: geometric mean (95%), Wilcoxon p")
    for start in STATE_STARTS:
        results = [r[start] for r in found]
        faults = np.array([r["minor_faults"] for r in results]) / 1e3
        seconds = np.array([r["seconds"] for r in results])
        trims = (sorted({r["before"]["trim_threshold"] for r in results}),
                 sorted({r["after"]["trim_threshold"] for r in results}))
        against = "train-fixed" if start == "test-set-fixed" else "train-only"
        paired = ""
        if start not in (against, "train-fixed"):
            ratio = paired_ratio(found, (start, "minor_faults"), (against, "minor_faults"))
            low, high = ratio["interval"]
            paired = f"/ {against} {ratio['geometric_mean']:.3f} ({low:.3f}-{high:.3f}), p {ratio['wilcoxon_p']:.3g}"
        print(f"{start} | {np.median(faults):.0f} ({faults.min():.0f}-{faults.max():.0f}) | {np.median(seconds):.2f} "
              f"({seconds.min():.2f}-{seconds.max():.2f}) | {trims[0]} -> {trims[1]} | {paired}")


def trace(rounds: int, root: Path, limit: str) -> None:
    import numpy as np

    pages, faults = [], []
    for number in range(rounds):
        for start in TRACE_STARTS if number % 2 == 0 else TRACE_STARTS[::-1]:
            result = run(start, root, limit, "trace")
            calls = {key: value / 2**20 if key != "brk_shrinks" else value for key, value in result["calls"].items()}
            given_back = result["calls"]["brk_shrunk"] + result["calls"]["unmapped"] + result["calls"]["advised_away"]
            pages.append(given_back / 4096)
            faults.append(result["minor_faults"])
            print(f"round {number + 1} {start:12s} faults {result['minor_faults'] / 1e3:5.0f}k pages given back "
                  f"{given_back / 4096 / 1e3:5.0f}k | MiB: " + " ".join(f"{k} {v:.0f}" for k, v in calls.items())
                  + f" | loss {result['loss']!r}", flush=True)
    slope, intercept = np.polyfit(pages, faults, 1)
    print(f"page faults against pages given back, {len(pages)} runs: slope {slope:.3f}, intercept "
          f"{intercept / 1e3:.0f}k, r {np.corrcoef(pages, faults)[0, 1]:.4f}")


if __name__ == "__main__":
    MODES = {"state": state, "trace": trace}
    if len(sys.argv) < 4 or sys.argv[1] not in MODES:
        raise SystemExit(__doc__)
    MODES[sys.argv[1]](int(sys.argv[2]), Path(sys.argv[3]).resolve(), sys.argv[4] if len(sys.argv) > 4 else "5000")
