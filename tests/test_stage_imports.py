"""Stages that need no torch must not import it (it costs seconds of start-up each)."""
from __future__ import annotations

import json
import subprocess
import sys

from stages import STAGES, TORCH_FREE_STAGES
from tests.conftest import ROOT

# One interpreter for all, importing stage after stage: the first that pulls torch in is named.
PROBE = """
import importlib, json, sys
seen = {}
for stage in sys.argv[1:]:
    importlib.import_module("stages." + stage)
    seen[stage] = "torch" in sys.modules
print(json.dumps(seen))
"""


def probe(stages: list) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *stages], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_stages_without_training_do_not_import_torch():
    assert probe(list(TORCH_FREE_STAGES)) == {stage: False for stage in TORCH_FREE_STAGES}


def test_the_stage_lists_name_real_stages():
    assert set(TORCH_FREE_STAGES) < set(STAGES)
    assert all((ROOT / "stages" / f"{stage}.py").is_file() for stage in STAGES)


def test_the_probe_sees_torch_where_it_is_imported():
    assert probe(["tsne", "train"]) == {"tsne": False, "train": True}
