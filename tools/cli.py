"""Command lines of the tools: what they do not take is refused with one line, as a bad parameter is."""
from __future__ import annotations

import argparse

from stages.common.errors import PipelineError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad or stray argument raises PipelineError (one line) instead of printing usage and exiting."""

    def error(self, message: str):
        raise PipelineError(f"{self.prog}: {message}; see {self.prog} --help")


def parser_for(prog: str, description: str) -> OneLineParser:
    return OneLineParser(prog=prog, description=description)


def positive_int(option: str, high: int = 4096):
    """An argparse type: an integer from 1 to `high`, or one line naming `option`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not 1 <= value <= high:
            raise PipelineError(f"{option} is {text!r}; expected an integer from 1 to {high:,}")
        return value

    return parse


def positive_seconds(option: str, high: float = 86_400):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value <= high:
            raise PipelineError(f"{option} is {text!r}; expected a number of seconds above 0, up to {high:g}")
        return value

    return parse
