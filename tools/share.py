"""`make share`: push to the default DVC remote everything another machine needs to skip work.

    python -m tools.share [--remote NAME]

`dvc push` sends the outputs of the workspace; `dvc push --run-cache` adds the
run-cache entries but, since DVC 3, not the outputs those entries point to (among
them the git-tracked metrics and plots, which DVC keeps in its cache for the
run-cache). This pushes all three through DVC's own remote API, so that on another
clone `dvc pull --run-cache` then `dvc repro --pull` restores every stage this
clone has run, in any configuration.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from stages.common.errors import PipelineError, run_stage
from tools.cli import parser_for


def run_cache_entries(root: Path) -> list[tuple[str, str]]:
    """(stage key, run hash) of every entry under .dvc/cache/runs/<xx>/<key>/<run>."""
    runs = root / ".dvc" / "cache" / "runs"
    return [(entry.parent.name, entry.name) for entry in sorted(runs.glob("*/*/*")) if entry.is_file()]


def main(argv: list[str]) -> None:
    parser = parser_for("python -m tools.share", __doc__.splitlines()[0])
    parser.add_argument("--remote", help="DVC remote name (default: the default remote)")
    args = parser.parse_args(argv)
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(".")
        pushed = repo.push(remote=args.remote, run_cache=True)
        entries = run_cache_entries(Path(repo.root_dir))
        used = defaultdict(set)
        for odb, objs in repo.stage_cache.get_used_objs(entries).items():
            used[odb] |= objs
        outputs = 0
        for odb, objs in used.items():
            outputs += len(repo.cloud.push(objs, remote=args.remote, odb=odb).transferred)
    except DvcException as err:
        raise PipelineError(f"dvc: {' '.join(str(err).split())}") from None
    print(f"share: {pushed} workspace files and run entries, {len(entries)} runs known, "
          f"{outputs} more run outputs pushed")


if __name__ == "__main__":
    run_stage(main, "share", sys.argv[1:])
