"""Stage `download`: fetch (or copy) the dataset's four IDX files into data/raw/, verified.

With data.source `mirrors` each file comes from the official mirrors with retries and
its published md5 checked; with a folder, the files are read from there. Either way
every file's IDX structure is validated, and data/raw/manifest.json records where
each file came from with its md5 and sha256.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from stages.common.data.datasets import DATASETS, FILE_NAMES, SPLIT_FILES
from stages.common.data.fetch import download
from stages.common.data.idx import file_digests, read_split
from stages.common.errors import PipelineError
from stages.common.outputs.atomic import OutputSet, json_text, write_error
from stages.common.outputs.layout import RAW_DIR
from stages.common.outputs.progress import byte_progress
from stages.common.settings import read, resolve_source


def fetch_from_mirrors(spec, mirrors, dest_dir: Path, timeout_seconds: float, retries: int) -> dict:
    """Download every file of `spec` into `dest_dir`; return file name -> URL used.

    A file that no mirror serves ends the stage at once: the other files would only
    wait out the same dead mirrors.
    """
    used = {}
    for name in FILE_NAMES:
        with byte_progress(name) as progress:
            try:
                used[name] = download(
                    name, mirrors, dest_dir / name, spec.md5[name], timeout_seconds, retries,
                    progress=progress, log=lambda msg: print(msg, file=sys.stderr), max_bytes=spec.max_bytes(name),
                )
            except PipelineError as err:
                raise PipelineError(
                    f"{err} — check the network, or download the four files by hand and set data.source "
                    "in params.yaml to their folder"
                ) from None
    return used


def copy_from_folder(source: Path, dest_dir: Path) -> dict:
    """Copy the four files from a local folder; return file name -> source path."""
    used = {}
    for name in FILE_NAMES:
        try:
            data = (source / name).read_bytes()  # tens of MB at most: checked by check_structure first
        except PermissionError:
            raise PipelineError(f"{source / name}: not readable (permissions); fix and rerun") from None
        except OSError as err:
            raise PipelineError(f"{source / name}: cannot be read ({err.strerror or err})") from None
        try:
            (dest_dir / name).write_bytes(data)
        except OSError as err:
            raise write_error(RAW_DIR, err) from None
        used[name] = str(source / name)
    return used


def check_structure(folder: Path) -> dict:
    """Validate both splits' IDX files in `folder`; return split -> image count."""
    counts = {}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images, labels = read_split(folder / images_name, folder / labels_name)
        classes = np.unique(labels)
        if split == "train" and len(classes) < 2:
            raise PipelineError(f"{folder / labels_name}: every label is {classes[0]}; "
                                "the SVMs need at least two classes")
        counts[split] = int(len(images))
    return counts


def describe(spec, folder: Path, origins: dict, splits: dict) -> dict:
    """The manifest: where each file came from, its digests, whether it is the published file."""
    files = {}
    for name in FILE_NAMES:
        md5, sha256 = file_digests(folder / name)
        files[name] = {"origin": origins[name], "md5": md5, "sha256": sha256, "official_md5": md5 == spec.md5[name]}
    return {"dataset": spec.name, "files": files, "splits": splits}


PARAMS = ("data.dataset", "data.source", "data.mirrors", "data.timeout_seconds", "data.retries")


def main(argv: list[str]) -> None:
    params = read(PARAMS)
    spec = DATASETS[params["data.dataset"]]
    source = params["data.source"]
    if source != "mirrors":
        source = resolve_source(source, root=".")
    outputs = OutputSet([RAW_DIR])
    tmp = outputs.folder(RAW_DIR)
    if source == "mirrors":
        mirrors = params["data.mirrors"] or spec.mirrors
        origins = fetch_from_mirrors(spec, mirrors, tmp, params["data.timeout_seconds"], params["data.retries"])
        splits = check_structure(tmp)
    else:
        # Checked where they are, so an error names the user's file, not a copy.
        splits = check_structure(Path(source))
        origins = copy_from_folder(Path(source), tmp)
    manifest = describe(spec, tmp, origins, splits)
    try:
        (tmp / "manifest.json").write_text(json_text(manifest), encoding="utf-8")
    except OSError as err:
        raise write_error(RAW_DIR, err) from None
    outputs.commit()
    for name, info in manifest["files"].items():
        note = "official md5" if info["official_md5"] else "not the official file (md5 differs); structure checked"
        print(f"{name}: {info['origin']} sha256 {info['sha256'][:16]}… ({note})")
    print(f"download: {spec.name} train {manifest['splits']['train']}, test {manifest['splits']['test']} images")


if __name__ == "__main__":  # the old entry point, `python -m stages.download`
    from stages import run_as_module

    run_as_module("download")
