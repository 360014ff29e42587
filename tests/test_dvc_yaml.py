"""dvc.yaml against the code: every stage lists each project module it imports and the params it reads.

Stages import only shared modules (stages/common/), never another stage script;
the `deps:` and `params:` lists are hand-kept, so this test is what keeps them true.
"""
from __future__ import annotations

import importlib
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
