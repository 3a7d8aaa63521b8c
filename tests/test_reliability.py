"""Nothing lost, nothing stale: a changed dataset, a reused or shared weights folder, signals,
kills inside a checkpoint save, bad flags, full or read-only disks and corrupt run files."""
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import imagedata
import load_data
import train
from system.errors import EXIT_USER_ERROR, UserError
from model import VAE, tensor_file
from training import RunDir, checkpoints, load_run, rundir

from test_data import jpeg_bytes, name, write_images, write_partition_txt
from test_data import load_split


# --------------------------------------------------------------------------- 1. stale caches

@pytest.fixture
def celeba_copy(tmp_path):
    root = tmp_path / "celeba"
    write_images(root / "img_align_celeba")
    write_partition_txt(root / "list_eval_partition.txt")
    return root


def load_train(root, cache):
    return load_split("celeba", "train", data_dir=str(root), cache_dir=str(cache), progress=False,
                                num_workers=1)


def bump_mtime(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def remove_one(root):
    os.remove(root / "img_align_celeba" / name(28))  # a training image
    lines = (root / "list_eval_partition.txt").read_text().splitlines()
    (root / "list_eval_partition.txt").write_text("\n".join(l for l in lines if name(28) not in l) + "\n")


def add_one(root):
    (root / "img_align_celeba" / name(31)).write_bytes(jpeg_bytes(31))
    with open(root / "list_eval_partition.txt", "a") as f:
        f.write(f"{name(31)} 0\n")


def replace_contents(root):
    path = root / "img_align_celeba" / name(1)
    path.write_bytes(jpeg_bytes(2))
    bump_mtime(path)


def move_split(root):
    text = (root / "list_eval_partition.txt").read_text()
    (root / "list_eval_partition.txt").write_text(text.replace(f"{name(1)} 0", f"{name(1)} 2"))


@pytest.mark.parametrize("change", [remove_one, add_one, replace_contents, move_split])
def test_a_changed_dataset_rebuilds_its_cache(celeba_copy, tmp_path, capsys, change):
    before = load_train(celeba_copy, tmp_path / "cache").copy()
    capsys.readouterr()
    change(celeba_copy)
    after = load_train(celeba_copy, tmp_path / "cache")
    assert "rebuilding" in capsys.readouterr().err
    assert after.shape != before.shape or not (after == before).all()
    again = load_train(celeba_copy, tmp_path / "cache")  # and then the new cache is reused
    assert "rebuilding" not in capsys.readouterr().err and (again == after).all()


def test_a_changed_zip_rebuilds_its_cache(tmp_path, capsys):
    import zipfile
    root = tmp_path / "celeba"
    root.mkdir()
    write_partition_txt(root / "list_eval_partition.txt")
    for first in (1, 2):
        with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as zf:
            for i in range(1, 31):
                zf.writestr(f"img_align_celeba/{name(i)}", jpeg_bytes(first if i == 1 else i))
        bump_mtime(root / "img_align_celeba.zip")
        images = load_train(root, tmp_path / "cache")
    assert "rebuilding" in capsys.readouterr().err
    assert (images[0] == images[1]).all()  # image 1 now holds image 2's pixels


# --------------------------------------------------------------------------- 2.-8. training runs

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "shapes", "--limit", "128", "--batch-size", "32", "--val-images", "0",
        "--channels", "4", "8", "8", "--latent-dim", "4", "--no-progress", "--log-every", "2"]


def main(w, *extra):
    return train.main(TINY + ["--weights-dir", str(w)] + list(extra))


