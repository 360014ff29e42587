"""Downloading a file from a list of mirrors: retries, timeouts, an overall deadline, a size cap, md5.

A file is only ever complete under its final name: it streams to a temporary name,
is checked against its published md5, and is renamed once it matches. A hostile or
broken mirror cannot keep the stage busy for ever (each attempt has a deadline of
DEADLINE_FACTOR x the socket timeout) nor fill the disk (a byte cap per file).
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from stages.common.errors import PipelineError
from stages.common.outputs.atomic import atomic_path

CHUNK_BYTES = 1 << 16
# HTTP statuses worth retrying on the same mirror; anything else moves to the next one.
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# An attempt may take this many socket timeouts in all, however the bytes trickle in.
DEADLINE_FACTOR = 10
MAX_REDIRECTS = 5


class AttemptFailed(Exception):
    """One attempt at one URL failed; `transient` says whether retrying the URL may help."""

    def __init__(self, reason: str, transient: bool):
        super().__init__(reason)
        self.transient = transient


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow at most MAX_REDIRECTS redirects, to http(s) only, each refusal saying why."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme
        if scheme not in ("http", "https"):
            raise AttemptFailed(f"HTTP {code} redirect to {newurl!r} refused: only http(s) is followed",
                                transient=False)
        return super().redirect_request(req, fp, code, msg, headers, newurl)

    def http_error_302(self, req, fp, code, msg, headers):
        visited = getattr(req, "redirect_dict", {})
        if len(visited) >= self.max_redirections or sum(visited.values()) >= self.max_redirections:
            raise AttemptFailed(f"HTTP {code}: more than {self.max_redirections} redirects (a redirect loop?)",
                                transient=False)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_Redirects)


def _http_error(err: urllib.error.HTTPError) -> AttemptFailed:
    reason = f"HTTP {err.code}"
    if 300 <= err.code < 400:
        first = str(err.msg or "").strip().splitlines()
        reason += f" redirect not followed ({first[0] if first else 'no Location header'})"
    return AttemptFailed(reason, transient=err.code in TRANSIENT_STATUSES)


def _stream(url: str, dest: Path, timeout_seconds: float, max_bytes: int | None,
            progress: Callable[[int, int | None], None] | None) -> str:
    """Stream `url` into `dest`; return the md5 of what arrived."""
    started = time.monotonic()
    deadline = started + DEADLINE_FACTOR * timeout_seconds
    request = urllib.request.Request(url, headers={"User-Agent": "ae-compare/1.0"})
    try:
        response = _OPENER.open(request, timeout=timeout_seconds)
    except AttemptFailed:
        raise
    except urllib.error.HTTPError as err:
        raise _http_error(err) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise AttemptFailed("timed out", transient=True) from None
        raise AttemptFailed(f"{reason}", transient=True) from None
    except TimeoutError:
        raise AttemptFailed("timed out", transient=True) from None
    except (OSError, ValueError) as err:
        raise AttemptFailed(f"{type(err).__name__}: {err}", transient=True) from None

    md5 = hashlib.md5()
    received = 0
    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    if max_bytes is not None and expected is not None and expected > max_bytes:
        response.close()
        raise AttemptFailed(f"announces {expected:,} bytes, more than the {max_bytes:,} this file can be",
                            transient=False)
    try:
        with response, open(dest, "wb") as out:
            while True:
                # read1 returns what one receive brings, so a trickle still meets the deadline check.
                chunk = response.read1(CHUNK_BYTES)
                if not chunk:
                    break
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise AttemptFailed(f"sent more than the {max_bytes:,} bytes this file can be", transient=False)
                out.write(chunk)
                md5.update(chunk)
                if progress:
                    progress(received, expected)
                if time.monotonic() > deadline:
                    raise AttemptFailed(
                        f"too slow: {received:,} bytes in {time.monotonic() - started:.0f} s, past the "
                        f"{DEADLINE_FACTOR} x data.timeout_seconds deadline", transient=True)
    except AttemptFailed:
        raise
    except TimeoutError:
        raise AttemptFailed(f"timed out after {received} bytes", transient=True) from None
    except (OSError, urllib.error.URLError, ValueError) as err:
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
    max_bytes: int | None = None,
) -> str:
    """Download file `name` from the first mirror that serves it intact; return the URL used.

    Each mirror gets up to `retries` attempts on transient failures (timeouts, broken
    connections, 5xx, too slow); a 404, a refused redirect, an oversized body or a
    wrong md5 moves on to the next mirror at once. Raises PipelineError listing every
    URL tried and why it failed.
    """
    dest = Path(dest)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        for attempt in range(1, retries + 1):
            try:
                with atomic_path(dest) as tmp:
                    got_md5 = _stream(url, tmp, timeout_seconds, max_bytes, progress)
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
