"""An adversarial pass: hostile parameters, files, mirrors, signals and file-system faults.

Every case must end in one clear line (or succeed), never a traceback, never a
process above 1.5 GB, never an output set that mixes two runs. The cases, by kind:
params (P), files (F), mirrors (M), signals (S), file system (D), training (T).
"""
from __future__ import annotations

import errno
import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.common.data.fetch import download
from stages.common.data.idx import read_images, read_labels, write_idx_gz
from stages.common.errors import PipelineError
from stages.common.models.catalogue import CATALOGUE
from stages.common.outputs.atomic import TMP_MARK, OutputSet, json_text, remove_stale_temps
from stages.common.settings import SECTIONS, read, select
from tests.conftest import ROOT, write_idx_folder
from tests.httpserver import serve
from tests.stagerun import env, error_line, make_project, set_params, stage

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
    ("train.threads", 0, "null = every core"),
    ("data.timeout_seconds", 1e10, "up to 3600"), ("data.timeout_seconds", 0, "positive number"),
    ("data.retries", 0, "attempts per mirror"), ("data.retries", 10**6, "attempts per mirror"),
    ("data.mirrors", ["not a url"], "http(s) base URLs"), ("data.mirrors", ["ftp://host/x/"], "http(s) base URLs"),
    ("data.mirrors", ["http://"], "http(s) base URLs"), ("data.mirrors", "http://host/", "http(s) base URLs"),
    ("data.mirrors", ["http://host:99999/"], "http(s) base URLs"), ("data.mirrors", [], "http(s) base URLs"),
    ("svm.gamma", 0, "'scale', 'auto' or a positive number"), ("svm.gamma", -1, "'scale', 'auto'"),
    ("svm.gamma", float("inf"), "'scale', 'auto'"), ("svm.gamma", "Scale", "'scale', 'auto'"),
    ("svm.C", float("inf"), "positive number"), ("svm.n_jobs", -2, "-1 for every core"),
    ("baselines.train_limit", 5, "ten images per class"), ("baselines.train_limit", 15, "ten images per class"),
    ("tsne.max_iter", 100, "minimum is 250"), ("archs", "conv", "non-empty list"),
    ("archs", ["conv", "conv"], "distinct"), ("archs", [["conv"]], "architecture ids"),
    ("models.vae.beta", 0, "positive number"), ("models.vae.reconstruction", "l1", "one of bce, mse"),
    ("models.denoising.noise", "salt", "one of gaussian, masking"),
    ("models.denoising.mask_fraction", 1.0, "between 0 and 1"), ("test_noise.noise_std", -1, "positive number"),
    ("sweep.latent_dims", [], "distinct latent sizes"), ("sweep.latent_dims", [2, 2], "distinct latent sizes"),
    ("sweep.jobs", 0, "parallel experiment workers"),
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
    ("seed: 010\n", "leading zero"),
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


def peak_child_mb(code: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `code` in a fresh interpreter; its own peak RSS (MB, printed by itself at exit) and wall time.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large
    pytest process would report the parent's size.
    """
    code += ("\nimport re\n"
             "print('PEAK_KB', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env())
    seconds = time.perf_counter() - started
    peak_kb = int(proc.stdout.rsplit("PEAK_KB", 1)[1].split()[0])
    return proc, peak_kb / 1024, seconds


def test_gzip_bomb_is_refused_without_decompressing_it(tmp_path):  # F1
    bomb = tmp_path / "bomb.gz"
    gzip_bomb(bomb, declared=10, actual_bytes=512 << 20)
    assert bomb.stat().st_size < 3 << 20
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
            "from stages.common.data.idx import read_images\nfrom stages.common.errors import PipelineError\n"
            f"try:\n    read_images({str(bomb)!r})\nexcept PipelineError as e:\n    print(e)\n")
    proc, peak_mb, seconds = peak_child_mb(code)
    assert "holds more data than the header promises" in proc.stdout, proc.stderr
    assert peak_mb < 400 and seconds < 10


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


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory):
    """A scratch project with download and prepare done, and a trained stacked model."""
    root = tmp_path_factory.mktemp("damaged")
    source = write_idx_folder(root / "src", n_train=300, n_test=100)
    project = make_project(root / "p", {"archs": ["stacked"], "data": {"source": str(source)},
                                        "train": {"epochs": 1, "latent_dim": 8},
                                        "tsne": {"per_class": 5, "perplexity": 4}})
    for name, args in (("download", []), ("prepare", []), ("train", ["stacked"]), ("latents", ["stacked"]),
                       ("tsne", ["stacked"]), ("svm", ["stacked"])):
        stage(name, project, *args, check=True)
    return project


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


def test_a_dripping_mirror_fails_within_ten_timeouts(server, tmp_path):  # M1
    started = time.monotonic()
    with pytest.raises(PipelineError, match="too slow") as err:
        fetch(server, "drip", tmp_path, timeout=0.3)
    assert time.monotonic() - started < 10 * 0.3 + 2
    assert "\n" not in str(err.value)
    assert not (tmp_path / NAME).exists()


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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # S1, S2
def test_interrupt_during_start_up_is_one_line(prepared_project, signum):
    proc = start_stage(prepared_project, "stages", "train", "stacked")
    time.sleep(0.3)  # inside `import torch`
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
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    metrics = prepared_project / "metrics"
    metrics.chmod(0o555)
    try:
        started = time.perf_counter()
        line = error_line(stage("train", prepared_project, "stacked"))
        assert "metrics" in line and "not writable" in line
        assert time.perf_counter() - started < 20
    finally:
        metrics.chmod(0o755)


def test_unwritable_output_location_is_found_before_training(prepared_project, tmp_path):  # D2
    # A file where the output folder should be: fails for root too.
    plots = prepared_project / "plots" / "samples"
    moved = tmp_path / "samples"
    plots.rename(moved)
    plots.write_text("not a folder")
    try:
        started = time.perf_counter()
        line = error_line(stage("train", prepared_project, "stacked"))
        assert "plots/samples" in line
        assert time.perf_counter() - started < 20
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
            "from stages.common.outputs.atomic import write_json, atomic_dir\n"
            f"write_json({str(tmp_path / 'm.json')!r}, {{}})\n"
            f"with atomic_dir({str(tmp_path / 'raw')!r}) as d: (d / 'f').write_text('x')\n")
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


def test_an_unexpected_error_is_one_line_with_the_traceback_logged(prepared_project):  # T2
    (prepared_project / "data/prepared/test.npz").rename(prepared_project / "test.npz.bak")
    (prepared_project / "data/prepared/test.npz").mkdir()  # a folder where a file belongs
    try:
        proc = stage("prepare", prepared_project)
        line = error_line(proc)
        assert "data/prepared/test.npz" in line or "traceback in" in line
        debug = subprocess.run([sys.executable, "-m", "stages", "svm", "stacked"], cwd=prepared_project,
                               env={**env(), "AE_DEBUG": "1"}, capture_output=True, text=True)
        assert debug.returncode == 0
    finally:
        (prepared_project / "data/prepared/test.npz").rmdir()
        (prepared_project / "test.npz.bak").rename(prepared_project / "data/prepared/test.npz")


def test_wrong_stage_arguments_are_one_line(prepared_project):  # T3
    for args in (("train",), ("train", "gan"), ("baselines", "raw"), ("tsne", "conv", "extra")):
        line = error_line(stage(args[0], prepared_project, *args[1:]))
        assert "usage:" in line