def error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished 1-epoch run (4 steps), copied by the tests that change it."""
    w = tmp_path_factory.mktemp("run") / "w"
    assert train.main(TINY + ["--weights-dir", str(w), "--epochs", "1"]) == 0
    return w


def copy_run(one_epoch, tmp_path):
    return Path(shutil.copytree(one_epoch, tmp_path / "w"))


def test_a_fresh_run_refuses_a_used_folder_and_overwrite_replaces_it(one_epoch, tmp_path, capsys):
    w = copy_run(one_epoch, tmp_path)
    before = load_run(w / "epoch_1")[0]
    assert main(w, "--epochs", "1", "--seed", "1") == EXIT_USER_ERROR
    assert "--overwrite" in error_line(capsys)
    assert all((before[k] == load_run(w / "epoch_1")[0][k]).all() for k in before)
    (w / "epoch_7").mkdir()  # the old run's files go first
    assert main(w, "--epochs", "1", "--seed", "1", "--overwrite") == 0
    assert sorted(p.name for p in w.iterdir()) == ["epoch_1", "history.json", "samples"]
    assert [p.name for p in (w / "samples").iterdir()] == ["epoch_001.png"]  # the old run's grids are gone
    assert any((before[k] != load_run(w / "epoch_1")[0][k]).any() for k in before)


def test_a_second_run_in_a_locked_folder_stops_naming_the_holder(tmp_path, capsys):
    w = tmp_path / "w"
    w.mkdir()
    lock = rundir.Lock(w / RunDir.LOCK_FILE).acquire()
    try:
        assert main(w, "--epochs", "1") == EXIT_USER_ERROR
        assert f"pid {os.getpid()}" in error_line(capsys)
    finally:
        lock.release()
    (w / RunDir.LOCK_FILE).write_text("pid 999999999 on elsewhere\n")  # left by a killed run: taken over
    assert main(w, "--epochs", "1") == 0 and not (w / RunDir.LOCK_FILE).exists()


def signal_at_step(monkeypatch, step, signum):
    real_step = VAE.train_step
    calls = []

    def step_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            os.kill(os.getpid(), signum)
        return real_step(*args, **kwargs)
    monkeypatch.setattr(VAE, "train_step", step_then_signal)


def test_sigterm_saves_and_exits_143(tmp_path, monkeypatch, capsys):
    signal_at_step(monkeypatch, 2, signal.SIGTERM)
    assert main(tmp_path / "w", "--epochs", "1") == 143
    assert "Stopped by SIGTERM at step 2" in capsys.readouterr().out
    assert RunDir.is_complete(tmp_path / "w" / "interrupted")


def test_ctrl_c_in_the_last_step_of_an_epoch_says_so_and_exits_130(tmp_path, monkeypatch, capsys):
    signal_at_step(monkeypatch, 4, signal.SIGINT)
    assert main(tmp_path / "w", "--epochs", "2") == 130
    assert "Stopped by SIGINT at step 4" in capsys.readouterr().out
    assert RunDir.is_complete(tmp_path / "w" / "epoch_1")


def test_a_second_ctrl_c_during_the_save_neither_raises_nor_loses_it(tmp_path, monkeypatch, capsys):
    signal_at_step(monkeypatch, 2, signal.SIGINT)
    real_save = checkpoints.save_checkpoint

    def save_under_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        return real_save(*args, **kwargs)
    monkeypatch.setattr(checkpoints, "save_checkpoint", save_under_ctrl_c)
    assert main(tmp_path / "w", "--epochs", "1") == 130
    assert RunDir.is_complete(tmp_path / "w" / "interrupted")


class Killed(BaseException):
    """A kill, as far as the code after it is concerned: nothing catches it."""


@pytest.mark.parametrize("k", range(1, 7))
def test_a_save_killed_at_any_rename_leaves_a_resumable_checkpoint(one_epoch, tmp_path, monkeypatch, k):
    w = copy_run(one_epoch, tmp_path)
    config = checkpoints.saved_config(w / "epoch_1")
    state, progress = checkpoints.load_state(w / "epoch_1", config)
    calls = []
    real_replace = os.replace

    def replace_or_die(a, b):
        calls.append(1)
        if len(calls) == k:
            raise Killed
        real_replace(a, b)
    monkeypatch.setattr(os, "replace", replace_or_die)
    with pytest.raises(Killed):  # rewrites epoch_1 (as a resumed partial epoch does); 5 renames
        checkpoints.save_checkpoint(w / "epoch_1", state, config, dict(progress, step=99))
        raise Killed
    monkeypatch.setattr(os, "replace", real_replace)
    RunDir(w).recover()
    assert RunDir(w).resume_point() == w / "epoch_1"
    assert checkpoints.load_state(w / "epoch_1", config)[1]["step"] in (4, 99)
    assert not [p for p in w.iterdir() if p.name.startswith(".")]


KILL_SCRIPT = """
import os, sys
import train
k, calls, real = int(sys.argv[1]), [], os.replace
def replace_or_die(a, b):
    calls.append(1)
    if len(calls) == k:
        os.kill(os.getpid(), 9)
    real(a, b)
