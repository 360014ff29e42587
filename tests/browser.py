"""Rendering a `dvc plots show` page in headless Chromium and checking what it drew.

Skips (with the reason) where Debian's `chromium` is not installed:
`apt-get install chromium` brings it.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Bytes of UTF-8 read as Latin-1 (what a page without a charset shows): â, Ã, Â, and U+FFFD.
MOJIBAKE = re.compile("[\u00e2\u00c3\u00c2]|\ufffd")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not found; install it with `apt-get install chromium` to run this check")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=20000", "--run-all-compositor-stages-before-draw"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=180)


def render(page: Path, expected_charts: int, screenshot: Path | None = None) -> str:
    """Load `page`, let Vega draw, and check every chart has marks and no text is garbled.

    Returns the rendered DOM.
    """
    url = page.resolve().as_uri()
    dom = _run(["--dump-dom", url]).stdout
    assert dom, "chromium rendered nothing"
    charts = re.findall(r'<svg[^>]*class="marks"[^>]*>.*?</svg>', dom, flags=re.S)
    assert len(charts) == expected_charts, f"{len(charts)} Vega charts drawn, expected {expected_charts}"
    for chart in charts:
        marks = re.findall(r'<(?:path|circle|rect|line)[^>]*class="[^"]*"', chart)
        symbols = re.findall(r'class="mark-(?:symbol|line)[^"]*"[^>]*>(.*?)</g>', chart, flags=re.S)
        assert symbols and any(re.search(r"<path", group) for group in symbols), "a chart drew no points or lines"
        assert len(marks) > 10
    text = html.unescape(re.sub(r"<script.*?</script>", "", dom, flags=re.S))
    visible = re.sub(r"<[^>]+>", " ", text)
    garbled = MOJIBAKE.findall(visible)
    assert not garbled, f"garbled text on the page: {garbled[:5]}"
    if screenshot is not None:
        _run(["--window-size=1400,2400", f"--screenshot={screenshot}", url])
    return dom
