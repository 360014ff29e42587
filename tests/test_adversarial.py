"""An adversarial pass: hostile parameters, files, mirrors, signals and file-system faults.

Every case must end in one clear line (or succeed), never a traceback, never a
process above 1.5 GB, never an output set that mixes two runs. The cases, by kind:
params (P), files (F), mirrors (M), signals (S), file system (D), training (T).
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from stages.common.data.fetch import download
from stages.common.data.idx import read_images, read_labels
from stages.common.errors import PipelineError
from stages.common.models.catalogue import CATALOGUE
from stages.common.outputs.atomic import TMP_MARK, OutputSet, json_text, npz_bytes, remove_stale_temps
from stages.common.settings import SECTIONS, read, select
from tests.conftest import ROOT, write_idx_folder
from tests.httpserver import serve
from tests.idxfiles import write_idx_gz
from tests.stagerun import env, error_line, make_project, peak_of, permissions_apply, set_params, stage

# ----------------------------------------------------------------------------- P: params

COMMITTED = yaml.safe_load((ROOT / "params.yaml").read_text())
EVERY_KEY = ["seed", "archs", *SECTIONS, *(f"models.{arch}" for arch in CATALOGUE)]


def with_value(key: str, value) -> dict:
    params = json.loads(json.dumps(COMMITTED))
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return params


BAD_PARAMS = [  # P1-P40
    ("seed", -1, "from 0 to"), ("seed", 2**32, "from 0 to"), ("seed", 2**70, "from 0 to"), ("seed", 4.2, "from 0 to"),
    ("seed", "42", "from 0 to"),
    ("train.latent_dim", 785, "compresses nothing"), ("train.latent_dim", 0, "from 1 to 784"),
    ("train.batch_size", 10**6, "several GB"), ("latents.batch_size", 10**6, "several GB"),
    ("train.lr", float("inf"), "positive number"), ("train.lr", float("nan"), "positive number"),
    ("train.lr", 1e9, "positive number up to"), ("train.epochs", 10**9, "from 1 to"),
    ("train.threads", 0, "torch threads per stage"), ("train.threads", None, "from 1 to"),
    ("data.timeout_seconds", 1e10, "up to 3600"), ("data.timeout_seconds", 0, "positive number"),
    ("data.retries", 0, "attempts per mirror"), ("data.retries", 10**6, "attempts per mirror"),
    ("data.mirrors", ["not a url"], "http(s) base URLs"), ("data.mirrors", ["ftp://host/x/"], "http(s) base URLs"),
    ("data.mirrors", ["http://"], "http(s) base URLs"), ("data.mirrors", "http://host/", "http(s) base URLs"),
    ("data.mirrors", ["http://host:99999/"], "http(s) base URLs"), ("data.mirrors", [], "http(s) base URLs"),
    ("svm.gamma", 0, "'scale', 'auto' or a positive number"), ("svm.gamma", -1, "'scale', 'auto'"),
    ("svm.gamma", float("inf"), "'scale', 'auto'"), ("svm.gamma", "Scale", "'scale', 'auto'"),
    ("svm.C", float("inf"), "positive number"), ("svm.threads", -1, "threads of the SVM"),
    ("baselines.train_limit", 5, "ten images per class"), ("baselines.train_limit", 15, "ten images per class"),
    ("tsne.max_iter", 100, "minimum is 250"), ("archs", "conv", "non-empty list"),
    ("archs", ["conv", "conv"], "distinct"), ("archs", [["conv"]], "architecture ids"),
    ("models.vae.beta", 0, "positive number"), ("models.vae.reconstruction", "l1", "one of bce, mse"),
    ("models.denoising.noise", "salt", "one of gaussian, masking"),
    ("models.denoising.mask_fraction", 1.0, "between 0 and 1"), ("test_noise.noise_std", -1, "positive number"),
    ("sweep.latent_dims", [], "distinct latent sizes"), ("sweep.latent_dims", [2, 2], "distinct latent sizes"),
    ("sweep.jobs", 0, "cells at a time"), ("sweep.threads", 0, "torch threads of every cell"),
    ("statistics.confidence", 1.0, "below 1"), ("statistics.alpha", 0, "above 0"),
]


@pytest.mark.parametrize("key,value,allowed", BAD_PARAMS)
def test_bad_parameter_is_one_line_naming_the_key(key, value, allowed):
    with pytest.raises(PipelineError) as err:
        select(with_value(key, value), EVERY_KEY, catalogue=CATALOGUE)
    message = str(err.value)
    assert "\n" not in message and key in message and allowed in message, message


PARAMS_FILES = [  # P41-P50: text of params.yaml -> what reading seed and train.lr says (None: reads fine)
    ("train:\n  lr: 1e-3\n", None),
    ("train:\n  lr: 5E-4\n", None),
    ("seed: 010\n", None),  # YAML 1.2, as DVC reads it: 10
    ("seed: 0x2A\n", None),  # hex: both YAML versions read 42
    ("train: [epochs: 5\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping at the top level"),
    ("train:\n\tepochs: 5\n", "not valid YAML"),
    ("train: 5\n", "train is 5; expected a mapping"),
    ("gpu: true\n", "unknown key 'gpu'"),
    ("", None),
]


@pytest.mark.parametrize("text,problem", PARAMS_FILES)
def test_params_file_text(tmp_path, text, problem):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    keys = ["train.lr"] if "train" in text else ["seed"] if "seed" in text else []
    if problem is None:
        params = read(keys, path)
        if "lr" in text:
            assert params["train.lr"] == pytest.approx(float(text.split("lr: ")[1]))
        return
    with pytest.raises(PipelineError, match=problem) as err:
        read(keys, path)
    assert "\n" not in str(err.value)


# What DVC's own parser makes of each text, and what the stages then do with it: the same values.
AGREE_WITH_DVC = [
    "seed: 1:30\n", "seed: 010\n", "seed: 0x2A\n", "train:\n  lr: 1e-3\n", "svm:\n  scale: yes\n",
    "baselines:\n  enabled: off\n", "seed: 42\nseed: 7\n", "train: {lr: .inf}\n", "seed: !!python/name:os.system\n",
    "a: &a [1, 2]\nb: [*a, *a]\n", "seed: ~\n", "seed: 4_2\n",
]


@pytest.mark.parametrize("text", AGREE_WITH_DVC)
def test_the_stages_read_params_as_dvc_does(tmp_path, text):  # P52-P63
    from dvc.utils.serialize import parse_yaml as dvc_parse

    from stages.common.settings import parse_yaml

    try:
        expected = dvc_parse(text, "params.yaml")
    except Exception:  # noqa: BLE001 - DVC refuses the file: so must the stage
        with pytest.raises(PipelineError) as err:
            parse_yaml(text)
        assert "\n" not in str(err.value)
        return
    assert parse_yaml(text) == (expected or None)


def test_a_duplicate_key_is_refused_naming_the_line(tmp_path):  # P64
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 1\n  epochs: 7\n")
    with pytest.raises(PipelineError, match=r"params.yaml, line 3: a key appears twice"):
        read(["train.epochs"], tmp_path / "params.yaml")


def test_billion_laughs_is_refused_quickly_and_small(tmp_path):  # P65
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (tmp_path / "params.yaml").write_text("\n".join(levels) + "\nseed: 1\n")
    with pytest.raises(PipelineError, match="aliases expand to more than") as err:
        read(["seed"], tmp_path / "params.yaml")  # counted, never expanded: 10^9 values would take minutes
    assert len(str(err.value)) < 200


def test_a_params_file_that_is_a_fifo_a_folder_or_huge_is_refused_at_once(tmp_path):  # P66-P68
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(PipelineError, match="not a regular file"):
        read(["seed"], fifo)
    with pytest.raises(PipelineError, match="not a regular file"):
        read(["seed"], tmp_path)
    (tmp_path / "big.yaml").write_text("# padding\n" * 200_000)
    with pytest.raises(PipelineError, match="bytes; expected a settings file of at most"):
        read(["seed"], tmp_path / "big.yaml")


def test_deep_nesting_is_one_short_line(tmp_path):  # P69
    (tmp_path / "params.yaml").write_text("seed: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(PipelineError) as err:
        read(["seed"], tmp_path / "params.yaml")
    assert len(str(err.value)) < 300 and "\n" not in str(err.value)


def test_params_file_that_is_not_utf8(tmp_path):  # P51
    (tmp_path / "params.yaml").write_bytes(b"seed: 4\xff\xfe2\n")
    with pytest.raises(PipelineError, match="UTF-8"):
        read(["seed"], tmp_path / "params.yaml")


# ----------------------------------------------------------------------------- F: files


def gzip_bomb(path: Path, declared: int, actual_bytes: int, magic: int = 0x803) -> None:
    header = struct.pack(">IIII", magic, declared, 28, 28) if magic == 0x803 else struct.pack(">II", magic, declared)
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=1) as f:
        f.write(header)
        zeros = bytes(1 << 20)
        for _ in range(actual_bytes >> 20):
            f.write(zeros)


def peak_child_mb(code: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run `code` in a fresh interpreter; its own peak RSS (MB, printed by itself at exit).

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large
    pytest process would report the parent's size.
    """
    code += ("\nimport re\n"
             "print('PEAK_KB', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env())
    peak_kb = int(proc.stdout.rsplit("PEAK_KB", 1)[1].split()[0])
    return proc, peak_kb / 1024


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):  # F1
    bomb = tmp_path / "bomb.gz"
    gzip_bomb(bomb, declared=10, actual_bytes=512 << 20)
    assert bomb.stat().st_size < 3 << 20
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
            "from stages.common.data.idx import read_images\nfrom stages.common.errors import PipelineError\n"
            f"try:\n    read_images({str(bomb)!r})\nexcept PipelineError as e:\n    print(e)\n")
    proc, peak_mb = peak_child_mb(code)
    assert "holds more data than the header promises" in proc.stdout, proc.stderr
    assert peak_mb < 400  # the 512 MB never inflated


