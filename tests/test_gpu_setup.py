"""Running on a GPU: the install extras, --device, the long-CPU-run warning, finding CelebA
on Kaggle without flags, and --distributed over two local processes."""
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train
from imagedata import celeba
from training import devices
from system.errors import EXIT_USER_ERROR
from test_data import load_split
from training import load_run

ROOT = Path(__file__).resolve().parents[1]

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None


def one_sentence(text):
    return text.strip().endswith(".") and not re.search(r"\.\s+[A-Z]", text.strip().rstrip("."))


# --------------------------------------------------------------------------- extras

def extras():
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        return tomllib.loads(text)["project"]["optional-dependencies"]
    found = {}
    for name, body in re.findall(r"^(\w+) = \[(.*?)\]", text, flags=re.M):
        found[name] = re.findall(r'"([^"]+)"', body)
    return found


def test_gpu_extras_name_the_jax_extras_and_the_pascal_pins():
    ex = extras()
    assert any(r.startswith("jax[cuda13]") for r in ex["cuda13"])
    assert any(r.startswith("jax[cuda12]") for r in ex["cuda12"])
    cudnn = [r for r in ex["cuda12"] if r.startswith("nvidia-cudnn-cu12")]
    assert cudnn and "<9.11" in cudnn[0]  # cuDNN 9.11 dropped Pascal (the P100) and Maxwell
    assert "tensorboard" in ex
    text = (ROOT / "pyproject.toml").read_text()
    assert "cuDNN 9.11 dropped" in text  # the reason sits beside the pin


# --------------------------------------------------------------------------- --device and the warning

def test_device_gpu_without_a_gpu_is_one_sentence(capsys):
    if devices.has_gpu():
        pytest.skip("this machine has a GPU")
    assert train.main(["--device", "gpu", "--dataset", "shapes", "--max-steps", "0"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: JAX sees no GPU"), err
    assert one_sentence(err[len("error: "):]), err
    assert "[cuda" in err or "cuDNN" in err or "--device cpu" in err


@pytest.mark.parametrize("kwargs, needle", [
    (dict(plugins={"cuda13": None, "cuda12": None}, cc=6.0), 'pip install -e ".[cuda13]"'),
    (dict(plugins={"cuda13": "0.10.2", "cuda12": None}, cc=6.0), 'pip install -e ".[cuda12]"'),
    (dict(plugins={"cuda13": None, "cuda12": "0.10.2"}, cc=6.0, cudnn="9.14.0.64"), "nvidia-cudnn-cu12<9.11"),
])
def test_no_gpu_reason_names_the_likely_cause(kwargs, needle):
    kwargs.setdefault("cudnn", "")
    message = devices.no_gpu_reason(**kwargs)
    assert needle in message and one_sentence(message), message


def test_long_cpu_run_warns_before_training(monkeypatch, capsys, tmp_path):
    called = []
    monkeypatch.setattr(train, "train", lambda config, **kw: called.append(config) or {"interrupted": False})
    assert train.main(["--dataset", "celeba", "--data-dir", str(tmp_path), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "hours" in warning[0] and '".[cuda13]"' in warning[0], err
    assert called and called[0].run.epochs == 100


def test_short_runs_do_not_warn(monkeypatch, capsys):
    monkeypatch.setattr(train, "train", lambda config, **kw: {"interrupted": False})
    assert train.main(["--dataset", "shapes", "--device", "cpu"]) == 0
    assert train.main(["--dataset", "celeba", "--max-steps", "0"]) == 0
    captured = capsys.readouterr()
    assert "warning:" not in captured.err
    assert "Devices: " in captured.out


# --------------------------------------------------------------------------- CelebA on Kaggle

def write_kaggle_tree(input_dir, n=6):
    root = input_dir / "celeba-dataset"
    images = root / "img_align_celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for i in range(1, n + 1):
        Image.fromarray(np.full((218, 178, 3), 10 * i, np.uint8)).save(images / f"{i:06d}.jpg", quality=90)
    lines = ["image_id,partition"] + [f"{i:06d}.jpg,{0 if i <= n - 2 else 1}" for i in range(1, n + 1)]
    (root / "list_eval_partition.csv").write_text("\n".join(lines) + "\n")
    return root


def test_celeba_found_in_kaggle_input_without_flags(tmp_path, monkeypatch):
    kaggle = tmp_path / "kaggle" / "input"
    (kaggle / "some-other-dataset").mkdir(parents=True)
    root = write_kaggle_tree(kaggle)
    monkeypatch.setattr(celeba, "KAGGLE_INPUT", str(kaggle))
    monkeypatch.delenv(celeba.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data/celeba here
    assert celeba.resolve_data_dir() == str(root)
    source = celeba.find_source()
    assert source.layout == "kaggle" and source.partition.endswith(".csv")
    images = load_split("celeba", "train", cache_dir=str(tmp_path / "cache"), num_workers=1,
                                  progress=False)
    assert images.shape == (4, 3, 64, 64)
    # ./data/celeba and $BVAEX_DATA_DIR come first
    monkeypatch.setenv(celeba.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert celeba.resolve_data_dir() == str(tmp_path / "mine")
    monkeypatch.delenv(celeba.DATA_DIR_ENV)
    (tmp_path / "data" / "celeba").mkdir(parents=True)
    assert celeba.resolve_data_dir() == str(tmp_path / "data" / "celeba")


def test_missing_celeba_lists_the_search_and_names_the_kaggle_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(celeba, "KAGGLE_INPUT", str(tmp_path / "kaggle" / "input"))
    monkeypatch.delenv(celeba.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception) as e:
        celeba.find_source()
    message = str(e.value)
    for needle in ("data/celeba", celeba.DATA_DIR_ENV, str(tmp_path / "kaggle" / "input"), celeba.KAGGLE_DATASET):
        assert needle in message, needle


@pytest.mark.parametrize("platforms", ["tpu", "cuda"])
def test_a_backend_jax_platforms_names_but_the_machine_lacks_is_one_sentence(tmp_path, platforms):
    if platforms == "cuda" and devices.has_gpu():
        pytest.skip("this machine has a GPU")
    env = dict(os.environ, JAX_PLATFORMS=platforms, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "metrics.py"), "--num-images", "2", "--out-dir",
                           str(tmp_path / "o")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: JAX could not start the backend") and "Traceback" not in done.stderr, done.stderr


# --------------------------------------------------------------------------- --distributed

TINY = ["--dataset", "shapes", "--channels", "4", "8", "8", "--latent-dim", "4", "--limit", "128",
        "--batch-size", "32", "--max-steps", "4", "--val-images", "0", "--no-progress", "--device", "cpu"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final_params(weights_dir):
    return load_run(weights_dir=weights_dir)[0]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONPATH=str(ROOT))
    env.pop(celeba.DATA_DIR_ENV, None)
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, "--weights-dir", str(tmp_path / f"p{i}"),
                               "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                               "--process-id", str(i)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outs)
    # one process on two CPU devices sees the same global batches
    env1 = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    one = subprocess.run([sys.executable, str(ROOT / "train.py"), *TINY, "--weights-dir", str(tmp_path / "one")],
                         cwd=tmp_path, env=env1, capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stdout + one.stderr
    p0, p1, ref = (final_params(tmp_path / d) for d in ("p0", "p1", "one"))
    for name in ref:
        np.testing.assert_array_equal(p0[name], p1[name], err_msg=name)
        np.testing.assert_allclose(p0[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)