os.replace = replace_or_die
train.main(sys.argv[2:])
"""


@pytest.mark.slow
def test_sigkill_inside_a_save_then_resume_always_works(tmp_path):
    """A real SIGKILL at each rename of the first save of an interrupted run; --resume then works."""
    first = tmp_path / "first"  # 2 of the epoch's 4 steps, saved without a kill
    args = TINY + ["--weights-dir", str(first), "--epochs", "1", "--max-steps", "2"]
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, "0", *args], cwd=ROOT, timeout=300, capture_output=True)
    for k in range(1, 7):  # params, optimizer, trainer.json, folder -> .old, .tmp -> folder, history
        w = tmp_path / f"w{k}"
        shutil.copytree(first, w)
        args = TINY + ["--weights-dir", str(w), "--epochs", "1"]
        subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(k), *args, "--resume"], cwd=ROOT, timeout=300,
                       capture_output=True)
        assert train.main(args + ["--resume"]) == 0, k
        assert json.loads((w / "epoch_1" / "trainer.json").read_text())["step"] == 4


@pytest.mark.parametrize("flag,value", [("--beta", "-1"), ("--clip-norm", "-1"), ("--beta2", "1.5"),
                                        ("--lr", "-1"), ("--beta", "nan"), ("--lr", "inf"), ("--beta1", "1")])
def test_bad_values_are_refused_at_parse_time(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit:
        main(tmp_path / "w", flag, value)
    err = capsys.readouterr().err
    assert exit.value.code == EXIT_USER_ERROR and f"{flag}: expected" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("script,flag,value", [("evaluate", "--seed", "-1"), ("evaluate", "--traverse-steps", "1"),
                                               ("disentangle", "--seed", "-1"), ("disentangle", "--mig-bins", "1"),
                                               ("metrics", "--active-threshold", "-1"), ("load_data", "--limit", "0")])
def test_bad_values_of_the_analysis_scripts_are_refused_at_parse_time(tmp_path, capsys, script, flag, value):
    """Read with the flags, before any work: a negative seed used to end in NumPy's traceback."""
    with pytest.raises(SystemExit) as exit:
        importlib.import_module(script).main([flag, value, "--out-dir", str(tmp_path)] if script != "load_data"
                                             else [flag, value])
    err = capsys.readouterr().err
    assert exit.value.code == EXIT_USER_ERROR and f"{flag}: expected" in err and "Traceback" not in err


@pytest.mark.parametrize("flag,value,dataset", [("--data-dir", "mine", "shapes"), ("--split-file", "mine", "shapes"),
                                                ("--split-file", "mine", "celeba"), ("--crop", "100", "faces"),
                                                ("--crop", "none", "shapes"), ("--cache-dir", "mine", "faces")])
def test_a_file_flag_the_dataset_would_not_read_is_one_sentence(tmp_path, capsys, flag, value, dataset):
    """A flag about image files given with a dataset that would not read it is refused, not ignored."""
    (tmp_path / "mine").mkdir()
    value = str(tmp_path / value) if value == "mine" else value
    assert main(tmp_path / "w", "--dataset", dataset, flag, value, "--epochs", "1") == EXIT_USER_ERROR
    err = error_line(capsys)
    assert flag in err and "--dataset folder" in err
    assert not (tmp_path / "w").exists()
    assert load_data.main([flag, value]) == EXIT_USER_ERROR
    assert flag in error_line(capsys)