@pytest.mark.parametrize("declared", [250_001, 2**32 - 1])  # F2, F3
def test_header_declaring_too_many_images_is_refused_before_reading(tmp_path, declared):
    path = tmp_path / "i.gz"
    gzip_bomb(path, declared=declared, actual_bytes=1 << 20)
    with pytest.raises(PipelineError, match="at most 250,000 are read"):
        read_images(path)


def test_labels_bomb(tmp_path):  # F4
    path = tmp_path / "l.gz"
    gzip_bomb(path, declared=10, actual_bytes=64 << 20, magic=0x801)
    with pytest.raises(PipelineError, match="more data than the header promises"):
        read_labels(path)


def test_trailing_garbage_after_the_gzip_stream(tmp_path):  # F5
    path = tmp_path / "i.gz"
    write_idx_gz(path, np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes() + b"garbage that is not gzip")
    with pytest.raises(PipelineError, match="corrupt gzip data|holds more data"):
        read_images(path)


def test_corrupt_deflate_data(tmp_path):  # F6
    path = tmp_path / "i.gz"
    write_idx_gz(path, np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8))
    raw = bytearray(path.read_bytes())
    raw[200:260] = bytes(60)
    path.write_bytes(bytes(raw))
    with pytest.raises(PipelineError, match="corrupt gzip data|truncated|CRC"):
        read_images(path)


