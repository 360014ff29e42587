"""The project's user-facing error type and the stage entry point that reports it in one line."""
from __future__ import annotations

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """An error caused by the user's input (params, data files, network): shown as one line."""


def run_stage(main: Callable[[list[str]], None]) -> None:
    """Run a stage's `main(argv)`; a PipelineError becomes one line on stderr and exit code 1."""
    try:
        main(sys.argv[1:])
    except PipelineError as err:
        message = " ".join(str(err).split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; no output was written", file=sys.stderr)
        sys.exit(130)
