"""Nothing lost, nothing mixed, round two: a run's folder, its record and its flags against a hostile user.

Each test is one case a user met: a branch resumed from an older checkpoint, --overwrite beside
files that are not the run's, relative data paths, the other stop signals, flags that used to
end in tracebacks, swapped or renamed checkpoint files, a dataset that shrank, an unreachable
coordinator."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cli
import evaluate
import metrics
import plots
import train
from imagedata import DataOptions
from model import Architecture, tensor_file
from system.errors import EXIT_USER_ERROR
from training import RunDir, TrainConfig, load_run

from test_own_images import make_folder
from test_reliability import error_line, main, signal_at_step


DATA = ["--dataset", "shapes", "--limit", "128", "--batch-size", "32", "--val-images", "0", "--no-progress"]


def steps_of_history(w):
    return [s["step"] for s in json.loads((w / "history.json").read_text())["steps"]]


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    """A finished 3-epoch run of 4 steps an epoch, copied by the tests that change it."""
    w = tmp_path_factory.mktemp("run3") / "w"
    assert main(w, "--epochs", "3") == 0
    return w


def copy(run, tmp_path, name="w"):
    return Path(shutil.copytree(run, tmp_path / name, symlinks=True))


# --------------------------------------------------------------------------- 2. --resume-from is a branch

def test_resume_from_an_older_checkpoint_sets_the_newer_ones_aside(three_epochs, tmp_path, capsys):
    w = copy(three_epochs, tmp_path)
    old_epoch_2 = tensor_file.read(w / "epoch_2" / RunDir.PARAMS_FILE)[0]
    assert main(w, "--resume-from", str(w / "epoch_1"), "--epochs", "2", "--seed", "0") == 0
    out = capsys.readouterr().out
    assert "Moved epoch_2, epoch_3" in out and "continues from epoch_1" in out
    assert [p.name for _, p in RunDir(w).epochs()] == ["epoch_1", "epoch_2"]  # the branch alone
    assert steps_of_history(w) == list(range(1, 9))  # not spliced from two runs
    aside = next((w / "superseded").iterdir())
    assert sorted(p.name for p in aside.iterdir()) == ["epoch_2", "epoch_3", "history.json"]  # nothing lost
    kept = tensor_file.read(aside / "epoch_2" / RunDir.PARAMS_FILE)[0]
    assert all(np.array_equal(kept[k], old_epoch_2[k]) for k in kept)
    assert RunDir(w).resume_point() == w / "epoch_2"  # a later --resume continues the branch
    assert main(w, "--resume", "--epochs", "3") == 0 and steps_of_history(w) == list(range(1, 13))


def test_resume_from_another_folders_checkpoint_never_mixes_two_runs(three_epochs, tmp_path, capsys):
    a, b = copy(three_epochs, tmp_path, "a"), copy(three_epochs, tmp_path, "b")
    before = sorted(p.name for p in a.iterdir())
    assert main(a, "--resume-from", str(b / "epoch_1"), "--epochs", "2") == EXIT_USER_ERROR
    assert "another run folder" in error_line(capsys) and sorted(p.name for p in a.iterdir()) == before
    empty = tmp_path / "c"
    assert main(empty, "--resume-from", str(b / "epoch_1"), "--epochs", "2") == 0  # into an empty folder: fine
    assert [p.name for _, p in RunDir(empty).epochs()] == ["epoch_2"]


# --------------------------------------------------------------------------- 3. --overwrite removes only the run's

def test_overwrite_removes_only_what_the_run_wrote_and_follows_no_symlink(three_epochs, tmp_path, capsys):
    w, other = copy(three_epochs, tmp_path), copy(three_epochs, tmp_path, "other")
    (w / "samples" / "my_data.txt").write_text("mine")
    (w / "epoch_analysis.ipynb").write_text("{}")
    (w / "epoch_9").symlink_to(other / "epoch_3", target_is_directory=True)
    assert RunDir(w).latest_epoch() == w / "epoch_3"  # a symlink is no checkpoint of this run
    assert main(w, "--epochs", "1") == EXIT_USER_ERROR
    err = error_line(capsys)
    assert "epoch_1" in err and "ipynb" not in err
    assert main(w, "--epochs", "1", "--overwrite") == 0
    assert (w / "samples" / "my_data.txt").read_text() == "mine" and (w / "epoch_analysis.ipynb").exists()
    assert (w / "epoch_9").is_symlink() and (other / "epoch_3" / RunDir.PARAMS_FILE).exists()
    assert [p.name for _, p in RunDir(w).epochs()] == ["epoch_1"]
    assert evaluate.main(["--weights-dir", str(w), "--out-dir", str(tmp_path / "out"), "--num-images", "2",
                          "--num-samples", "2", "--traverse-dims", "1", "--rank-images", "8"]) == 0
    assert "(epoch 1)" in capsys.readouterr().out


# --------------------------------------------------------------------------- 4. paths are recorded absolute

def test_relative_data_paths_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = DataOptions("folder", data_dir="photos", split_file="splits.txt", cache_dir="cache")
    assert options.data_dir == str(tmp_path / "photos") and options.split_file == str(tmp_path / "splits.txt")
    assert options.cache_dir == str(tmp_path / "cache")
    recorded = TrainConfig.for_dataset("folder", data_dir="photos").as_dict()["data"]
    monkeypatch.chdir(tmp_path.parent)  # read back from elsewhere: still the same folder
    assert TrainConfig.from_dict({"data": recorded}).data.data_dir == str(tmp_path / "photos")


# --------------------------------------------------------------------------- 7. every stop signal saves

@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2])
def test_hangup_and_scheduler_signals_save_and_exit_like_sigterm(tmp_path, monkeypatch, capsys, signum):
    signal_at_step(monkeypatch, 2, signum)
    assert main(tmp_path / "w", "--epochs", "1") == 128 + signum
    assert f"Stopped by {signal.Signals(signum).name} at step 2" in capsys.readouterr().out
    assert RunDir.is_complete(tmp_path / "w" / "interrupted")
    assert main(tmp_path / "w", "--epochs", "1", "--resume") == 0 and steps_of_history(tmp_path / "w") == [1, 2, 3, 4]


# --------------------------------------------------------------------------- 8. one sentence, never a traceback

@pytest.mark.parametrize("flags", [["--seed", "-5"], ["--seed", "99999999999999999999"]])
def test_bad_seeds_are_refused_at_parse_time(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as exit:
        main(tmp_path / "w", *flags)
    err = capsys.readouterr().err
    assert exit.value.code == EXIT_USER_ERROR and "--seed: expected a whole number from 0" in err
    assert "Traceback" not in err and not (tmp_path / "w").exists()


def test_an_architecture_that_cannot_be_built_is_one_sentence(tmp_path, capsys):
    assert train.main(DATA + ["--channels"] + ["8"] * 7 + ["--weights-dir", str(tmp_path / "w")]) == EXIT_USER_ERROR
    assert "--channels" in error_line(capsys) and not (tmp_path / "w").exists()


def test_tensorboard_naming_a_file_is_one_sentence(tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    (tmp_path / "tb").write_text("a file")
    assert main(tmp_path / "w", "--epochs", "1", "--tensorboard", str(tmp_path / "tb")) == EXIT_USER_ERROR
    assert "--tensorboard" in error_line(capsys)


@pytest.mark.parametrize("script", [evaluate, metrics, plots])
def test_an_out_dir_that_cannot_be_written_is_said_before_any_work(three_epochs, tmp_path, capsys, script):
    (tmp_path / "a_file").write_text("")
    assert script.main(["--weights-dir", str(three_epochs), "--out-dir", str(tmp_path / "a_file" / "out")]) \
        == EXIT_USER_ERROR
    assert "--out-dir" in error_line(capsys)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_out_dir_a_pseudo_file_system_refuses_is_said_and_a_new_one_is_not_left_made(tmp_path, capsys):
    assert evaluate.main(["--out-dir", "/proc/bvaex-out"]) == EXIT_USER_ERROR  # root may, /proc refuses
    assert "--out-dir" in error_line(capsys)
    assert cli.out_dir(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_the_sample_grid_costs_neither_the_epoch_nor_the_run(tmp_path, monkeypatch, capsys):
    import analysis.figures

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(analysis.figures, "image_grid", full)
    assert main(tmp_path / "w", "--epochs", "2") == 0
    err = capsys.readouterr().err
    assert err.count("warning: the sample grid") == 2 and "Traceback" not in err
    assert [p.name for _, p in RunDir(tmp_path / "w").epochs()] == ["epoch_1", "epoch_2"]


# --------------------------------------------------------------------------- 9. 10. 14. files that lie

def test_a_params_file_of_another_architecture_is_refused_on_resume(three_epochs, tmp_path, capsys):
    w, other = copy(three_epochs, tmp_path), tmp_path / "other"
    assert train.main(DATA + ["--channels", "4", "8", "8", "--latent-dim", "3", "--epochs", "1",
                              "--weights-dir", str(other)]) == 0
    shutil.copy(other / "epoch_1" / RunDir.PARAMS_FILE, w / "epoch_3" / RunDir.PARAMS_FILE)
    assert train.main(DATA + ["--weights-dir", str(w), "--resume", "--epochs", "4"]) == EXIT_USER_ERROR
    assert "optimizer" in error_line(capsys)


def test_resuming_after_the_image_folder_shrank_is_refused(tmp_path, capsys):
    photos = make_folder(tmp_path / "photos", 80)
    flags = ["--dataset", "folder", "--data-dir", str(photos), "--cache-dir", str(tmp_path / "cache"),
             "--batch-size", "8", "--val-images", "0", "--channels", "4", "4", "4", "--latent-dim", "4",
             "--no-progress", "--weights-dir", str(tmp_path / "w")]
    assert train.main(flags + ["--epochs", "1"]) == 0
    for path in sorted(p for p in photos.rglob("*") if p.is_file())[:40]:
        path.unlink()
    assert train.main(flags + ["--epochs", "2", "--resume"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err  # the cache's rebuild note, then the refusal
    assert "Traceback" not in err and err.splitlines()[-1].startswith("error: the training set now has")


def test_an_image_given_as_weights_is_one_sentence_with_no_pickle_advice(tmp_path, capsys):
    from test_data import jpeg_bytes
    (tmp_path / "photo.jpg").write_bytes(jpeg_bytes(1))
    assert evaluate.main(["--weights", str(tmp_path / "photo.jpg"), "--out-dir", str(tmp_path)]) == EXIT_USER_ERROR
    err = error_line(capsys)
    assert "pickle" not in err and "neither a safetensors nor a .npz" in err


def test_a_renamed_epoch_folder_fools_neither_the_label_nor_keep(three_epochs, tmp_path, capsys):
    w = copy(three_epochs, tmp_path)
    os.rename(w / "epoch_1", w / "epoch_10")
    assert RunDir(w).latest_epoch() == w / "epoch_3"  # ordered by the steps they record
    assert RunDir.epoch_label(w / "epoch_10") == 1
    assert main(w, "--resume", "--epochs", "4", "--keep", "2") == 0
    assert sorted(p.name for _, p in RunDir(w).epochs()) == ["epoch_3", "epoch_4"]


def test_resume_with_nothing_left_to_train_says_so(three_epochs, tmp_path, capsys):
    """... and names the flag that ended it: --epochs, or --max-steps (a total over the run)."""
    w = copy(three_epochs, tmp_path)
    assert main(w, "--resume", "--epochs", "2") == 0
    out = capsys.readouterr().out
    assert "Nothing to train" in out and "larger --epochs" in out
    assert main(w, "--resume", "--epochs", "5", "--max-steps", "1") == 0
    out = capsys.readouterr().out
    assert "Nothing to train" in out and "larger --max-steps" in out
    assert sorted(p.name for _, p in RunDir(w).epochs())[-1] == "epoch_3"


def test_weights_naming_a_run_folder_takes_its_newest_checkpoint(three_epochs):
    assert RunDir("elsewhere").find_params(three_epochs) == RunDir.params_file(three_epochs / "epoch_3")
    params, config = load_run(three_epochs)
    assert config.model == Architecture(3, (4, 8, 8), 4, 64)


# --------------------------------------------------------------------------- 13. an unreachable coordinator

def test_an_unreachable_coordinator_is_one_sentence_within_the_timeout(tmp_path, capsys):
    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    assert main(tmp_path / "w", "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                "--process-id", "1", "--coordinator-timeout", "1") == EXIT_USER_ERROR
    assert time.monotonic() - start < 30
    assert f"127.0.0.1:{port} did not answer" in error_line(capsys)


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1", ":1234", "127.0.0.1:http"])
@pytest.mark.parametrize("process_id", ["0", "1"])
def test_a_malformed_coordinator_address_is_one_sentence_for_every_process(tmp_path, capsys, address, process_id):
    assert main(tmp_path / "w", "--distributed", "--coordinator", address, "--num-processes", "2",
                "--process-id", process_id, "--coordinator-timeout", "1") == EXIT_USER_ERROR
    assert "--coordinator must be HOST:PORT" in error_line(capsys)


def test_a_coordinator_nobody_joins_is_one_sentence_within_the_timeout(tmp_path):
    with socket.socket() as s:  # a free loopback port for process 0's coordinator
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "train.py", *DATA, "--weights-dir", str(tmp_path / "w"), "--distributed",
                           "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0",
                           "--coordinator-timeout", "2"], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert done.stderr.startswith("error: process 1 did not join") and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "w").exists()