def test_nan_without_a_checkpoint_does_not_claim_one(tmp_path, monkeypatch, capsys):
    real_step = VAE.train_step
    monkeypatch.setattr(VAE, "train_step",
                        lambda *a, **kw: (lambda s, m: (s, dict(m, loss=np.nan)))(*real_step(*a, **kw)))
    assert main(tmp_path / "w", "--epochs", "1") == EXIT_USER_ERROR
    err = error_line(capsys)
    assert "no checkpoint was saved" in err and "--clip-norm" in err and "--beta" in err


def test_optimiser_flags_apply_on_resume_and_others_are_refused(one_epoch, tmp_path, capsys):
    w = copy_run(one_epoch, tmp_path)
    assert main(w, "--epochs", "2", "--resume", "--beta", "3") == EXIT_USER_ERROR
    assert "--beta cannot change" in error_line(capsys)
    assert main(w, "--epochs", "2", "--resume", "--lr", "0.0002", "--clip-norm", "5") == 0
    config = load_run(w / "epoch_2")[1].hparams
    assert config.adamw.lr == 0.0002 and config.clip_norm == 5
    history = json.loads((w / "history.json").read_text())
    assert history["changes"] == [{"step": 4, "lr": 0.0002, "clip_norm": 5.0}]
    assert history["steps"][-1]["lr"] == 0.0002


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_weights_folder_is_one_sentence(tmp_path, capsys):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    try:
        assert main(tmp_path / "ro" / "w", "--epochs", "1") == EXIT_USER_ERROR
        assert "--weights-dir" in error_line(capsys)
    finally:
        os.chmod(tmp_path / "ro", 0o755)


@pytest.mark.parametrize("failure", [MemoryError("Unable to allocate 1.12 TiB for an array"),
                                     RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 9 GiB"),
                                     RuntimeError("an unrelated fault")], ids=["numpy", "xla", "other"])
def test_running_out_of_memory_is_one_sentence_and_other_faults_are_not_hidden(tmp_path, monkeypatch, capsys, failure):
    def too_big(*_args, **_kwargs):
        raise failure
    monkeypatch.setattr(imagedata, "load", too_big)
    if "unrelated" in str(failure):
        with pytest.raises(RuntimeError, match="unrelated"):
            main(tmp_path / "w", "--epochs", "1")
        return
    assert main(tmp_path / "w", "--epochs", "1") == EXIT_USER_ERROR
    said = error_line(capsys)
    assert said.startswith("error: out of memory (") and "--batch-size" in said, said


@pytest.mark.parametrize("writer", [(checkpoints, "write_json"), (tensor_file, "write")], ids=["json", "tensors"])
def test_a_full_disk_during_a_save_is_one_sentence_and_leaves_no_temporaries(tmp_path, monkeypatch, capsys, writer):
    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(*writer, full)
    assert main(tmp_path / "w", "--epochs", "1") == EXIT_USER_ERROR
    assert "No space left" in error_line(capsys)
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.startswith(".")]


def garbage_config(folder):
    arrays, metadata = tensor_file.read(folder / RunDir.PARAMS_FILE)
    tensor_file.write(folder / RunDir.PARAMS_FILE, arrays, dict(metadata, config="{not json"))


def no_config(folder):
    arrays, metadata = tensor_file.read(folder / RunDir.PARAMS_FILE)
    tensor_file.write(folder / RunDir.PARAMS_FILE, arrays, {k: v for k, v in metadata.items() if k != "config"})