def test_single_class_training_labels_are_refused_by_the_download_stage(tmp_path):  # F7
    source = write_idx_folder(tmp_path / "src")
    write_idx_gz(source / "train-labels-idx1-ubyte.gz", np.full(300, 3, np.uint8))
    project = make_project(tmp_path / "p", {"data": {"source": str(source)}})
    line = error_line(stage("download", project))
    assert "every label is 3" in line and "two classes" in line


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE_BETWEEN_STAGES = [  # F8-F16: (file, damage, stage run, what the line must say)
    ("data/prepared/train.npz", "truncate", ("train", "stacked"), "rerun its stage: dvc repro -f prepare"),
    ("data/prepared/test.npz", "garbage", ("latents", "stacked"), "rerun its stage: dvc repro -f prepare"),
    ("data/prepared/train.npz", "delete", ("baselines", "pca"), "missing; rerun its stage: dvc repro -f prepare"),
    ("data/models/stacked.pt", "truncate", ("latents", "stacked"), "dvc repro -f train@stacked"),
    ("data/models/stacked.pt", "other_dim", ("latents", "stacked"),
     "trained as stacked with latent_dim 16, but params.yaml asks for stacked with latent_dim 8"),
    ("data/latents/stacked.npz", "truncate", ("svm", "stacked"), "dvc repro -f latents@stacked"),
    ("data/latents/stacked.npz", "delete", ("tsne", "stacked"), "missing; rerun its stage"),
    ("metrics/svm_stacked.json", "truncate", ("report",),
     "not valid JSON (JSONDecodeError); rerun its stage: dvc repro -f svm@stacked"),
    ("metrics/run/tsne_stacked.json", "delete", ("report",), "missing; rerun its stage: dvc repro -f tsne@stacked"),
]


@pytest.mark.parametrize("relative,damage,command,expected", DAMAGE_BETWEEN_STAGES)
def test_file_damaged_between_stages_names_it_and_the_stage_to_rerun(prepared_project, relative, damage, command,
                                                                     expected, tmp_path):
    path = prepared_project / relative
    backup = tmp_path / "backup"
    backup.write_bytes(path.read_bytes())
    try:
        if damage == "truncate":
            truncate(path)
        elif damage == "garbage":
            path.write_bytes(b"PK\x03\x04 not really a zip")
        elif damage == "delete":
            path.unlink()
        elif damage == "other_dim":
            set_params(prepared_project, {"train": {"latent_dim": 16}})
            stage("train", prepared_project, "stacked", check=True)
            set_params(prepared_project, {"train": {"latent_dim": 8}})
        line = error_line(stage(command[0], prepared_project, *command[1:]))
        assert relative in line and expected in line, line
    finally:
        path.write_bytes(backup.read_bytes())


# ----------------------------------------------------------------------------- M: mirrors

NAME = "t10k-labels-idx1-ubyte.gz"
BODY = bytes(range(256)) * 40


@pytest.fixture(scope="module")
def server():
    with serve({NAME: BODY}) as base:
        yield base


def fetch(base: str, mode: str, tmp_path: Path, timeout: float = 1.0, max_bytes: int | None = 50_000):
    return download(NAME, [f"{base}/{mode}"], tmp_path / NAME, None, timeout_seconds=timeout, retries=1,
                    backoff_seconds=0, max_bytes=max_bytes)


