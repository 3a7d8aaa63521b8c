"""The model in the box: a fresh clone's scripts use it, it meets its card, and its folder is a hub's."""
import json
from pathlib import Path

import pytest

import cli
import evaluate
import interpolate
import metrics
import plots
from model import tensor_file
from training import RunDir, TrainConfig, load_run

SHIPPED = cli.SHIPPED_MODEL


def test_the_folder_has_the_layout_model_hubs_use():
    for name in ("model.safetensors", "config.json", "README.md", "history.json", "metrics.json",
                 "disentanglement.json"):
        assert (SHIPPED / name).is_file(), name
    dtypes = tensor_file.dtypes(SHIPPED / RunDir.PARAMS_FILE)
    assert set(dtypes.values()) == {"F32"} and (SHIPPED / RunDir.PARAMS_FILE).stat().st_size < 16 * 2 ** 20
    params, config = load_run(SHIPPED)
    assert config == TrainConfig.from_dict(json.loads((SHIPPED / "config.json").read_text()))
    assert config.data.dataset == "faces" and config.model == TrainConfig().model  # the seed architecture


def test_it_meets_the_targets_its_card_states():
    m = json.loads((SHIPPED / "metrics.json").read_text())
    assert m["num_images"] == 1000 and m["split"] == "test"
    assert m["ssim"] >= 0.93 and m["psnr"] >= 31.0
    assert m["recon_loss"] <= 0.025 * m["baselines"]["mean_image"]["recon_loss"]
    card = (SHIPPED / "README.md").read_text()
    for number in (f"{m['ssim']:.4f}", f"{m['psnr']:.2f}", f"{m['recon_loss']:.2f}"):
        assert number in card  # the card is written from the metrics file


@pytest.mark.slow
def test_a_fresh_clone_evaluates_the_shipped_model_without_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no weights/ here
    runs = [(evaluate, ["--num-images", "4", "--num-samples", "4", "--traverse-dims", "2", "--rank-images", "32"]),
            (metrics, ["--num-images", "32", "--baseline-images", "32"]), (interpolate, ["--steps", "2"]),
            (plots, [])]
    for script, args in runs:
        assert script.main(args) == 0, script.__name__
        err = capsys.readouterr().err
        assert err.count("note: no run in weights/ yet") == 1 and err.count("\n") == 1, err
    assert json.loads((tmp_path / "results" / "metrics.json").read_text())["checkpoint"].endswith(
        str(Path("pretrained") / "faces" / "model.safetensors"))
    assert (tmp_path / "results" / "loss_curves.png").is_file()
