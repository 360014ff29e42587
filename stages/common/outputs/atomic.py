"""Atomic output writing: a stage's outputs appear complete and together, or not at all.

A stage killed part-way (Ctrl-C, SIGKILL, OOM) must never leave a file that DVC or
a user could take for a finished output, nor a set that mixes a new model with the
previous run's metrics. Every writer goes to a temporary name in the same folder;
`OutputSet` renames all of a stage's temporaries into place at the end, with Ctrl-C
held off for those few renames.

Temporaries are named `.<name>.tmp-<pid>-<random>`; one is removed as stale only
when the process that made it is gone, so two runs of one stage at once never
delete each other's work. Files get the usual permissions (0666 less the umask).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import shutil
import signal
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stages.common.errors import PipelineError, check_starters, track_outputs

TMP_MARK = ".tmp-"


def _umask() -> int:
    # os.umask can only be read by setting it; done once, before any thread starts.
    current = os.umask(0o022)
    os.umask(current)
    return current


UMASK = _umask()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(temp_name: str) -> int | None:
    tail = temp_name.split(TMP_MARK, 1)[-1]
    head = tail.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def remove_stale_temps(path: Path) -> None:
    """Remove temporaries beside `path` whose writing process is gone (a killed earlier run)."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(f".{path.name}{TMP_MARK}*"):
        pid = _owner_pid(stale.name)
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue  # another run is writing it right now
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                stale.unlink()


def write_error(path: Path, err: OSError) -> PipelineError:
    if err.errno == errno.ENOSPC:
        why = "no space left on the device; free some and rerun"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "not writable (permissions or a read-only file system); fix and rerun"
    else:
        why = f"cannot be written ({err.strerror or err})"
    return PipelineError(f"{path}: {why}")


