"""Downloading a file from a list of mirrors: retries, timeouts, an overall deadline, a size cap, md5.

A file is only ever complete under its final name: it streams to a temporary name,
is checked against its published md5, and is renamed once it matches. A hostile or
broken mirror cannot keep the stage busy for ever nor fill the disk: each attempt has
one deadline of DEADLINE_FACTOR x the socket timeout covering connecting, the status
line, the headers and the body (a watchdog shuts the socket down when it passes, so a
server dripping its headers a byte at a time is cut off too), and a byte cap per file.
Anything a mirror answers that is not HTTP as expected is a failed attempt.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
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


class _Deadline:
    """One attempt's deadline: when it passes, every socket the attempt opened is shut down."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.monotonic()
        self.expired = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def register(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def passed(self) -> bool:
        return self.expired or time.monotonic() - self.started > self.seconds


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _DeadlineConnection:
    """Mixin for http.client connections: register the socket with the attempt's deadline once connected."""

    deadline: _Deadline

    def connect(self):
        super().connect()
        self.deadline.register(self.sock)


def _opener(deadline: _Deadline):
    http_class = type("Connection", (_DeadlineConnection, http.client.HTTPConnection), {"deadline": deadline})
    https_class = type("Connection", (_DeadlineConnection, http.client.HTTPSConnection), {"deadline": deadline})

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(http_class, req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(https_class, req, context=self._context)

    return urllib.request.build_opener(_Redirects, HTTP, HTTPS)


def _http_error(err: urllib.error.HTTPError) -> AttemptFailed:
    reason = f"HTTP {err.code}"
    if 300 <= err.code < 400:
        first = str(err.msg or "").strip().splitlines()
        reason += f" redirect not followed ({first[0] if first else 'no Location header'})"
    return AttemptFailed(reason, transient=err.code in TRANSIENT_STATUSES)


def _stream(url: str, dest: Path, timeout_seconds: float, max_bytes: int | None,
            progress: Callable[[int, int | None], None] | None) -> str:
    """Stream `url` into `dest`; return the md5 of what arrived."""
    deadline = _Deadline(DEADLINE_FACTOR * timeout_seconds)
    try:
        return _stream_before(url, dest, timeout_seconds, max_bytes, progress, deadline)
    finally:
        deadline.cancel()


def _too_slow(deadline: _Deadline, received: int) -> AttemptFailed:
    return AttemptFailed(f"too slow: {received:,} bytes in {time.monotonic() - deadline.started:.0f} s, past the "
                         f"{DEADLINE_FACTOR} x data.timeout_seconds deadline", transient=True)


def _stream_before(url: str, dest: Path, timeout_seconds: float, max_bytes: int | None,
                   progress: Callable[[int, int | None], None] | None, deadline: _Deadline) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": "ae-compare/1.0"})
    try:
        response = _opener(deadline).open(request, timeout=timeout_seconds)
    except AttemptFailed:
        raise
    except urllib.error.HTTPError as err:
        raise _http_error(err) from None
    except Exception as err:  # noqa: BLE001 - whatever a mirror sends, this attempt failed
        if deadline.passed():
            raise _too_slow(deadline, 0) from None
        reason = getattr(err, "reason", err)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise AttemptFailed("timed out", transient=True) from None
        if isinstance(err, (http.client.HTTPException, ValueError)):
            # Not HTTP as expected (a bad status line, too many headers, a malformed length): try the next mirror.
            detail = " ".join(str(err).split())[:100]
            raise AttemptFailed(f"not a valid HTTP answer ({type(err).__name__}: {detail})", transient=False) from None
        raise AttemptFailed(" ".join(f"{reason}".split())[:200], transient=True) from None

    md5 = hashlib.md5()
    received = 0
    length = (response.headers.get("Content-Length") or "").strip()
    expected = int(length) if length.isascii() and length.isdigit() else None
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
                if deadline.passed():
                    raise _too_slow(deadline, received)
    except AttemptFailed:
        raise
    except TimeoutError:
        raise AttemptFailed(f"timed out after {received} bytes", transient=True) from None
    except (OSError, urllib.error.URLError, ValueError, http.client.HTTPException) as err:
        if deadline.passed():
            raise _too_slow(deadline, received) from None
        raise AttemptFailed(f"connection broke after {received} bytes ({type(err).__name__})", transient=True) from None
    if deadline.passed():  # the watchdog's shutdown ends a read as an end of file
        raise _too_slow(deadline, received)
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
