"""The sweep's one engine: hand cells to a Dask cluster, watch them, and end in bounded time whatever happens.

The same code serves one machine (an in-process `LocalCluster` with `jobs` threads,
each running one cell's processes) and many (a `dask scheduler` and `dask worker`s
anywhere). Each cell is a task running `tools.cells.run_cell`, sent by value, so a
worker needs the project's environment but not the project. What it guarantees:

- A scheduler address is parsed and reached (`connect_timeout` seconds) before
  anything else happens; a refused port fails in about a second, with one line.
- A worker killed mid-cell loses its task to another worker (Dask reschedules it);
  the cell's experiment name is fixed, so it is published once.
- Losing every worker ends the sweep after `no_workers_timeout` seconds without
  one, and losing the scheduler after `connect_timeout` seconds: one line naming the
  cells published and those not.
- Ctrl-C or SIGTERM sets a Dask event that every running cell polls, cancels the
  tasks still queued, and returns once the running cells have stopped their
  processes (each cell's guard stops its process group).
"""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from stages.common.errors import PipelineError

SCHEMES = ("tcp", "tls", "ws", "wss")
ENCRYPTED = ("tls", "wss")
POLL_SECONDS = 2
# Dask's own config keys for the client's credentials: what `--scheduler tls://…` uses when no flag is given.
TLS_CONFIG = {"ca_file": "distributed.comm.tls.ca-file", "cert": "distributed.comm.tls.client.cert",
              "key": "distributed.comm.tls.client.key"}
TLS_FLAGS = {"ca_file": "--tls-ca-file", "cert": "--tls-cert", "key": "--tls-key"}
EXPECTED = "tls://host:port (or tcp://127.0.0.1:port on this machine)"


def quiet_dask() -> None:
    """Dask logs to stderr what it does about lost workers and schedulers; the sweep says it in one line.
    Its own logging config gives some loggers (distributed.client) levels of their own, so every one is set."""
    import logging

    import distributed.client  # noqa: F401 - creates the loggers whose levels are set below

    for name in [*logging.root.manager.loggerDict, "distributed", "dask"]:
        if name.split(".")[0] in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, as `taskset` or a batch system sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is on this machine only (127.0.0.0/8, ::1)."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_address(address: str, plain_tcp: bool = False) -> str:
    """A scheduler address as Dask takes it; PipelineError with one line otherwise.

    Whoever reaches a Dask scheduler runs code as the user of every worker, so an unencrypted
    address (tcp://, ws://) must be on this machine unless `plain_tcp` says the user means it."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address, strict=True)
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        raise PipelineError(f"--scheduler {address!r}: not a Dask scheduler address; expected {EXPECTED}") \
            from None
    if scheme not in SCHEMES or not host or not port or not 0 < int(port) < 65536:
        raise PipelineError(f"--scheduler {address!r}: not a Dask scheduler address; expected {EXPECTED} "
                            f"(scheme one of {', '.join(SCHEMES)})")
    if scheme not in ENCRYPTED and not plain_tcp and not is_loopback(host):
        raise PipelineError(f"--scheduler {address}: unencrypted, and not on this machine: whoever reaches a Dask "
                            f"scheduler runs code as you on every worker; use tls:// (docs/machines.md), or "
                            f"--allow-plain-tcp on a network only you can reach")
    return address


def tls_security(address: str, ca_file: str | None = None, cert: str | None = None, key: str | None = None):
    """The client's distributed.security.Security for a tls:// or wss:// address (None for another): from the
    flags where given, else from dask's config; one line naming what is missing or unreadable."""
    import dask
    from distributed.security import Security

    if address.split("://")[0] not in ENCRYPTED:
        return None
    given = {"ca_file": ca_file, "cert": cert, "key": key}
    found = {name: value or dask.config.get(TLS_CONFIG[name], None) for name, value in given.items()}
    missing = [name for name in ("ca_file", "cert") if not found[name]]
    if missing:
        raise PipelineError(f"--scheduler {address}: no TLS credentials: " + ", ".join(
            f"{TLS_FLAGS[name]} (or dask config {TLS_CONFIG[name]})" for name in missing)
            + " missing; docs/machines.md shows how to make them")
    for name, path in found.items():
        if path and not os.access(path, os.R_OK):
            raise PipelineError(f"{TLS_FLAGS[name]} {path}: no such readable file (a PEM file expected)")
    return Security(tls_ca_file=found["ca_file"], tls_client_cert=found["cert"], tls_client_key=found["key"],
                    require_encryption=True)


def connect(address: str, connect_timeout: float, security=None):
    """A Dask client of the scheduler at `address`, reached within `connect_timeout` seconds, or one line."""
    import ssl

    from distributed import Client

    quiet_dask()
    try:
        return Client(address, timeout=f"{connect_timeout}s", security=security)
    except (OSError, TimeoutError, ssl.SSLError) as err:
        reason = " ".join(str(err).split())[:160]
        raise PipelineError(f"--scheduler {address}: no Dask scheduler answered within {connect_timeout:g} s "
                            f"({reason}); start one (dask scheduler) or check the address and credentials") \
            from None


