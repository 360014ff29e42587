"""Downloading a file from a list of mirrors: retries, a timeout, md5 verification.

A file is only ever complete under its final name: it streams to a temporary name,
is checked against its published md5, and is renamed once it matches.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from stages.common.atomic import atomic_path
from stages.common.errors import PipelineError

CHUNK_BYTES = 1 << 16
# HTTP statuses worth retrying on the same mirror; anything else moves to the next one.
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class AttemptFailed(Exception):
    """One attempt at one URL failed; `transient` says whether retrying the URL may help."""

    def __init__(self, reason: str, transient: bool):
        super().__init__(reason)
        self.transient = transient


def _stream(url: str, dest: Path, timeout_seconds: float, progress: Callable[[int, int | None], None] | None) -> str:
    """Stream `url` into `dest`; return the md5 of what arrived."""
    request = urllib.request.Request(url, headers={"User-Agent": "ae-compare/1.0"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_seconds)
    except urllib.error.HTTPError as err:
        raise AttemptFailed(f"HTTP {err.code}", transient=err.code in TRANSIENT_STATUSES) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise AttemptFailed("timed out", transient=True) from None
        raise AttemptFailed(f"{reason}", transient=True) from None
    except TimeoutError:
        raise AttemptFailed("timed out", transient=True) from None
    except OSError as err:
        raise AttemptFailed(str(err), transient=True) from None

    md5 = hashlib.md5()
    received = 0
    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    try:
        with response, open(dest, "wb") as out:
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                out.write(chunk)
                md5.update(chunk)
                received += len(chunk)
                if progress:
                    progress(received, expected)
    except TimeoutError:
        raise AttemptFailed(f"timed out after {received} bytes", transient=True) from None
    except (OSError, urllib.error.URLError) as err:
        # http.client.IncompleteRead is an OSError subclass too.
        raise AttemptFailed(f"connection broke after {received} bytes ({type(err).__name__})", transient=True) from None
    if expected is not None and received != expected:
        raise AttemptFailed(f"truncated: {received} of {expected} bytes", transient=True)
    return md5.hexdigest()


def download(
    name: str,
    mirrors: Sequence[str],
    dest: str | os.PathLike,
    md5: str | None,
    timeout_seconds: float,
    retries: int,
    progress: Callable[[int, int | None], None] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    backoff_seconds: float = 1.0,
) -> str:
    """Download file `name` from the first mirror that serves it intact; return the URL used.

    Each mirror gets up to `retries` attempts on transient failures (timeouts, broken
    connections, 5xx); a 404 or a wrong md5 moves on to the next mirror at once.
    Raises PipelineError listing every URL tried and why it failed.
    """
    dest = Path(dest)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        for attempt in range(1, retries + 1):
            try:
                with atomic_path(dest) as tmp:
                    got_md5 = _stream(url, tmp, timeout_seconds, progress)
                    if md5 is not None and got_md5 != md5:
                        raise AttemptFailed(f"md5 {got_md5} != published {md5}", transient=False)
                return url
            except AttemptFailed as err:
                log(f"{url}: attempt {attempt}/{retries} failed: {err}")
                if not err.transient or attempt == retries:
                    failures.append(f"{url} ({err})")
                    break
                time.sleep(backoff_seconds * attempt)
    raise PipelineError(f"could not download {name}: tried " + "; ".join(failures))