@pytest.mark.parametrize("mode", ["drip", "headdrip"])  # M1, M9: the body, or the status line and headers
def test_a_dripping_mirror_is_cut_off_at_the_deadline(server, tmp_path, mode):
    with pytest.raises(PipelineError, match="too slow") as err:
        fetch(server, mode, tmp_path, timeout=0.3)
    # The deadline, not the dripping server, ended it (the server would drip for minutes).
    assert "past the 10 x data.timeout_seconds deadline" in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / NAME).exists()


@pytest.mark.parametrize("mode", ["nothttp", "manyheaders", "badlength", "badchunk"])  # M10-M12
def test_an_answer_that_is_not_http_moves_on_to_the_next_mirror(server, tmp_path, mode):
    md5 = hashlib.md5(BODY).hexdigest()
    url = download(NAME, [f"{server}/{mode}", f"{server}/ok"], tmp_path / NAME, md5, timeout_seconds=1.0,
                   retries=3, backoff_seconds=0, max_bytes=50_000)
    assert url == f"{server}/ok/{NAME}" and (tmp_path / NAME).read_bytes() == BODY
    with pytest.raises(PipelineError, match=f"{mode}/{NAME} \\(") as err:
        download(NAME, [f"{server}/{mode}"], tmp_path / "again", md5, timeout_seconds=1.0, retries=1,
                 backoff_seconds=0, max_bytes=50_000)
    assert "\n" not in str(err.value) and "unexpected" not in str(err.value)


def test_the_default_worst_case_of_a_dead_mirror_is_bounded():  # M13
    from stages.common.data.datasets import DATASETS
    from stages.common.data.fetch import DEADLINE_FACTOR
    from stages.common.settings import load_yaml

    data = load_yaml(ROOT / "params.yaml")["data"]
    attempts = len(DATASETS["mnist"].mirrors) * data["retries"]
    backoff = len(DATASETS["mnist"].mirrors) * sum(range(1, data["retries"]))
    worst = attempts * DEADLINE_FACTOR * data["timeout_seconds"] + backoff
    assert worst == 1806  # the figure docs/guarantees.md gives: about 30 minutes, then the stage ends


