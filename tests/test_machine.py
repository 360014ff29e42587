"""benchmarks/machine.py: the clock probe, and what a started process inherits, read where it differs."""
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.machine import (
    clock_probe_ms,
    cpu_topology,
    inherited_state,
    login_shell_env,
    machine_counters,
    machine_during,
    process_usage,
    usage_during,
)

ROOT = Path(__file__).resolve().parents[1]
READ_CHILD = "import json; from benchmarks.machine import inherited_state; print(json.dumps(inherited_state()))"


def child_state(preexec=None) -> dict:
    proc = subprocess.run([sys.executable, "-c", READ_CHILD], cwd=ROOT, capture_output=True, text=True, check=True,
                          preexec_fn=preexec)
    return json.loads(proc.stdout)


def test_a_child_inherits_what_the_record_says():
    assert child_state() == inherited_state()


def test_the_record_sees_a_parent_that_changed_niceness_or_affinity():
    assert child_state(lambda: os.nice(5))["nice"] == inherited_state()["nice"] + 5
    one_cpu = min(os.sched_getaffinity(0))
    assert child_state(lambda: os.sched_setaffinity(0, {one_cpu}))["affinity"] == [one_cpu]


def test_the_clock_probe_times_a_fixed_workload():
    short, long = clock_probe_ms(iterations=20_000, repeats=3), clock_probe_ms(iterations=200_000, repeats=3)
    assert 0 < short < long  # ten times the work takes longer: it is timing the loop


def test_the_machine_record_spans_a_measurement():
    during = machine_during(machine_counters(), machine_counters())
    assert during["probe_ms_start"] > 0 and during["probe_ms_end"] > 0
    assert 0 <= during.get("steal_share", 0) <= 1


def test_the_topology_counts_the_cpus():
    topology = cpu_topology()
    assert topology["logical_cpus"] == os.cpu_count()
    assert topology["threads_per_core"] is None or topology["threads_per_core"] >= 1


def test_a_login_shell_environment_keeps_the_basics_and_drops_what_a_parent_added(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    found = login_shell_env()
    assert found["PATH"] == "/usr/bin:/bin"
    assert "MKL_NUM_THREADS" not in found and "PYTHONPATH" not in found


def test_usage_reads_the_cpu_time_and_page_faults_of_the_work_between():
    before = process_usage()
    pages = bytearray(64 * 2**20)
    pages[::4096] = b"x" * len(pages[::4096])  # touch every page: each one a fault
    sum(range(2_000_000))
    used = usage_during(before, process_usage(), wall_seconds=0.5)
    assert used["cpu_seconds"] > 0 and used["minor_faults"] >= 64 * 2**20 // 4096 // 2
    assert used["cores_busy"] == used["cpu_seconds"] / 0.5
    assert set(used) >= {"involuntary_switches", "voluntary_switches", "major_faults"}
    # The kernel serves the faults: its share of the CPU time is kept apart, never more than the whole.
    assert 0 <= used["system_seconds"] <= used["cpu_seconds"]


def test_usage_over_no_time_says_nothing_of_busy_cores():
    reading = process_usage()
    assert usage_during(reading, reading, wall_seconds=0)["cores_busy"] is None
