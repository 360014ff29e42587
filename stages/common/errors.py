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


def _log_path(stage: str) -> Path:
    folder = Path(".dvc/tmp") if Path(".dvc").is_dir() else Path(tempfile.gettempdir())
    return folder / f"ae-compare-{stage.replace('@', '-')}.log"


def _interrupt_message() -> str:
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


def run_stage(main: Callable[[list[str]], None], name: str, argv: list[str]) -> None:
    """Run a stage's (or tool's) `main(argv)`; every failure becomes one line on stderr and a non-zero exit."""
    stage = "@".join([name, *argv[:1]])
    # From here on Ctrl-C and SIGTERM unwind through the stage, so temporaries are removed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        try:
            main(argv)
        finally:
            _discard_temporaries()
    except PipelineError as err:
        message = " ".join(str(err).split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"error: {stage}: {_interrupt_message()}", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (`| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except MemoryError:
        print(f"error: {stage}: out of memory; lower the batch sizes or the data limits in params.yaml",
              file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("AE_DEBUG"):
            raise
        log = _log_path(stage)
        try:
            log.write_text(traceback.format_exc())
            where = f"traceback in {log}"
        except OSError:
            where = "rerun with AE_DEBUG=1 for the traceback"
        detail = " ".join(str(err).split())[:300]
        print(f"error: {stage}: unexpected {type(err).__name__}: {detail} ({where}; AE_DEBUG=1 prints it)",
              file=sys.stderr)
        sys.exit(1)