def new_temp(path: Path, directory: bool = False) -> Path:
    """A fresh temporary file (or folder) beside `path`, with the usual permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    prefix = f".{path.name}{TMP_MARK}{os.getpid()}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
        os.chmod(tmp, 0o777 & ~UMASK)
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~UMASK)
    return tmp


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    try:
        tmp = new_temp(path)
    except OSError as err:
        raise write_error(path, err) from None
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        _remove(tmp)


# --------------------------------------------------------------------------- serialisers
def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Like `np.savez`, but byte-identical for equal arrays.

    `np.savez` stamps each zip member with the current time, so two runs that
    compute the same latents would still write different files and DVC would see
    a change. Members here carry a fixed date instead.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return out.getvalue()


def json_text(obj) -> str:
    """JSON with sorted keys and a final newline, so equal content gives equal bytes.

    Refuses NaN and infinity, which are not JSON (DVC and browsers reject the file).
    """
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def figure_bytes(fig, fmt: str = "png", dpi: int = 100) -> bytes:
    """A matplotlib figure rendered without metadata that varies between runs; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def write_json(path: str | os.PathLike, obj) -> None:
    """One JSON file written atomically, outside any stage (the benchmarks' reports)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(obj), encoding="utf-8")


# --------------------------------------------------------------------------- output sets
class OutputSet:
    """All outputs of one stage, staged as temporaries and put in place together.

    Created before the long work starts, it checks that every output's folder is
    writable (so a read-only `metrics/` is found in a second, not after training).
    `commit()` first checks that every destination can be replaced (a folder where a
    file goes, say, is found before anything moves), then renames every temporary onto
    its final name with SIGINT and SIGTERM held off, so an interrupt leaves either the
    old set or the new one; `written` and `pending` say which outputs are in place.
    An output is a file (`bytes`, `text`, `json`, `npz`, `figure`) or a whole folder
    (`folder`, which hands out an empty temporary folder to fill).
    """

    def __init__(self, paths: list[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]
        self.staged: dict[Path, Path] = {}
        self.folders: set[Path] = set()
        self.written: list[Path] = []
        for path in self.paths:
            check_writable(path)
        track_outputs(self)

    def _declared(self, path) -> Path:
        path = Path(path)
        if path not in self.paths:
            raise ValueError(f"{path} is not one of this stage's declared outputs")
        if path in self.staged:
            _remove(self.staged.pop(path))
        return path

    def _stage(self, path: Path, data: bytes) -> None:
        path = self._declared(path)
        try:
            tmp = new_temp(path)
        except OSError as err:
            raise write_error(path, err) from None
        try:
            tmp.write_bytes(data)
            _fsync_file(tmp)
        except OSError as err:
            _remove(tmp)
            raise write_error(path, err) from None
        self.staged[path] = tmp

    def folder(self, path) -> Path:
        """An empty temporary folder that replaces the folder `path` at commit; the caller fills it."""
        path = self._declared(path)
        try:
            tmp = new_temp(path, directory=True)
        except OSError as err:
            raise write_error(path, err) from None
        self.staged[path] = tmp
        self.folders.add(path)
        return tmp

    def bytes(self, path, data: bytes) -> None:
        self._stage(path, data)

    def text(self, path, text: str) -> None:
        self._stage(path, text.encode("utf-8"))

    def json(self, path, obj) -> None:
        self._stage(path, json_text(obj).encode("utf-8"))

    def npz(self, path, **arrays: np.ndarray) -> None:
        self._stage(path, npz_bytes(**arrays))

    def figure(self, path, fig, dpi: int = 100) -> None:
        self._stage(path, figure_bytes(fig, Path(path).suffix.lstrip(".") or "png", dpi))

    @property
    def pending(self) -> list[Path]:
        return [p for p in self.paths if p not in self.written]

    def _check_replaceable(self) -> None:
        for path in self.paths:
            if not os.path.lexists(path):
                continue
            is_dir = path.is_dir() and not path.is_symlink()
            if is_dir != (path in self.folders):
                kind, expected = ("a folder", "file") if is_dir else ("a file", "folder")
                raise PipelineError(f"{path}: {kind} is in the way of this output {expected}; "
                                    "move it aside and rerun (nothing was replaced)")

    def commit(self) -> None:
        missing = [str(p) for p in self.paths if p not in self.staged]
        if missing:
            raise RuntimeError(f"outputs never written: {', '.join(missing)}")
        self._check_replaceable()
        old_folders = []
        with _signals_held():
            with _commit_lock(self.paths[0]):
                check_starters()  # the last moment: a stage whose dvc is gone must not overwrite newer outputs
                for path in self.paths:
                    try:
                        if path in self.folders and path.exists():
                            # The old folder moves aside first, so the swap itself is one rename.
                            aside = path.parent / f".{path.name}{TMP_MARK}{os.getpid()}-old"
                            _remove(aside)
                            os.replace(path, aside)
                            old_folders.append(aside)
                        os.replace(self.staged[path], path)
                    except OSError as err:
                        done = ", ".join(map(str, self.written)) or "none"
                        raise PipelineError(f"{path}: cannot be replaced ({err.strerror or err}); outputs "
                                            f"already replaced: {done}; rerun the stage") from None
                    self.written.append(path)
                for folder in {p.parent for p in self.paths}:
                    _fsync_dir(folder)
                for aside in old_folders:
                    _remove(aside)

    def discard(self) -> None:
        for path, tmp in self.staged.items():
            if path not in self.written:
                _remove(tmp)


@contextlib.contextmanager
def _signals_held():
    """Defer SIGINT and SIGTERM until the block ends, then deliver the first one.

    Python-level handlers, not a thread signal mask: the kernel hands a
    process-wide signal to any thread that does not block it (torch and OpenMP
    start several), and Python then runs its handler in the main thread anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def defer(signum, frame):
        received.append(signum)

    previous = {s: signal.signal(s, defer) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed from C, which Python cannot reinstate.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if received:
            signal.raise_signal(received[0])


def check_writable(path: Path) -> None:
    """Raise PipelineError now if `path` could not be written at the end of the stage."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = new_temp(path)
        probe.unlink()
    except OSError as err:
        raise write_error(path.parent, err) from None


@contextlib.contextmanager
def _commit_lock(anchor: Path) -> Iterator[None]:
    """Serialise the renames of concurrent runs of the same stage, so their sets never interleave.

    The lock is taken on the first output's folder itself, so no lock file is left behind.
    """
    try:
        folder = os.open(anchor.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise write_error(anchor.parent, err) from None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock
