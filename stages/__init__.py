"""DVC stage scripts of the autoencoder comparison; each runs as `python -m stages.<name>`."""
import os
import signal
import sys


def _interrupted_at_start_up(signum, frame):
    # Importing torch or scikit-learn takes seconds; an interrupt then has nothing to clean up.
    sys.stderr.write("error: interrupted during start-up; nothing was written\n")
    os._exit(130)


# Only when a stage is starting (`python -m stages.x`: argv[0] is "-m" while the package
# loads), never when tests or other code import the package.
if sys.argv[:1] == ["-m"]:
    signal.signal(signal.SIGINT, _interrupted_at_start_up)
    signal.signal(signal.SIGTERM, _interrupted_at_start_up)
