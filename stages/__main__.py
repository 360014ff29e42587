"""`python -m stages <name> [arg]`: the one entry point of every stage (what dvc.yaml runs).

Ctrl-C or SIGTERM while a stage is still importing torch or scikit-learn (seconds)
has nothing to clean up, so it ends the process with one line; once the stage's
`main` runs, `run_stage` takes over signals and errors.
"""
import importlib
import os
import signal
import sys

from stages import STAGES, TAKES_ONE_ARGUMENT, dvc_stage_name


def _interrupted_at_start_up(signum, frame):
    sys.stderr.write("error: interrupted during start-up; nothing was written\n")
    os._exit(130)


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
    module = importlib.import_module(f"stages.{name}")
    from stages.common.errors import run_stage

    run_stage(module.main, name, args, dvc_stage_name(name, args))


if __name__ == "__main__":
    main()
