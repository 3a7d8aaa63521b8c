"""disentangle.py and experiments/beta_sweep/beta_sweep.py end to end on a tiny model trained for a few steps."""
import argparse
import importlib.util
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from system.errors import UserError

import disentangle
from analysis.disentanglement import score
from system.errors import EXIT_USER_ERROR
from imagedata import shapes
import train
import training
import training.loop
from model import save_params
from training import load_run

pytestmark = pytest.mark.slow  # every test here trains a model

ROOT = Path(__file__).resolve().parents[1]
# One tiny architecture and batch size for every run here, so the train step compiles once.
TINY_ARCH = ["--channels", "4", "8", "8", "--latent-dim", "4", "--batch-size", "16"]
TINY_SIZES = ["--num-train", "24", "--num-test", "12", "--pairs", "4", "--mig-samples", "300"]


def _load_sweep():
    spec = importlib.util.spec_from_file_location("beta_sweep", ROOT / "experiments" / "beta_sweep" / "beta_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """A weights folder holding epoch_1/ of a tiny model trained 3 steps on shapes."""
    folder = tmp_path_factory.mktemp("run") / "weights"
    args = train.build_parser().parse_args(
        ["--dataset", "shapes", "--limit", "64", "--val-images", "0", "--epochs", "1", "--max-steps", "3",
         "--beta", "4", "--no-progress", "--weights-dir", str(folder)] + TINY_ARCH)
    training.train(train.config_from_args(args), weights_dir=folder, progress=False, log=lambda *_: None)
    return folder


def test_every_flag_has_help():
    for parser in (disentangle.build_parser(), _load_sweep().build_parser()):
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, action.dest


def test_scores_a_checkpoint_and_writes_json(weights_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert disentangle.main(["--weights-dir", str(weights_dir), "--out-dir", str(out), "--seed", "3"]
                            + TINY_SIZES) == 0
    printed = capsys.readouterr().out
    assert "| metric | value |" in printed and "β-VAE metric" in printed and "MIG" in printed
    assert "40 bins" in printed and "(β = 4)" in printed

    result = json.loads((out / disentangle.RESULTS_FILE).read_text())
    assert {"beta_vae", "mig", "active_units", "factors", "checkpoint", "seed"} <= set(result)
    b = result["beta_vae"]
    assert 0.0 <= b["train_accuracy"] <= 1.0 and 0.0 <= b["test_accuracy"] <= 1.0
    assert b["chance"] == pytest.approx(1 / 6)
    assert (b["num_train"], b["num_test"], b["pairs"]) == (24, 12, 4)
    g = result["mig"]
    assert g["bins"] == 40 and g["samples"] == 300
    assert 0.0 <= g["mig"] <= 1.0
    assert list(g["per_factor"]) == list(shapes.FACTOR_NAMES)
    assert all(0.0 <= v <= 1.0 for v in g["per_factor"].values())
    assert g["mig"] == pytest.approx(np.mean(list(g["per_factor"].values())))
    assert np.asarray(g["mi_matrix"]).shape == (4, 6)
    assert all(0 <= j < 4 for j in g["best_latent"].values())
    for name, size in zip(shapes.FACTOR_NAMES, shapes.FACTOR_SIZES):
        assert 0.0 < g["factor_entropy"][name] <= math.log(size) + 1e-9
    a = result["active_units"]
    assert 0 <= a["count"] <= a["latent_dim"] == 4 and len(a["variances"]) == 4
    assert result["checkpoint"]["epoch"] == 1 and result["checkpoint"]["beta"] == 4
    assert result["checkpoint"]["path"].endswith("epoch_1/model.safetensors")


def test_score_is_reproducible_from_its_seed(weights_dir):
    params = load_run(weights_dir=weights_dir)[0]
    sizes = dict(num_train=12, num_test=6, pairs=2, mig_samples=100)
    first, again = score(params, shapes, seed=7, **sizes), score(params, shapes, seed=7, **sizes)
    for key in ("beta_vae", "mig", "active_units"):
        assert first[key] == again[key]
    with pytest.raises(UserError):
        score(params, shapes, num_train=0)


def test_faces_are_scored_on_their_own_factors(weights_dir):
    from imagedata import faces
    params = load_run(weights_dir=weights_dir)[0]
    result = score(params, faces, seed=0, num_train=12, num_test=6, pairs=2, mig_samples=200)
    assert list(result["mig"]["per_factor"]) == list(faces.FACTOR_NAMES) and len(faces.FACTOR_NAMES) >= 8
    assert result["beta_vae"]["chance"] == pytest.approx(1 / len(faces.FACTOR_NAMES))
    assert np.asarray(result["mig"]["mi_matrix"]).shape == (4, len(faces.FACTOR_NAMES))


def test_missing_checkpoint_is_one_sentence_and_exit_1(tmp_path, capsys):
    assert disentangle.main(["--weights-dir", str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "out")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and err.endswith(".")
    assert "train.py --dataset faces" in err
    assert not (tmp_path / "out").exists()


def test_celeba_checkpoint_is_refused(weights_dir, tmp_path, capsys):
    params, config = load_run(weights_dir=weights_dir)
    path = tmp_path / "celeba.npz"
    save_params(path, params, replace(config, data=replace(config.data, dataset="celeba")).as_dict())
    assert disentangle.main(["--weights", str(path), "--out-dir", str(tmp_path / "out")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "celeba" in err and "factors are unknown" in err
    assert not (tmp_path / "out").exists()


def test_beta_sweep_runs_end_to_end(tmp_path, capsys):
    sweep = _load_sweep()
    work, out = tmp_path / "work", tmp_path / "results"
    argv = ["--betas", "1", "4", "--steps", "3", "--train-images", "64", "--test-images", "32",
            "--work-dir", str(work), "--out-dir", str(out)] + TINY_ARCH + TINY_SIZES
    assert sweep.main(argv) == 0
    table = (out / sweep.MARKDOWN_FILE).read_text()
    assert "| β | recon" in table and "β-VAE metric" in table and "MIG (40 bins)" in table
    rows = [line for line in table.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")]
    assert len(rows) == 4  # the main table and the per-factor table
    assert "3 steps of 16 images = **48 images seen**" in table
    assert "61.58 %" in table and "99.23 %" in table
    assert (out / sweep.PLOT_FILE).stat().st_size > 1000
    assert (work / ".gitignore").read_text().strip().endswith("*")
    raw = json.loads((work / sweep.RAW_FILE).read_text())
    assert [r["beta"] for r in raw["rows"]] == [1.0, 4.0]
    for r in raw["rows"]:
        assert r["steps"] == 3 and r["images_seen"] == 48
        assert r["recon"] > 0 and r["kl"] >= 0 and 0 <= r["active_units"] <= 4
        assert 0 <= r["beta_vae_test"] <= 1 and 0 <= r["mig"] <= 1
    capsys.readouterr()

    # A second run with --reuse scores the finished runs without training again.
    assert sweep.main(argv + ["--reuse"]) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    assert "reused from an earlier run" in (out / sweep.MARKDOWN_FILE).read_text()

    # --report-only rebuilds the table from the recorded rows, with a note under it.
    (out / sweep.MARKDOWN_FILE).unlink()
    assert sweep.main(argv + ["--report-only", "--note", "A note on the budget."]) == 0
    rebuilt = (out / sweep.MARKDOWN_FILE).read_text()
    assert "A note on the budget." in rebuilt and "| 4 |" in rebuilt
    assert sweep.main(["--report-only", "--work-dir", str(tmp_path / "empty"), "--out-dir", str(out)]) == EXIT_USER_ERROR
