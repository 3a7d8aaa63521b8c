"""Error paths no other test reaches, each through its command: one sentence and exit code 2.

A message is code too: one that names a missing attribute or formats a wrong type is a traceback
in the very place the user needed a sentence. Each case sets up one bad input in a fresh folder.
"""
import jax
import numpy as np
import pytest
from PIL import Image

import evaluate
import interpolate
import load_data
import plots
import train
from model import Architecture, init_params, save_params
from system.errors import EXIT_USER_ERROR
from training import TrainConfig

from test_reliability import error_line

TINY = ["--dataset", "shapes", "--limit", "64", "--batch-size", "32", "--val-images", "0", "--channels", "4", "8",
        "8", "--latent-dim", "4", "--no-progress", "--epochs", "1"]
SMALL = Architecture(channels=(4, 8, 8), latent_dim=4)


def params_file(path, config, architecture=SMALL):
    save_params(path, {k: np.asarray(v) for k, v in init_params(jax.random.PRNGKey(0), architecture).items()},
                config)
    return path


def images(folder, count, size=40):
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full((size, size, 3), 20 * i, np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def history(tmp_path, text):
    (tmp_path / "history.json").write_text(text)
    return plots.main(["--history", str(tmp_path / "history.json"), "--out-dir", str(tmp_path / "o")])


def config_of(**fields):
    return dict(TrainConfig.for_dataset("shapes", channels=(4, 8, 8), latent_dim=4).as_dict(), **fields)


def evaluate_weights(tmp_path, config, *extra, architecture=SMALL):
    path = params_file(tmp_path / "model.safetensors", config, architecture)
    return evaluate.main(["--weights", str(path), "--out-dir", str(tmp_path / "o"), *extra])


def split_file_run(tmp_path, lines):
    folder = images(tmp_path / "imgs", 4)
    (tmp_path / "split.txt").write_text(lines)
    return train.main(TINY[2:] + ["--dataset", "folder", "--data-dir", str(folder), "--split-file",
                                  str(tmp_path / "split.txt"), "--cache-dir", str(tmp_path / "c"),
                                  "--weights-dir", str(tmp_path / "w")])


def celeba_run(tmp_path, names, partition):
    root = tmp_path / "celeba"
    images(root / "img_align_celeba", 0)
    for name in names:
        Image.fromarray(np.zeros((218, 178, 3), np.uint8)).save(root / "img_align_celeba" / name)
    (root / "list_eval_partition.txt").write_text(partition)
    return load_data.main(["--dataset", "celeba", "--data-dir", str(root), "--cache-dir", str(tmp_path / "c"),
                           "--no-progress"])


CASES = {
    "history not JSON": (lambda t: history(t, "{not json"), "is not readable JSON"),
    "history epochs without numbers": (lambda t: history(t, '{"epochs": [{"loss": 1}]}'), "without an epoch number"),
    "config not JSON": (lambda t: _raw_config(t, "{oops"), "is not JSON"),
    "config not an object": (lambda t: _raw_config(t, "[1, 2]"), "is not a JSON object"),
    "config from a newer bvaex": (lambda t: evaluate_weights(t, config_of(format=99)), "newer than this bvaex"),
    "model of other images": (lambda t: evaluate_weights(t, {}, architecture=Architecture(
        channels=(4, 8, 8), latent_dim=4, image_size=32)), "was trained on (3, 32, 32)"),
    "traverse index past the images": (lambda t: evaluate_weights(t, {}, "--dataset", "shapes", "--limit", "3",
                                                                  "--rank-images", "3", "--num-images", "3",
                                                                  "--traverse-index", "5"),
                                       "--traverse-index 5"),
    "data dir a file": (lambda t: train.main(TINY[2:] + ["--dataset", "folder", "--data-dir", str(_file(t)),
                                                         "--weights-dir", str(t / "w")]), "is not a folder"),
    "split file lists nothing": (lambda t: split_file_run(t, ""), "lists no images"),
    "split file leaves train empty": (lambda t: split_file_run(t, "000.png val\n001.png test\n"),
                                      "train split of the 4 images"),
    "no image decodes": (lambda t: _garbage_images_run(t), "could be decoded"),
    "celeba folder of other names": (lambda t: celeba_run(t, ["a.jpg"], "000001.jpg 0\n"), "holds no CelebA images"),
    "celeba partition empty": (lambda t: celeba_run(t, ["000001.jpg"], ""), "is empty"),
    "overwrite and resume": (lambda t: train.main(TINY + ["--weights-dir", str(t / "w"), "--overwrite", "--resume"]),
                             "give one of them"),
    "init-from and resume": (lambda t: train.main(TINY + ["--weights-dir", str(t / "w"), "--resume", "--init-from",
                                                          str(params_file(t / "p.safetensors", {}))]),
                             "give one of them"),
    "both kinds of pairs": (lambda t: interpolate.main(["--pairs", "0:1", "--index-a", "2", "--out-dir", str(t)]),
                            "not both"),
    "pair files and indices": (lambda t: interpolate.main(["--pair", "a.png", "b.png", "--pairs", "0:1",
                                                           "--out-dir", str(t)]), "not both"),
}


def _raw_config(tmp_path, text):
    from model import tensor_file
    path = params_file(tmp_path / "model.safetensors", {})
    arrays, _ = tensor_file.read(path)
    tensor_file.write(path, arrays, {"config": text})
    return evaluate.main(["--weights", str(path), "--out-dir", str(tmp_path / "o")])


def _file(tmp_path):
    (tmp_path / "a_file").write_text("x")
    return tmp_path / "a_file"


def _garbage_images_run(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(b"not a jpeg at all")
    return load_data.main(["--dataset", "folder", "--data-dir", str(folder), "--cache-dir", str(tmp_path / "c"),
                           "--splits", "train", "--no-progress"])


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_path_is_one_sentence(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no weights/ or data/ of the checkout's
    run, needle = CASES[case]
    assert run(tmp_path) == EXIT_USER_ERROR
    said = error_line(capsys)
    assert needle in said, said


def test_a_bad_process_count_in_the_environment_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    assert train.main(TINY + ["--weights-dir", str(tmp_path / "w"), "--distributed"]) == EXIT_USER_ERROR
    assert "$JAX_NUM_PROCESSES must be a whole number" in error_line(capsys)


def test_a_history_that_cannot_be_written_is_one_sentence(tmp_path, capsys, monkeypatch):
    from training import rundir

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(rundir, "atomic_write", full)
    assert train.main(TINY + ["--weights-dir", str(tmp_path / "w")]) == EXIT_USER_ERROR
    said = error_line(capsys)
    assert "history.json" in said and "--resume" in said, said

