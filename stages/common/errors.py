"""The project's user-facing error type and the stage entry point that turns every failure into one line.

No traceback reaches the user: an expected problem (a PipelineError: params, data
files, network) is printed as it is; anything else becomes one line naming the
stage and where the full traceback was logged. `AE_DEBUG=1` prints the traceback
instead.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path


class PipelineError(Exception):
    """An error caused by the user's input (params, data files, network): shown as one line."""


# The output set of the running stage (an atomic.OutputSet, registered by itself):
# run_stage discards its temporaries on failure and names what was written when interrupted.
_outputs = None


def track_outputs(outputs) -> None:
    """Make `outputs` (with .written, .pending and .discard()) the running stage's output set."""
    global _outputs
    _outputs = outputs


def _interrupt_message() -> str:
    if _starter_gone:
        return (f"the process that started it ({_starter_gone[0]}) is gone, so a newer run may have written its "
                "outputs since; stopped, nothing was written")
    outputs = _outputs
    if outputs is None or not outputs.written:
        return "interrupted; no output was written, earlier outputs are unchanged"
    if not outputs.pending:
        return "interrupted after every output was written; the stage's outputs are complete"
    written = ", ".join(map(str, outputs.written))
    pending = ", ".join(map(str, outputs.pending))
    return f"interrupted while replacing outputs: written {written}; unchanged {pending}; rerun the stage"


def _discard_temporaries() -> None:
    if _outputs is not None:
        _outputs.discard()


def _sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


# --------------------------------------------------------------------------- the process that started the stage
# A stage that DVC started (DVC sets DVC_STAGE for every command it runs: `dvc repro`, a sweep cell's `dvc exp
# run`) works for that DVC: once it is gone (killed, say, by a service manager's SIGTERM, which reaches it and not
# its children), a newer run may already have written its own outputs, so the stage must stop without writing.
# Recorded at start: the parent, and the parent's parent where the parent is the shell DVC ran the command
# through; each with its start time, so a reused PID is not mistaken. A stage or tool run by hand is not watched:
# `nohup python -m stages train conv &` is meant to outlive its terminal.
STARTED_BY_DVC = "DVC_STAGE"
SHELLS = {"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish"}
STARTER_POLL_SECONDS = 0.5
_starters: list[tuple[int, str | None]] = []
_starter_gone: list[str] = []


def _proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, start time, parent PID) of a process from /proc; None where it is gone or unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, _, rest = text.partition(" (")[2].rpartition(") ")
    fields = rest.split()
    return name, fields[19], int(fields[1])


def record_starters() -> None:
    """Remember which processes started this one (module comment above)."""
    _starters.clear()
    parent = os.getppid()
    stat = _proc_stat(parent)
    _starters.append((parent, stat[1] if stat else None))
    if stat and stat[0] in SHELLS and stat[2] > 1:
        grand = _proc_stat(stat[2])
        if grand:
            _starters.append((stat[2], grand[1]))


def starter_gone() -> str | None:
    """Which starter is gone ("dvc, pid 123"), or None while every one runs."""
    for pid, started in _starters:
        stat = _proc_stat(pid)
        alive = (stat is not None and stat[1] == started) if started is not None else os.getppid() == _starters[0][0]
        if not alive:
            return f"pid {pid}"
    return None


def check_starters() -> None:
    """PipelineError where the process that started this stage is gone: nothing may be written any more."""
    gone = starter_gone()
    if gone:
        raise PipelineError(f"the process that started this stage ({gone}) is gone, so a newer run may have "
                            "written its outputs since; stopped, nothing was written")


def _watch_starters() -> None:
    while True:
        gone = starter_gone()
        if gone:
            _starter_gone.append(gone)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        threading.Event().wait(STARTER_POLL_SECONDS)


def watch_starters() -> None:
    """Record the starters and stop this process (SIGTERM to itself) as soon as one is gone."""
    record_starters()
    try:
        threading.Thread(target=_watch_starters, name="starter-watch", daemon=True).start()
    except RuntimeError:  # no thread to be had (a memory limit): the check at commit still holds
        pass


def _say(line: str) -> None:
    """Print one line to stderr; nothing about printing it can fail the stage."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _hold_signals_then_exit(code: int) -> None:
    """The stage has ended: further Ctrl-C or SIGTERM end the process at once, quietly, with `code`.

    Interpreter shutdown runs finalizers that a second Ctrl-C would interrupt with a
    traceback; exiting at once is what the user asked for anyway.
    """
    def quit_now(signum, frame):
        os._exit(code)

    signal.signal(signal.SIGINT, quit_now)
    signal.signal(signal.SIGTERM, quit_now)


def _exit(code: int) -> None:
    _hold_signals_then_exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _log_path(stage: str) -> Path:
    folder = Path(".dvc/tmp") if Path(".dvc").is_dir() else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)  # a fresh clone has no .dvc/tmp yet
    return folder / f"ae-compare-{stage.replace('@', '-')}.log"


OUT_OF_MEMORY = "out of memory; lower the batch sizes or the data limits in params.yaml, or raise the memory limit"
# What the dynamic loader says when a memory limit keeps it from mapping a library.
MEMORY_SIGNS = ("failed to map segment", "Cannot allocate memory", "cannot allocate memory")


def run_stage(main: Callable[[list[str]], None], name: str, argv: list[str], stage: str | None = None) -> None:
    """Run a stage's (or tool's) `main(argv)`; every failure becomes one line on stderr and a non-zero exit.

    `stage` names it in messages (its dvc.yaml name); by default `name@arg`, or `name`.
    """
    if stage is None:
        stage = name if not argv or argv[0].startswith("-") else f"{name}@{argv[0]}"
    for stream in (sys.stdout, sys.stderr):
        # A message with a character the terminal's encoding lacks is shown escaped, never an error.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # From here on Ctrl-C and SIGTERM unwind through the stage, so temporaries are removed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    if os.environ.get(STARTED_BY_DVC):
        watch_starters()
    try:
        try:
            main(argv)
        finally:
            _discard_temporaries()
    except PipelineError as err:
        _hold_signals_then_exit(1)
        _say("error: " + " ".join(str(err).split()))
        _exit(1)
    except KeyboardInterrupt:
        _hold_signals_then_exit(130)
        _say(f"error: {stage}: {_interrupt_message()}")
        _exit(130)
    except BrokenPipeError:
        # The reader of our output went away (`| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _exit(0)
    except MemoryError:
        _hold_signals_then_exit(1)
        _say(f"error: {stage}: {OUT_OF_MEMORY}")
        _exit(1)
    except ImportError as err:  # a library that cannot load: under a memory limit, or a broken environment
        _hold_signals_then_exit(1)
        detail = " ".join(str(err).split())[:200]
        if any(sign in detail for sign in MEMORY_SIGNS):
            _say(f"error: {stage}: {OUT_OF_MEMORY} (loading a library: {detail})")
        else:
            _say(f"error: {stage}: a library could not be loaded: {detail}; rerun `make setup`")
        _exit(1)
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("AE_DEBUG"):
            raise
        _hold_signals_then_exit(1)
        try:
            log = _log_path(stage)
            log.write_text(traceback.format_exc())
            where = f"traceback in {log}"
        except OSError:
            where = "rerun with AE_DEBUG=1 for the traceback"
        detail = " ".join(str(err).split())[:300]
        _say(f"error: {stage}: unexpected {type(err).__name__}: {detail} ({where}; AE_DEBUG=1 prints it)")
        _exit(1)
    _hold_signals_then_exit(130)