def local_client(jobs: int):
    """An in-process Dask cluster running `jobs` cells at a time (threads: each cell is its own processes).

    Its scheduler and worker talk in-process; the HTTP servers Dask starts even without a dashboard
    listen on loopback only, on free ports."""
    from distributed import Client, LocalCluster

    quiet_dask()
    cluster = LocalCluster(n_workers=1, threads_per_worker=jobs, processes=False,
                           dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0")
    return Client(cluster)


def worker_count(client, timeout: float) -> int | None:
    """Workers the scheduler knows now; None when the scheduler does not answer within `timeout`."""
    try:
        info = client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure to reach the scheduler means the same here
        return None
    return len(info.get("workers", {}))


@dataclass
class Dispatch:
    """What became of the cells: outcomes of those that ended, the names of those that did not."""

    outcomes: list = field(default_factory=list)
    unfinished: list = field(default_factory=list)
    workers: int = 0


def run_cells(client, specs: list[dict], task: Callable, on_outcome: Callable[[dict], None],
              no_workers_timeout: float, connect_timeout: float) -> Dispatch:
    """Run `task(spec)` for every spec on the cluster; `on_outcome` for each as it ends. Bounded in time."""
    from distributed import Event, wait
    from distributed.client import FutureCancelledError, FuturesCancelledError

    cancel_name = f"ae-sweep-cancel-{uuid.uuid4().hex}"
    cancel = Event(cancel_name, client=client)
    futures, parts = {}, []
    for spec in specs:  # in order: Dask starts what was submitted first first
        # A cell's parts (spec["parts"]) run first, side by side; the cell waits for them (a task's arguments).
        before = [client.submit(task, {**part, "cancel": cancel_name}, key=f"{part['name']}-{cancel_name[-8:]}",
                                pure=False) for part in spec.get("parts", ())]
        parts += before
        cell = {k: v for k, v in spec.items() if k != "parts"}
        futures[client.submit(task, {**cell, "cancel": cancel_name}, *before,
                              key=f"{spec['name']}-{cancel_name[-8:]}", pure=False)] = spec
    result = Dispatch(workers=worker_count(client, connect_timeout) or 0)
    pending, last_seen = set(futures), {"workers": time.monotonic(), "scheduler": time.monotonic()}
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:  # none ended within the poll
                done = set()
            except (FutureCancelledError, FuturesCancelledError):  # Dask gave up on the scheduler
                raise PipelineError(f"sweep: lost the Dask scheduler; {_unfinished(futures, pending)}") from None
            for future in done:
                if future.status == "cancelled":
                    raise PipelineError(f"sweep: lost the Dask scheduler; {_unfinished(futures, pending | done)}")
                outcome = _outcome(future, futures[future])
                result.outcomes.append(outcome)
                on_outcome(outcome)
            if pending:
                _check_cluster(client, last_seen, no_workers_timeout, connect_timeout, futures, pending)
    except BaseException:
        _stop(client, cancel, pending | set(parts))
        result.unfinished = [futures[f]["name"] for f in pending]
        raise
    return result


def _outcome(future, spec: dict) -> dict:
    base = {"seed": spec["seed"], "latent_dim": spec["latent_dim"], "name": spec["name"], "host": "?"}
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - a task Dask gave up on (workers killed under it) is that cell's error
        return {**base, "error": f"{type(err).__name__}: {' '.join(str(err).split())[:300]}", "log": ""}


def _check_cluster(client, last_seen: dict, no_workers_timeout: float, connect_timeout: float, futures: dict,
                   pending: set) -> None:
    now = time.monotonic()
    workers = worker_count(client, connect_timeout)
    if workers is None:
        if now - last_seen["scheduler"] > connect_timeout:
            raise PipelineError(f"sweep: lost the Dask scheduler for {connect_timeout:g} s; "
                                f"{_unfinished(futures, pending)}")
        return
    last_seen["scheduler"] = now
    if workers < last_seen.get("count", workers):
        print(f"sweep: {last_seen['count'] - workers} Dask worker(s) left; the cells they ran start again on "
              f"the others ({workers} now)", flush=True)
    last_seen["count"] = workers
    if workers:
        last_seen["workers"] = now
    elif now - last_seen["workers"] > no_workers_timeout:
        raise PipelineError(f"sweep: no Dask worker for {no_workers_timeout:g} s (--no-workers-timeout); "
                            f"{_unfinished(futures, pending)}")


def _unfinished(futures: dict, pending: set) -> str:
    names = sorted(futures[f]["name"] for f in pending)
    done = len(futures) - len(names)
    return (f"{done} of {len(futures)} cell(s) ended (their experiments are published); not run: "
            f"{', '.join(names)}; run the sweep again to run them")


STOP_SECONDS = 30


def _running_here(client) -> int | None:
    """Cells still executing in this process's own Dask worker (a sweep on this machine); None for a cluster."""
    workers = getattr(getattr(client, "cluster", None), "workers", None) or {}
    try:
        return sum(worker.state.executing_count for worker in workers.values())
    except AttributeError:  # workers in other processes or machines: their cells stop on the event
        return None


def _stop(client, cancel, pending: set) -> None:
    """Tell running cells to stop, drop queued ones, and wait (bounded) for this machine's to have stopped:
    each then ends its processes and removes its clone."""
    for step in (cancel.set, lambda: client.cancel(list(pending), force=True)):
        try:
            step()
        except BaseException:  # noqa: BLE001 - the scheduler may be what is gone; a second Ctrl-C, what interrupts
            pass
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and (_running_here(client) or 0) > 0:
        time.sleep(0.2)
