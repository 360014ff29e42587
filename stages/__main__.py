"""`python -m stages <name> [arg]`: the one entry point of every stage (what dvc.yaml runs).

The stage's module (torch, scikit-learn: seconds, and most of a stage's memory) is
imported inside `run_stage`, so a failure while importing (a memory limit, a broken
environment) or Ctrl-C then is one line like any other. Only the usage check runs
before it.
"""
import contextlib
import importlib
import os
import signal
import sys
import tempfile

from stages import STAGES, TAKES_ONE_ARGUMENT, dvc_stage_name


def _interrupted_at_start_up(signum, frame):
    sys.stderr.write("error: interrupted during start-up; nothing was written\n")
    os._exit(130)


# What OpenBLAS prints straight to the terminal when a memory limit keeps it from starting its threads; it goes on
# with one thread, and a stage that then runs out of memory says so in its own line.
BLAS_THREAD_NOISE = "OpenBLAS blas_thread_init:"


@contextlib.contextmanager
def stderr_held():
    """C libraries write to file descriptor 2 while they load: held here, dropped where the import fails (the
    stage's one line says why) and replayed where it succeeds, less OpenBLAS's thread-start noise."""
    try:
        held, saved = tempfile.TemporaryFile(), os.dup(2)
    except OSError:  # no file to hold it in: let it through
        yield
        return
    with held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        text = held.read().decode("utf-8", errors="replace")
        kept = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(BLAS_THREAD_NOISE))
        if kept:
            sys.stderr.write(kept)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted_at_start_up)
    signal.signal(signal.SIGTERM, _interrupted_at_start_up)
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
        sys.stderr.write(f"error: usage: python -m stages <stage> [arg], stage one of {', '.join(STAGES)}; "
                         f"got {sys.argv[1:]}\n")
        sys.exit(2)
    name, args = sys.argv[1], sys.argv[2:]
    if name not in TAKES_ONE_ARGUMENT and args:
        sys.stderr.write(f"error: usage: python -m stages {name} (no arguments); got {args}\n")
        sys.exit(2)
    from stages.common.errors import run_stage

    def imported_main(argv: list[str]) -> None:
        with stderr_held():
            module = importlib.import_module(f"stages.{name}")
        module.main(argv)

    run_stage(imported_main, name, args, dvc_stage_name(name, args))


if __name__ == "__main__":
    main()
