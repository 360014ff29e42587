"""Downloading from mirrors against a real HTTP server on loopback."""
from __future__ import annotations

import hashlib

import pytest

from stages.common.data.fetch import download
from stages.common.errors import PipelineError
from tests.httpserver import refused_url, serve

NAME = "t10k-labels-idx1-ubyte.gz"
BODY = bytes(range(256)) * 400  # 100 KiB
MD5 = hashlib.md5(BODY).hexdigest()


@pytest.fixture
def server():
    with serve({NAME: BODY}) as base:
        yield base


def fetch(mirrors, dest, retries=1, timeout=0.5):
    return download(NAME, mirrors, dest / NAME, MD5, timeout_seconds=timeout, retries=retries, backoff_seconds=0)


def assert_only(folder, names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.mark.parametrize("bad", ["refused", "m404", "m500", "stall", "cut", "badmd5"])
def test_bad_first_mirror_falls_through_to_a_good_one(server, tmp_path, bad):
    first = refused_url() if bad == "refused" else f"{server}/{bad}"
    used = fetch([first, f"{server}/good"], tmp_path)
    assert used == f"{server}/good/{NAME}"
    assert (tmp_path / NAME).read_bytes() == BODY
    assert_only(tmp_path, [NAME])


@pytest.mark.parametrize("bad,reason", [
    ("cut", "connection broke|truncated"),
    ("badmd5", "md5 .* != published"),
])
def test_rejected_file_leaves_nothing_and_error_names_each_url(server, tmp_path, bad, reason):
    with pytest.raises(PipelineError) as err:
        fetch([f"{server}/{bad}", f"{server}/m404"], tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"could not download {NAME}: tried ")
    assert f"{server}/{bad}/{NAME}" in message and f"{server}/m404/{NAME} (HTTP 404)" in message
    assert __import__("re").search(reason, message)
    assert_only(tmp_path, [])


def test_timeout_is_reported(server, tmp_path):
    with pytest.raises(PipelineError, match="timed out"):
        fetch([f"{server}/stall"], tmp_path, timeout=0.3)
    assert_only(tmp_path, [])


def test_transient_failures_are_retried_on_the_same_mirror(server, tmp_path):
    attempts = []
    with pytest.raises(PipelineError):
        download(NAME, [f"{server}/m500"], tmp_path / NAME, MD5, timeout_seconds=1, retries=3,
                 log=attempts.append, backoff_seconds=0)
    assert len(attempts) == 3
    attempts.clear()
    with pytest.raises(PipelineError):
        download(NAME, [f"{server}/m404"], tmp_path / NAME, MD5, timeout_seconds=1, retries=3,
                 log=attempts.append, backoff_seconds=0)
    assert len(attempts) == 1  # a 404 will not get better


def test_cut_download_then_rerun_completes(server, tmp_path):
    with pytest.raises(PipelineError):
        fetch([f"{server}/cut"], tmp_path)
    assert_only(tmp_path, [])
    fetch([f"{server}/good"], tmp_path)
    assert (tmp_path / NAME).read_bytes() == BODY
