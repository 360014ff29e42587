"""The machine around a measurement, and what a measured process inherits from the one that starts it.

A VM's cores report their nominal clock whatever they run at, so besides the clock
the OS reports, `clock_probe_ms` times a fixed scalar workload: if the cores slow
down (after heavy vector work, or when the host is busy) the probe takes longer.
`inherited_state` reads what a child process inherits through fork and exec and
what could make two runs of the same code differ: CPU affinity, niceness, the
stack limit, transparent huge pages (the system's mode and the process's
`PR_SET_THP_DISABLE`), the cgroup's CPU quota. `cpu_topology` says how many of the
logical CPUs are hyperthreads of one core, which sets torch's default thread count.
`login_shell_env` is the environment a user's fresh shell would give a script.
`process_usage` and `usage_during` say, over a timed epoch, whether a slow run
computed more (CPU seconds up: slower cores, spinning threads) or waited (the cores
less busy, more involuntary switches: neighbours took the CPU; page faults: memory).
"""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path


def clock_probe_ms(iterations: int = 200_000, repeats: int = 5) -> float:
    """Milliseconds a fixed chain of integer operations takes, the best of `repeats`: a clock that a VM's
    reported MHz does not show (a longer probe, a slower core). Scalar work, so it does not itself heat the
    core; the best of several so that a moment's preemption does not count."""
    best = float("inf")
    for _ in range(repeats):
        x = 1
        started = time.perf_counter()
        for _ in range(iterations):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def login_shell_env() -> dict:
    """What a fresh login shell has: the basics, and the variables the machine itself sets for its math
    libraries (they would be there for a user too); nothing a parent process or make added."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "USER", "TERM")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith(("OPENBLAS_CORETYPE", "OPENBLAS_L2"))}


def process_usage() -> dict:
    """This process's CPU seconds (all its threads; of them, in the kernel: page faults are served there), context
    switches and page faults so far."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_seconds": used.ru_utime + used.ru_stime, "system_seconds": used.ru_stime,
            "involuntary_switches": used.ru_nivcsw,
            "voluntary_switches": used.ru_nvcsw, "major_faults": used.ru_majflt, "minor_faults": used.ru_minflt}


def usage_during(before: dict, after: dict, wall_seconds: float) -> dict:
    """What the process used between two `process_usage` readings, and how many cores it kept busy on average."""
    used = {key: after[key] - before[key] for key in before}
    used["cores_busy"] = used["cpu_seconds"] / wall_seconds if wall_seconds > 0 else None
    return used


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _status_field(name: str) -> str | None:
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def inherited_state() -> dict:
    """What a child started from this process inherits and could run differently with."""
    stack_soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    thp_mode = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    return {
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "stack_limit_mb": None if stack_soft == resource.RLIM_INFINITY else stack_soft / 2**20,
        "thp_mode": thp_mode.split("[", 1)[1].split("]", 1)[0] if thp_mode and "[" in thp_mode else thp_mode,
        "thp_enabled_for_process": _status_field("THP_enabled"),  # 0 where PR_SET_THP_DISABLE was set
        "cgroup_cpu_max": _read("/sys/fs/cgroup/cpu.max"),
    }


def cpu_topology() -> dict:
    """Logical CPUs, and how many of them share a core (torch's default threads are the physical cores)."""
    siblings = cores = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "siblings" and siblings is None:
            siblings = int(value)
        elif key.strip() == "cpu cores" and cores is None:
            cores = int(value)
    return {"logical_cpus": os.cpu_count(), "threads_per_core": siblings // cores if siblings and cores else None}


def machine_counters() -> dict:
    """What the machine is doing now: the cores' clock (MHz as reported, mean), the clock probe, and
    /proc/stat's CPU times (jiffies)."""
    found = {"mhz": None, "cpu_times": None, "probe_ms": clock_probe_ms()}
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        found["mhz"] = sum(mhz) / len(mhz) if mhz else None
        found["cpu_times"] = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        pass
    return found


def machine_during(before: dict, after: dict) -> dict:
    """The machine over one measurement: clock and probe at its start and end, and the shares of CPU time
    stolen by the host (a VM's neighbours) and left idle."""
    out = {"mhz_start": before["mhz"], "mhz_end": after["mhz"], "probe_ms_start": before.get("probe_ms"),
           "probe_ms_end": after.get("probe_ms")}
    if before["cpu_times"] and after["cpu_times"]:
        delta = [b - a for a, b in zip(before["cpu_times"], after["cpu_times"])]
        total = sum(delta) or 1
        out["steal_share"] = delta[7] / total    # user nice system idle iowait irq softirq steal
        out["idle_share"] = delta[3] / total
    return out