def truncated_optimizer(folder):
    data = (folder / RunDir.OPTIMIZER_FILE).read_bytes()
    (folder / RunDir.OPTIMIZER_FILE).write_bytes(data[: len(data) // 2])


def garbage_trainer(folder):
    (folder / "trainer.json").write_text("[1, 2]")


def garbage_history(folder):
    (folder.parent / "history.json").write_text('{"steps": 3, "epochs": null}')


@pytest.mark.parametrize("corrupt", [garbage_config, no_config, truncated_optimizer, garbage_trainer,
                                     garbage_history])
def test_corrupt_run_files_are_one_sentence(one_epoch, tmp_path, capsys, corrupt):
    w = copy_run(one_epoch, tmp_path)
    corrupt(w / "epoch_1")
    assert main(w, "--epochs", "2", "--resume") == EXIT_USER_ERROR
    error_line(capsys)


def test_resume_from_picks_another_checkpoint(one_epoch, tmp_path, capsys):
    w = copy_run(one_epoch, tmp_path)
    shutil.copytree(w / "epoch_1", w / "epoch_2")
    (w / "epoch_2" / "trainer.json").write_text('{"epoch": 2, "batch": 0, "step": 8}')
    truncated_optimizer(w / "epoch_2")
    assert main(w, "--epochs", "2", "--resume") == EXIT_USER_ERROR
    assert f"--resume-from {w / 'epoch_1'} " in error_line(capsys)
    assert main(w, "--epochs", "2", "--resume-from", str(w / "epoch_1")) == 0
    assert RunDir.is_complete(w / "epoch_2") and checkpoints.load_state(w / "epoch_2", checkpoints.saved_config(w / "epoch_2"))


@pytest.mark.parametrize("what", ["an empty folder", "a file"])
def test_resume_from_something_not_a_checkpoint_is_one_sentence(tmp_path, capsys, what):
    target = tmp_path / "not_a_checkpoint"
    target.mkdir() if what == "an empty folder" else target.write_text("x")
    assert main(tmp_path / "w", "--epochs", "1", "--resume-from", str(target)) == EXIT_USER_ERROR
    assert "not a complete checkpoint folder (model.safetensors, " in error_line(capsys)


def test_an_unusable_newest_checkpoint_names_the_older_one_and_overwrite_starts_afresh(one_epoch, tmp_path, capsys):
    w = copy_run(one_epoch, tmp_path)
    shutil.copytree(w / "epoch_1", w / "epoch_2")
    (w / "epoch_2" / "trainer.json").write_text('{"epoch": 2, "batch": 0, "step": 8}')
    params = w / "epoch_2" / RunDir.PARAMS_FILE
    params.write_bytes(params.read_bytes()[:100])
    assert main(w, "--epochs", "3", "--resume") == EXIT_USER_ERROR
    said = error_line(capsys)
    assert f"--resume-from {w / 'epoch_1'} " in said and "--overwrite" in said, said
    assert main(w, "--epochs", "1", "--overwrite") == 0
    assert sorted(p.name for p in w.iterdir()) == ["epoch_1", "history.json", "samples"]


# --------------------------------------------------------------------------- 7. and 9. caches

def test_a_killed_cache_build_leaves_nothing_for_the_next(celeba_copy, tmp_path):
    from imagedata import celeba as celeba_source
    npy_path, _ = celeba_source.split_cache_files("train", cache_dir=str(tmp_path / "cache"))
    os.makedirs(os.path.dirname(npy_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = [f"{npy_path}.{dead}.tmp", f"{npy_path}.{dead}.compact.tmp"]
    for path in stale:
        Path(path).write_bytes(b"x" * 1000)
    load_train(celeba_copy, tmp_path / "cache")
    assert not any(os.path.exists(p) for p in stale)


def test_a_full_disk_during_a_cache_build_is_one_sentence(celeba_copy, tmp_path, monkeypatch):
    from imagedata import cache

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cache.np.lib.format, "open_memmap", full)
    with pytest.raises(UserError, match="No space left on device") as err:
        load_train(celeba_copy, tmp_path / "cache")
    assert str(err.value).count(". ") == 0 and not list((tmp_path / "cache").iterdir())


def test_a_cache_larger_than_the_free_disk_is_refused_before_decoding(celeba_copy, tmp_path, monkeypatch, capsys):
    from collections import namedtuple

    from imagedata import cache
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda _folder: usage(2**30, 2**30 - 1000, 1000))
    with pytest.raises(UserError, match="the cache needs .* GiB but .* free") as err:
        load_train(celeba_copy, tmp_path / "cache")
    assert str(err.value).count(". ") == 0 and not list((tmp_path / "cache").iterdir())
    monkeypatch.undo()
    assert len(load_train(celeba_copy, tmp_path / "cache")) > 0  # with the space there, the same call builds it


def test_an_image_size_a_cache_cannot_hold_is_refused_by_the_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        load_data.main(["--dataset", "faces", "--image-size", "100000"])
    assert exit_.value.code == EXIT_USER_ERROR
    assert "from 8 to 1024" in capsys.readouterr().err


def test_a_split_the_partition_leaves_empty_says_how_to_leave_it_out(celeba_copy, tmp_path):
    partition = celeba_copy / "list_eval_partition.txt"
    partition.write_text("".join(f"{line.split()[0]} 0\n" for line in partition.read_text().splitlines()))
    with pytest.raises(UserError, match=r"the val split .* has no images .*--val-images 0") as err:
        load_split("celeba", "val", data_dir=str(celeba_copy), cache_dir=str(tmp_path / "cache"), progress=False)
    assert "\n" not in str(err.value)


def test_a_checkpoint_does_not_choose_where_scripts_write_caches():
    import cli
    import evaluate
    recorded = imagedata.DataOptions("celeba", data_dir="/x", crop=100, cache_dir="/somewhere/else", limit=50)
    parser = evaluate.build_parser()
    assert cli.data_options(parser.parse_args([]), recorded).cache_dir is None
    assert cli.data_options(parser.parse_args([]), recorded).data_dir == "/x"
    assert cli.data_options(parser.parse_args(["--cache-dir", "/mine"]), recorded).cache_dir == "/mine"


def test_a_weights_folder_that_cannot_be_made_is_one_sentence(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(tmp_path / "file" / "w", "--epochs", "1") == EXIT_USER_ERROR
    assert "--weights-dir" in error_line(capsys)


def test_too_little_free_space_is_said_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    assert main(tmp_path / "w", "--epochs", "1") == EXIT_USER_ERROR
    assert "free" in error_line(capsys) and not (tmp_path / "w" / "epoch_1").exists()


def test_ctrl_c_before_training_starts_is_one_line(monkeypatch, capsys, tmp_path):
    """Ctrl-C while the data loads or the step compiles: one line and 130, no traceback."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(imagedata, "load", interrupted)
    assert main(tmp_path / "w", "--epochs", "1") == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err


def test_ctrl_c_between_two_figures_says_the_written_one_is_complete(one_epoch, monkeypatch, capsys, tmp_path):
    import evaluate
    from analysis import figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(figures, "samples_grid", interrupted)
    assert evaluate.main(["--weights-dir", str(one_epoch), "--out-dir", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("interrupted (Ctrl-C); each file written before it is complete, and nothing "
                                    "half-written is left.") and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [evaluate.RECONSTRUCTION_FILE]


def test_resume_keeps_the_runs_data_and_refuses_other_data_flags(one_epoch, tmp_path, capsys):
    """A plain --resume continues on the checkpoint's dataset; --dataset, --limit or --crop asking
    for other images is refused in one sentence, never mixed into the run."""
    w = copy_run(one_epoch, tmp_path)
    for flags, named in ((["--dataset", "faces"], "--dataset"), (["--limit", "64"], "--limit"),
                         (["--crop", "100"], "--crop")):
        assert train.main(["--weights-dir", str(w), "--no-progress", "--epochs", "2", "--resume"] + flags) \
            == EXIT_USER_ERROR
        assert f"{named} cannot change" in error_line(capsys)
    assert train.main(["--weights-dir", str(w), "--no-progress", "--epochs", "2", "--resume"]) == 0
    assert load_run(w / "epoch_2")[1].data.dataset == "shapes"
