"""dvc.yaml against the code: every stage lists each project module it imports and the params it reads.

Stages import only shared modules (stages/common/), never another stage script;
the `deps:` and `params:` lists are hand-kept, so this test is what keeps them true.
"""
from __future__ import annotations

import importlib
import json
import re

import pytest
import yaml

from tests.conftest import ROOT
from tests.imports import project_imports

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def stage_name(definition: dict) -> str:
    return re.fullmatch(r"python -m stages (\w+)(?: \S+)?", definition["cmd"]).group(1)


def stage_params(definition: dict) -> tuple:
    """The stage module's PARAMS; a module behind several DVC stages keys them by its argument."""
    declared = importlib.import_module(f"stages.{stage_name(definition)}").PARAMS
    return declared[definition["cmd"].split()[-1]] if isinstance(declared, dict) else declared


def stage_script(definition: dict) -> str:
    return f"stages/{stage_name(definition)}.py"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_params_are_exactly_what_the_stage_reads(name):
    definition = STAGES[name]
    listed = [key.replace("${item.arch}", "{arch}") for key in definition.get("params", [])]
    assert listed == list(stage_params(definition))


def test_every_stage_module_is_in_the_pipeline():
    from stages import STAGES as MODULES

    assert sorted(MODULES) == sorted({stage_name(d) for d in STAGES.values()})


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_list_every_project_module_the_stage_imports(name):
    definition = STAGES[name]
    code_deps = {dep for dep in definition["deps"] if isinstance(dep, str) and dep.endswith(".py")}
    imported = project_imports(stage_script(definition))
    assert imported - code_deps == set(), f"{name}: deps miss {sorted(imported - code_deps)}"
    assert code_deps - imported == set(), f"{name}: deps list modules it never imports: {sorted(code_deps - imported)}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_scripts_import_no_other_stage(name):
    script = stage_script(STAGES[name])
    others = {p for p in project_imports(script) if not p.startswith("stages/common/") and p != script}
    assert not others, f"{script} imports {sorted(others)}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    # svm imports classify inside main(); a checker that missed it would pass a stale list.
    assert "stages/common/evaluation/classify.py" in project_imports("stages/svm.py")


def test_no_plain_output_disables_the_run_cache():
    for name, definition in STAGES.items():
        for out in definition.get("outs", []):
            if isinstance(out, dict):
                (path, options), = out.items()
                assert options.get("cache", True), f"{name}: {path} is cache: false, which turns off the run-cache"


# Runs one stage in a fresh interpreter with `read` wrapped, so that the settings it hands
# back record which keys the stage reads; prints them as the last line.
TRACED = """
import json, sys
import stages.common.settings as settings

read, used = settings.read, set()

class Recorded(dict):
    def __getitem__(self, key):
        used.add(key)
        return super().__getitem__(key)

settings.read = lambda *args, **kwargs: Recorded(read(*args, **kwargs))
import importlib
module = importlib.import_module("stages." + sys.argv[1])
module.main(sys.argv[2:])
print("USED " + json.dumps(sorted(used)))
"""


# Keys a stage reads only in a configuration this test cannot run: the download stage's mirror
# settings matter only when data.source is 'mirrors' (no network here).
READ_ELSEWHERE = {"download": {"data.mirrors", "data.timeout_seconds", "data.retries"}}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_declared_param_is_read_when_the_stage_runs(prepared_project, name):
    """The other half of test_params_are_exactly_what_the_stage_reads: a key listed but never read would make
    DVC rerun the stage (or miss the run-cache) for a change that cannot touch its result."""
    import subprocess
    import sys

    from tests.stagerun import env

    definition = STAGES[name]
    args = definition["cmd"].split()[4:]
    arch = "stacked"
    args = [arch if arg == "${item.arch}" else arg for arg in args]
    proc = subprocess.run([sys.executable, "-c", TRACED, stage_name(definition), *args], cwd=prepared_project,
                          env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    used = set(json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("USED ")))
    used |= READ_ELSEWHERE.get(name, set())
    assert sorted(used) == sorted(key.format(arch=arch) for key in stage_params(definition))