def test_a_body_without_length_is_capped(server, tmp_path):  # M2
    with pytest.raises(PipelineError, match="sent more than the 50,000 bytes"):
        fetch(server, "nolength", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_announced_huge_body_is_refused_at_once(server, tmp_path):  # M3
    with pytest.raises(PipelineError, match="announces 1,000,000,000,000 bytes"):
        fetch(server, "huge", tmp_path)


@pytest.mark.parametrize("mode,reason", [  # M4-M6
    ("loop", "redirect.*(infinite loop|more than 5 redirects)"),
    ("tofile", "[Rr]edirect.*'file:///etc/passwd'.*(refused|not allowed)"),
    ("toftp", "[Rr]edirect.*'ftp://127.0.0.1/x'.*(refused|not allowed)"),
])
def test_every_redirect_failure_names_its_cause(server, tmp_path, mode, reason):
    with pytest.raises(PipelineError, match=reason):
        fetch(server, mode, tmp_path)


def test_a_good_body_within_the_cap_downloads(server, tmp_path):  # M7
    fetch(server, "good", tmp_path, max_bytes=len(BODY))
    assert (tmp_path / NAME).read_bytes() == BODY


def test_an_unreachable_mirror_host_is_one_line(tmp_path):  # M8
    with pytest.raises(PipelineError, match="could not download") as err:
        download(NAME, ["http://host.invalid/"], tmp_path / NAME, None, timeout_seconds=2, retries=1,
                 backoff_seconds=0)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- S: signals


def start_stage(project: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=project, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def loading_torch(pid: int) -> bool:
    """Whether the process has begun mapping torch's libraries (it is inside `import torch`) and lives."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # S1, S2
def test_interrupt_during_start_up_is_one_line(prepared_project, signum):
    proc = start_stage(prepared_project, "stages", "train", "stacked")
    while proc.poll() is None and not loading_torch(proc.pid):
        pass  # the event, not a guess at how long start-up takes on this machine
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: ")


def test_interrupt_during_training_leaves_every_previous_output(prepared_project, tmp_path):  # S3
    set_params(prepared_project, {"train": {"epochs": 200}})
    outputs = [prepared_project / p for p in ("data/models/stacked.pt", "metrics/train_stacked.json",
                                              "plots/loss/stacked.csv", "plots/reconstructions/stacked.png")]
    before = [p.read_bytes() for p in outputs]
    try:
        proc = start_stage(prepared_project, "stages", "train", "stacked")
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline and "epoch 1/" not in line:
            line = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        set_params(prepared_project, {"train": {"epochs": 1}})
    assert proc.returncode == 130
    assert "no output was written, earlier outputs are unchanged" in stderr and "Traceback" not in stderr
    assert [p.read_bytes() for p in outputs] == before
    leftovers = [p for p in prepared_project.rglob(f"*{TMP_MARK}*")]
    assert not leftovers


# A parent that starts a stage and never passes a signal on, as `dvc repro` does when SIGTERM ends it.
SILENT_PARENT = "import subprocess, sys; subprocess.run(sys.argv[1:])"


@pytest.mark.parametrize("through_shell", [False, True], ids=["stage under its parent", "through a shell"])
def test_a_stage_whose_starter_is_gone_stops_without_writing(prepared_project, tmp_path, through_shell):  # #43
    set_params(prepared_project, {"train": {"epochs": 200}})
    outputs = [prepared_project / p for p in ("data/models/stacked.pt", "metrics/train_stacked.json",
                                              "plots/loss/stacked.csv", "plots/reconstructions/stacked.png")]
    before = [p.read_bytes() for p in outputs]
    command = [sys.executable, "-m", "stages", "train", "stacked"]
    if through_shell:  # DVC runs a stage's cmd through $SHELL -c; "; true" keeps the shell from exec'ing it
        command = ["/bin/sh", "-c", " ".join(command) + "; true"]
    log = tmp_path / "stage.log"
    try:
        with open(log, "wb") as out:  # DVC_STAGE: what DVC sets for every command it runs
            parent = subprocess.Popen([sys.executable, "-c", SILENT_PARENT, *command], cwd=prepared_project,
                                      env={**env(), "DVC_STAGE": "train@stacked"}, stdout=out,
                                      stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline and "epoch 1/" not in log.read_text(errors="replace"):
            pass  # the event: training has begun
        family = psutil.Process(parent.pid).children(recursive=True)
        parent.kill()  # gone without a word to its children
        parent.wait()
        _, alive = psutil.wait_procs(family, timeout=60)
    finally:
        set_params(prepared_project, {"train": {"epochs": 1}})
    assert alive == [], "the stage outlived its starter"
    text = log.read_text(errors="replace")
    assert "is gone" in text and "nothing was written" in text and "Traceback" not in text, text[-2000:]
    assert [p.read_bytes() for p in outputs] == before
    assert not list(prepared_project.rglob(f"*{TMP_MARK}*"))


def test_a_stage_run_by_hand_may_outlive_its_terminal(prepared_project, tmp_path):  # nohup ... &
    project = tmp_path / "p"
    shutil.copytree(prepared_project, project)
    set_params(project, {"train": {"epochs": 3}})
    log = tmp_path / "stage.log"
    with open(log, "wb") as out:
        parent = subprocess.Popen([sys.executable, "-c", SILENT_PARENT, sys.executable, "-m", "stages", "train",
                                   "stacked"], cwd=project, env=env(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and "epoch 1/" not in log.read_text(errors="replace"):
        pass
    (stage_process,) = psutil.Process(parent.pid).children()
    parent.kill()
    parent.wait()
    stage_process.wait(timeout=300)  # not our child: psutil gives no exit status, the log says how it ended
    text = log.read_text()
    assert "epoch 3/3" in text and "train stacked: test_mse" in text and "error" not in text, text[-1000:]


def test_a_commit_after_the_starter_is_gone_writes_nothing(tmp_path, monkeypatch):  # #43: the last moment
    from stages.common import errors

    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    outputs = OutputSet(paths)
    for path in paths:
        outputs.text(path, "new")
    monkeypatch.setattr(errors, "_starters", [(2**22 + 1, "0")])  # a process that does not exist
    with pytest.raises(PipelineError, match="is gone"):
        outputs.commit()
    assert not any(p.exists() for p in paths)


@pytest.mark.parametrize("limit", [2_000_000_000, 3_000_000_000, 3_300_000_000])
def test_a_memory_limit_while_importing_is_one_line(prepared_project, limit):  # #43
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "stages", "train", "stacked"], cwd=prepared_project, env=env(),
                          capture_output=True, text=True, preexec_fn=limited, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: train@stacked: out of memory") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("other_thread", [False, True], ids=["one thread", "with a worker thread"])
def test_interrupt_during_the_renames_is_held_until_the_set_is_complete(
    tmp_path, monkeypatch, other_thread
):  # S4
    # With a second thread alive (torch and OpenMP start several), the kernel may hand
    # a process-wide SIGINT to that thread; Python still raises it in the main thread.
    paths = [tmp_path / f"out{i}.txt" for i in range(4)]
    outputs = OutputSet(paths)
    for path in paths:
        outputs.text(path, path.name)
    real_replace = os.replace

    def replace_and_interrupt(src, dst):
        real_replace(src, dst)
        if str(dst).endswith("out1.txt"):
            os.kill(os.getpid(), signal.SIGINT)

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    if other_thread:
        worker.start()
    monkeypatch.setattr(os, "replace", replace_and_interrupt)
    # Python's own Ctrl-C handler, as a stage has it (a test runner's worker may ignore SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            outputs.commit()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
    assert [p.read_text() for p in paths] == [p.name for p in paths]
    assert outputs.pending == []


# ----------------------------------------------------------------------------- D: file system


def test_read_only_metrics_folder_is_found_before_training(prepared_project):  # D1
    if not permissions_apply():
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    metrics = prepared_project / "metrics"
    metrics.chmod(0o555)
    try:
        proc = stage("train", prepared_project, "stacked", unprivileged=True)
        line = error_line(proc)
        assert "metrics" in line and "not writable" in line
        assert "train stacked:" not in proc.stdout  # refused before the data was loaded, let alone trained
    finally:
        metrics.chmod(0o755)


def test_unwritable_output_location_is_found_before_training(prepared_project, tmp_path):  # D2
    # A file where the output folder should be: fails for root too.
    plots = prepared_project / "plots" / "samples"
    moved = tmp_path / "samples"
    plots.rename(moved)
    plots.write_text("not a folder")
    try:
        proc = stage("train", prepared_project, "stacked")
        line = error_line(proc)
        assert "plots/samples" in line
        assert "train stacked:" not in proc.stdout  # before training
        assert (prepared_project / "metrics/train_stacked.json").is_file()
    finally:
        plots.unlink()
        moved.rename(plots)


def test_full_disk_while_staging_is_one_line_and_leaves_no_temporary(tmp_path, monkeypatch):  # D3
    outputs = OutputSet([tmp_path / "a.json", tmp_path / "b.json"])
    outputs.json(tmp_path / "a.json", {"a": 1})

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(PipelineError, match="no space left on the device"):
        outputs.json(tmp_path / "b.json", {"b": 2})
    monkeypatch.undo()
    outputs.discard()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                       (0o002, 0o664, 0o775)])  # D4-D6
def test_outputs_get_the_usual_permissions(tmp_path, umask, file_mode, dir_mode):
    code = (f"import os, sys; os.umask({umask}); sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
            "from pathlib import Path\n"
            "from stages.common.outputs.atomic import OutputSet\n"
            f"m, raw = Path({str(tmp_path / 'm.json')!r}), Path({str(tmp_path / 'raw')!r})\n"
            "outputs = OutputSet([m, raw])\n"
            "outputs.json(m, {})\n"
            "(outputs.folder(raw) / 'f').write_text('x')\n"
            "outputs.commit()\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env())
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "raw").stat().st_mode & 0o777 == dir_mode


def test_a_concurrent_runs_temporaries_are_left_alone(tmp_path):  # D7
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".m.json{TMP_MARK}{sleeper.pid}-abc"
        live.write_text("in progress")
        dead = tmp_path / f".m.json{TMP_MARK}999999999-xyz"
        dead.write_text("stale")
        remove_stale_temps(tmp_path / "m.json")
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_non_finite_numbers_are_never_written_as_json():  # D8
    with pytest.raises(ValueError):
        json_text({"test_mse": float("nan")})


# ----------------------------------------------------------------------------- T: training and the last line of defence


def test_diverging_training_stops_with_one_line_and_writes_nothing(prepared_project):  # T1
    # The VAE's KL term is unbounded: the largest allowed learning rate blows it up.
    set_params(prepared_project, {"train": {"lr": 1000.0, "epochs": 3}})
    try:
        line = error_line(stage("train", prepared_project, "vae"))
    finally:
        set_params(prepared_project, {"train": {"lr": 0.001, "epochs": 1}})
    assert "training diverged in epoch" in line and "lower train.lr (now 1000.0)" in line
    assert not (prepared_project / "metrics/train_vae.json").exists()
    assert not (prepared_project / "data/models/vae.pt").exists()


# A stage whose code meets something no check foresaw: a bug, simulated by making numpy's loader raise.
BUGGY_STAGE = """
import sys
import numpy
from stages.common.errors import run_stage
from stages import svm

def broken(*args, **kwargs):
    raise ZeroDivisionError("simulated bug")

numpy.lib.format.read_array = broken
run_stage(svm.main, "svm", ["stacked"])
"""


def test_an_unexpected_error_is_one_line_with_the_traceback_logged(prepared_project):  # T2
    log = prepared_project / ".dvc/tmp/ae-compare-svm-stacked.log"
    shutil.rmtree(prepared_project / ".dvc/tmp", ignore_errors=True)  # as on a fresh clone
    proc = subprocess.run([sys.executable, "-c", BUGGY_STAGE], cwd=prepared_project, env=env(),
                          capture_output=True, text=True)
    line = error_line(proc)
    assert "unexpected ZeroDivisionError: simulated bug" in line
    assert f"traceback in {log.relative_to(prepared_project)}" in line
    assert "Traceback (most recent call last)" in log.read_text() and "def broken" not in proc.stderr
    debug = subprocess.run([sys.executable, "-c", BUGGY_STAGE], cwd=prepared_project,
                           env={**env(), "AE_DEBUG": "1"}, capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr


def test_wrong_stage_arguments_are_one_line(prepared_project):  # T3
    for args in (("train",), ("train", "gan"), ("baselines", "raw"), ("tsne", "conv", "extra")):
        line = error_line(stage(args[0], prepared_project, *args[1:]))
        assert "usage:" in line


# ----------------------------------------------------------------------------- round three (#16)
# O: output sets, V: values from earlier stages, G: signals during shutdown, L: lines that tell the truth.


def test_a_folder_where_an_output_file_goes_is_found_before_anything_is_replaced(tmp_path):  # O1
    (tmp_path / "a.json").write_text("old a")
    (tmp_path / "b.png").mkdir()
    outputs = OutputSet([tmp_path / "a.json", tmp_path / "b.png"])
    outputs.text(tmp_path / "a.json", "new a")
    outputs.bytes(tmp_path / "b.png", b"png")
    with pytest.raises(PipelineError, match=r"b.png: a folder is in the way of this output file; .*nothing was"):
        outputs.commit()
    assert (tmp_path / "a.json").read_text() == "old a" and outputs.written == []


@pytest.mark.parametrize("at", [0, 1, 2])  # O2-O4
def test_a_signal_at_any_rename_leaves_the_whole_new_set(tmp_path, monkeypatch, at):
    paths = [tmp_path / "raw", tmp_path / "m.json", tmp_path / "p.csv"]
    paths[0].mkdir()
    (paths[0] / "old").write_text("old")
    for path in paths[1:]:
        path.write_text("old")
    outputs = OutputSet(paths)
    (outputs.folder(paths[0]) / "new").write_text("new")
    outputs.text(paths[1], "new")
    outputs.text(paths[2], "new")
    real_replace, calls = os.replace, []

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        if len(calls) == at:
            os.kill(os.getpid(), signal.SIGINT)
        calls.append(dst)

    monkeypatch.setattr(os, "replace", replace_then_signal)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            outputs.commit()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert outputs.pending == []  # the signal waited for the last rename
    assert sorted(p.name for p in paths[0].iterdir()) == ["new"]
    assert [p.read_text() for p in paths[1:]] == ["new", "new"]
    assert not list(tmp_path.glob(f".*{TMP_MARK}*"))


def test_a_message_the_terminal_cannot_print_does_not_fail_the_stage(tmp_path, idx_folder):  # O5
    source = tmp_path / "données ✓"
    shutil.copytree(idx_folder, source)
    project = make_project(tmp_path / "p", {"data": {"source": str(source)}})
    proc = stage("download", project, extra_env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "\\u2713" in proc.stdout and (project / "data/raw/manifest.json").is_file()


@pytest.fixture
def latents_file(prepared_project, tmp_path):
    """data/latents/stacked.npz of the prepared project, restored after the test."""
    path = prepared_project / "data/latents/stacked.npz"
    backup = tmp_path / "latents.npz"
    shutil.copy(path, backup)
    yield path
    shutil.copy(backup, path)


def rewrite_latents(path: Path, **changes) -> None:
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    arrays.update(changes)
    path.write_bytes(npz_bytes(**arrays))


BAD_LATENTS = [  # V1-V6: (change, stage, what the line says)
    (lambda z, y: {"z_test": np.full_like(z, np.nan)}, "svm", "not finite numbers"),
    (lambda z, y: {"z_train": np.where(np.arange(z.size).reshape(z.shape) == 3, np.inf, z)}, "tsne",
     "not finite numbers"),
    (lambda z, y: {"y_test": (y + 10).astype(np.uint8)}, "svm", "outside the 10 classes"),
    (lambda z, y: {"z_test": z[:0], "y_test": y[:0]}, "tsne", "holds latents of shapes"),
    (lambda z, y: {"y_train": np.zeros_like(y)}, "svm", "one class"),
    (lambda z, y: {"z_test": np.ones_like(z)}, "tsne", "are all the same (a collapsed model)"),
]


@pytest.mark.parametrize("change,command,expected", BAD_LATENTS)
def test_bad_latents_are_named_with_the_stage_to_rerun_never_a_crash(latents_file, prepared_project, change,
                                                                     command, expected):
    with np.load(latents_file) as f:
        z_test, y_test, y_train = f["z_test"], f["y_test"], f["y_train"]
    changes = change(z_test, y_test)
    if "z_train" in changes or "y_train" in changes:
        with np.load(latents_file) as f:
            changes = change(f["z_train"], y_train)
    rewrite_latents(latents_file, **changes)
    proc = stage(command, prepared_project, "stacked")
    assert proc.returncode != 0 and proc.returncode > 0, "a native crash (signal) instead of an error"
    line = error_line(proc)
    assert "data/latents/stacked.npz" in line and expected in line, line


@pytest.fixture
def report_inputs(prepared_project, tmp_path):
    """The report's inputs in the prepared project (svm and baselines run), restored after each test."""
    for name, args in (("baselines", ["pixels"]), ("baselines", ["pca"])):
        if not (prepared_project / f"metrics/svm_{args[0]}.json").is_file():
            stage(name, prepared_project, *args, check=True)
    saved = tmp_path / "saved"
    for folder in ("metrics", "plots"):
        shutil.copytree(prepared_project / folder, saved / folder)
    yield prepared_project
    for folder in ("metrics", "plots"):
        shutil.rmtree(prepared_project / folder)
        shutil.copytree(saved / folder, prepared_project / folder)


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_REPORT_INPUTS = [  # V7-V14: (file, content, what the line says)
    ("metrics/train_stacked.json", "{}", "lacks a finite number at 'test_mse'"),
    ("metrics/svm_stacked.json", '{"accuracy": "high"}', "lacks a finite number at 'accuracy'"),
    ("metrics/tsne_stacked.json", "DEEP", "nested far deeper"),  # 100,000 levels, made in the test
    ("metrics/run/train_stacked.json", '{"epochs": NaN}', "lacks a finite number"),
    ("metrics/svm_pixels.json", '{"accuracy": 0.9}', "lacks a finite number at 'accuracy_ci_low'"),
    ("plots/loss/stacked.csv", "a,b\n1,2\n", "lacks the column(s) epoch, train_mse, test_mse"),
    ("plots/tsne/stacked.csv", "x,y,label,class\n", "holds no rows"),
    ("plots/loss/stacked.csv", "epoch,train_mse,test_mse\n1,inf,0.1\n", "not finite numbers"),
]


@pytest.mark.parametrize("relative,content,expected", BAD_REPORT_INPUTS)
def test_a_bad_input_of_the_report_is_named_with_the_stage_to_rerun(report_inputs, relative, content, expected):
    (report_inputs / relative).write_text(deep_json(100_000) if content == "DEEP" else content)
    line = error_line(stage("report", report_inputs))
    assert relative in line and expected in line and "dvc repro -f" in line, line


def test_a_picture_bomb_is_refused_from_its_header(report_inputs):  # V15
    path = report_inputs / "plots/reconstructions/stacked.png"
    ihdr = struct.pack(">II", 20_000, 20_000) + bytes([8, 6, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + bytes(4) + bytes(1000))
    proc, peak = peak_of([sys.executable, "-m", "stages", "report"], report_inputs)
    assert "20,000 x 20,000 picture" in error_line(proc) and peak < 1500


def test_nan_weights_give_an_error_where_latents_are_made_not_later(prepared_project, tmp_path):  # V16
    import torch

    from stages.common.models.checkpoint import checkpoint_bytes, load_checkpoint

    path = prepared_project / "data/models/stacked.pt"
    backup = tmp_path / "model.pt"
    shutil.copy(path, backup)
    try:
        spec, model = load_checkpoint(path)
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        path.write_bytes(checkpoint_bytes(spec, model))
        before = (prepared_project / "data/latents/stacked.npz").read_bytes()
        line = error_line(stage("latents", prepared_project, "stacked"))
        assert "data/models/stacked.pt" in line and "NaN or infinity" in line and "train@stacked" in line
        assert (prepared_project / "data/latents/stacked.npz").read_bytes() == before
    finally:
        shutil.copy(backup, path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # G1, G2
def test_a_storm_of_signals_during_training_is_one_line(prepared_project, signum):
    proc = start_stage(prepared_project, "stages", "train", "stacked")
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            if psutil.Process(proc.pid).cpu_times().user > 2.5:  # past the imports
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    for _ in range(100):
        if proc.poll() is not None:
            break
        proc.send_signal(signum)
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in stderr, stderr
    assert len([line for line in stderr.splitlines() if line.startswith("error: ")]) == 1, stderr


def test_an_unreadable_source_file_is_named_as_unreadable(tmp_path, idx_folder):  # L1
    if not permissions_apply():
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    project = make_project(tmp_path / "p", {"data": {"source": str(idx_folder)}})
    victim = idx_folder / "train-labels-idx1-ubyte.gz"
    victim.chmod(0)
    try:
        line = error_line(stage("download", project, unprivileged=True))
    finally:
        victim.chmod(0o644)
    assert str(victim) in line and "not readable (permissions)" in line and "not writable" not in line


def test_unreadable_latents_are_named_as_unreadable_not_damaged(prepared_project):  # L2
    if not permissions_apply():
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    path = prepared_project / "data/latents/stacked.npz"
    path.chmod(0)
    try:
        line = error_line(stage("svm", prepared_project, "stacked", unprivileged=True))
    finally:
        path.chmod(0o644)
    assert "data/latents/stacked.npz: not readable (permissions)" in line and "damaged" not in line
