"""The analysis scripts end to end on a checkpoint trained for a few steps, and their pieces."""
import argparse
import json
import math

import jax
import numpy as np
import pytest

from system.errors import EXIT_USER_ERROR, UserError
from PIL import Image

import evaluate
from analysis import curves, figures, latents
import interpolate
import metrics
import plots
import cli
import imagedata
from imagedata import shapes
from model import init_params, init_state, load_params, save_params, train_step

SMALL = {"in_channels": 3, "channels": [8, 16, 32], "latent_dim": 8, "image_size": 64}
DATA = {"dataset": "shapes", "data_dir": None, "crop": 148, "cache_dir": None, "limit": None}


def _config(beta=0.5, model=SMALL):
    return {"model": dict(model), "train": {"beta": beta, "lr": 1e-3, "batch_size": 16, "epochs": 2, "seed": 0},
            "data": dict(DATA)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """weights/epoch_{1,2}/params.npz of a small model trained 2 + 2 steps on shapes, and a history."""
    root = tmp_path_factory.mktemp("run")
    weights = root / "weights"
    images, _ = shapes.make_split("train", 32)
    epochs, steps = [], []
    state = init_state(init_params(jax.random.PRNGKey(0), channels=tuple(SMALL["channels"]),
                                   latent_dim=SMALL["latent_dim"]), beta=0.5, lr=2e-3)
    for step in range(1, 5):
        batch = images[(step % 2) * 16:(step % 2) * 16 + 16]
        state, m = train_step(state, batch, jax.random.PRNGKey(step))
        m = {k: float(v) for k, v in m.items()}
        steps.append({"step": step, "epoch": 1 + (step - 1) // 2, "loss": m["loss"], "recon": m["recon"],
                      "kl": m["kl"], "grad_norm": m["grad_norm"], "lr": 2e-3, "wall_time": step,
                      "images_per_s": 100.0})
        if step % 2 == 0:
            epoch = step // 2
            epochs.append({"epoch": epoch, "step": step, "train_loss": m["loss"], "train_recon": m["recon"],
                           "train_kl": m["kl"], "val_loss": 1.1 * m["loss"], "val_recon": 1.1 * m["recon"],
                           "val_kl": m["kl"], "wall_time": step, "images_per_s": 100.0})
            save_params(weights / f"epoch_{epoch}" / "params.npz", state.params, _config())
    (weights / "history.json").write_text(json.dumps({"config": _config(), "epochs": epochs, "steps": steps}))
    return root


def _png_size(path):
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        return im.size


def _checkpoint(run_dir, weights=None):
    return cli.load_checkpoint(argparse.Namespace(weights=weights, weights_dir=str(run_dir / "weights")))


def _common(run_dir, out):
    return ["--weights-dir", str(run_dir / "weights"), "--out-dir", str(out)]


# --------------------------------------------------------------------------- #
# End to end
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_evaluate_writes_three_figures(run_dir, tmp_path, capsys):
    # 8 everywhere (2 dims x 4 steps = 8 decodes) so that encode/decode compile for one batch size.
    argv = _common(run_dir, tmp_path) + ["--num-images", "8", "--num-samples", "8", "--rank-images", "8",
                                          "--traverse-dims", "2", "--traverse-steps", "4", "--seed", "1",
                                          "--traverse-index", "3"]
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    assert "epoch_2" in out  # the newest checkpoint by default
    size = _png_size(tmp_path / evaluate.RECONSTRUCTION_FILE)
    assert size == figures.grid_pixel_size(2, 8, row_labels=True, col_labels=True, title=True)
    assert size == (figures.ROW_LABEL_PX + 8 * 128 + 7 * figures.GAP + figures.MARGIN_PX,
                    figures.TITLE_PX + figures.COL_LABEL_PX + 2 * 128 + figures.GAP + figures.MARGIN_PX)
    assert _png_size(tmp_path / evaluate.SAMPLES_FILE) == figures.grid_pixel_size(3, 3, title=True)  # 8 -> 3x3
    assert _png_size(tmp_path / evaluate.TRAVERSAL_FILE) == figures.grid_pixel_size(
        2, 5, row_labels=True, col_labels=True, title=True, col_breaks=(0,))
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_prior_samples_are_seeded(run_dir):
    ckpt = _checkpoint(run_dir)
    a = figures.prior_samples(ckpt.params, 8, seed=3)
    b = figures.prior_samples(ckpt.params, 8, seed=3)
    c = figures.prior_samples(ckpt.params, 8, seed=4)
    assert a.shape == (8, 3, 64, 64) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0


@pytest.mark.slow
def test_metrics_json_and_table(run_dir, tmp_path, capsys):
    argv = _common(run_dir, tmp_path) + ["--num-images", "16",
                                          "--weights", str(run_dir / "weights" / "epoch_1")]
    assert metrics.main(argv) == 0
    out = capsys.readouterr().out
    assert "| SSIM" in out and "global SSIM (seed's definition" in out and "| PSNR" in out
    m = json.loads((tmp_path / metrics.METRICS_FILE).read_text())
    for key in ("ssim", "ssim_global", "psnr", "recon_loss", "kl", "elbo", "beta", "channel_means", "active_units",
                "kl_per_dim", "split", "num_images", "checkpoint", "epoch", "dataset"):
        assert key in m, key
    assert -1.0 <= m["ssim"] <= 1.0 and -1.0 <= m["ssim_global"] <= 1.0
    assert math.isfinite(m["psnr"]) and m["psnr"] > 0
    assert m["recon_loss"] > 0 and m["kl"] >= 0
    assert m["elbo"] == pytest.approx(m["recon_loss"] + 0.5 * m["kl"])
    assert 0 <= m["active_units"] <= m["latent_dim"] == 8
    assert len(m["kl_per_dim"]) == 8 and sum(m["kl_per_dim"]) == pytest.approx(m["kl"], rel=1e-4, abs=1e-6)
    assert len(m["channel_means"]["reconstruction"]) == len(m["channel_means"]["original"]) == 3
    assert m["split"] == "test" and m["num_images"] == 16 and m["epoch"] == 1 and m["dataset"] == "shapes"
    assert set(m["baselines"]) == {"mean_image", "black"} and "mean image (baseline)" in out
    for baseline in m["baselines"].values():
        assert {"recon_loss", "ssim", "ssim_global", "psnr", "channel_means"} <= set(baseline)


@pytest.mark.slow
def test_metrics_match_a_direct_computation(run_dir):
    """Chunked, padded evaluation equals one unchunked pass, and SSIM equals its definition."""
    from analysis.evaluation import compute_metrics
    from analysis.image_metrics import psnr, ssim
    from model import decode, encode
    ckpt = _checkpoint(run_dir)
    images, _ = shapes.make_split("test", 13)  # chunks of 8: the second one padded
    m = compute_metrics(ckpt.params, images, beta=2.0, size=8)
    x = images.astype(np.float32) / 255
    mu, logvar = encode(ckpt.params, x)
    x_hat = np.asarray(decode(ckpt.params, mu))
    assert m["recon_loss"] == pytest.approx(float(np.mean(np.sum((x_hat - x) ** 2, axis=(1, 2, 3)))), rel=1e-4)
    assert m["ssim"] == pytest.approx(float(np.mean(ssim(x_hat, x))), abs=1e-5)
    assert m["psnr"] == pytest.approx(float(np.mean(psnr(x_hat, x))), abs=1e-3)
    assert m["elbo"] == pytest.approx(m["recon_loss"] + 2.0 * m["kl"])
    assert m["channel_means"]["original"] == pytest.approx(list(x.mean(axis=(0, 2, 3))), abs=1e-5)


@pytest.mark.slow
def test_metrics_uses_all_when_the_split_is_smaller(run_dir, tmp_path, capsys):
    argv = _common(run_dir, tmp_path) + ["--num-images", "16", "--limit", "8"]
    assert metrics.main(argv) == 0
    captured = capsys.readouterr()
    assert "only 8 images" in captured.err
    m = json.loads((tmp_path / metrics.METRICS_FILE).read_text())
    assert m["num_images"] == 8 and m["num_images_requested"] == 16 and "only 8" in m["note"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolate_writes_the_figure(run_dir, tmp_path, mode):
    argv = _common(run_dir, tmp_path) + ["--pairs", "0:1", "2:3", "--steps", "2", "--mode", mode]
    assert interpolate.main(argv) == 0
    assert _png_size(tmp_path / interpolate.INTERPOLATION_FILE) == figures.grid_pixel_size(
        2, 6, row_labels=True, col_labels=True, title=True, col_breaks=(0, 4))


@pytest.mark.slow
def test_interpolate_draws_the_default_pairs_a_small_split_has(run_dir, tmp_path, capsys):
    assert interpolate.main(_common(run_dir, tmp_path) + ["--limit", "4", "--steps", "2"]) == 0
    assert "only 0:1 2:3 of the default pairs" in capsys.readouterr().err
    assert _png_size(tmp_path / interpolate.INTERPOLATION_FILE) == figures.grid_pixel_size(
        2, 6, row_labels=True, col_labels=True, title=True, col_breaks=(0, 4))
    assert interpolate.main(_common(run_dir, tmp_path) + ["--limit", "1"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 1 image, and an interpolation needs two" in err, err


@pytest.mark.slow
def test_interpolate_index_flags_and_bad_index(run_dir, tmp_path, capsys):
    assert interpolate.main(_common(run_dir, tmp_path) + ["--index-a", "2", "--index-b", "0", "--steps", "6"]) == 0
    assert _png_size(tmp_path / interpolate.INTERPOLATION_FILE) == figures.grid_pixel_size(
        1, 10, row_labels=True, col_labels=True, title=True, col_breaks=(0, 8))
    capsys.readouterr()
    assert interpolate.main(_common(run_dir, tmp_path) + ["--index-a", "7", "--limit", "4"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_plots_writes_loss_curves(run_dir, tmp_path, capsys):
    assert plots.main(["--weights-dir", str(run_dir / "weights"), "--out-dir", str(tmp_path)]) == 0
    expected = (round(curves.FIGSIZE[0] * curves.DPI), round(curves.FIGSIZE[1] * curves.DPI))
    assert _png_size(tmp_path / curves.CURVES_FILE) == expected
    history = run_dir / "weights" / "history.json"
    assert plots.main(["--history", str(history), "--out-dir", str(tmp_path / "log"), "--log"]) == 0
    assert _png_size(tmp_path / "log" / curves.CURVES_FILE) == expected


def test_plots_missing_or_empty_history(tmp_path, capsys):
    assert plots.main(["--weights-dir", str(tmp_path), "--out-dir", str(tmp_path)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "No training history" in err and "train.py" in err and err.count("\n") == 1
    (tmp_path / "history.json").write_text(json.dumps({"config": {}, "epochs": [], "steps": []}))
    assert plots.main(["--weights-dir", str(tmp_path), "--out-dir", str(tmp_path)]) == EXIT_USER_ERROR
    assert "no finished epoch" in capsys.readouterr().err
    assert not (tmp_path / curves.CURVES_FILE).exists()


def test_step_positions_fall_inside_their_epoch():
    epochs = [{"epoch": 1, "step": 4}, {"epoch": 2, "step": 8}]
    steps = [{"step": s, "epoch": 1 + (s - 1) // 4} for s in range(1, 9)]
    np.testing.assert_allclose(curves.step_positions(epochs, steps), np.arange(1, 9) / 4)
    no_steps = [{"epoch": 1}, {"epoch": 2}]
    np.testing.assert_allclose(curves.step_positions(no_steps, [{"epoch": 1}, {"epoch": 1}, {"epoch": 2}]),
                               [0.5, 1.0, 2.0])


# --------------------------------------------------------------------------- #
# Missing and wrong checkpoints
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("script", [evaluate, metrics, interpolate])
def test_missing_checkpoint_says_how_to_train(script, tmp_path, capsys):
    assert script.main(["--weights-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path)]) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "train.py" in captured.err and "No checkpoint" in captured.err
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_wrong_architecture_checkpoint(run_dir, tmp_path, capsys):
    params, _ = load_params(run_dir / "weights" / "epoch_1" / "params.npz")
    path = tmp_path / "weights" / "epoch_3" / "params.npz"
    save_params(path, params, _config(model=dict(SMALL, latent_dim=12)))
    with pytest.raises(UserError) as info:
        _checkpoint(tmp_path, weights=str(path))
    assert metrics.main(["--weights", str(path.parent), "--out-dir", str(tmp_path), "--num-images", "4"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"error: {info.value}\n" and "architecture" in err


# --------------------------------------------------------------------------- #
# Pieces
# --------------------------------------------------------------------------- #


def test_slerp_nearly_parallel_is_finite_with_exact_endpoints():
    rng = np.random.default_rng(0)
    a = rng.normal(size=16).astype(np.float32)
    for b in (a.copy(), a + np.float32(1e-7), 2.5 * a, -a, np.zeros(16, np.float32)):
        z = latents.slerp(a, b, np.linspace(0, 1, 7))
        assert np.all(np.isfinite(z))
        assert np.array_equal(z[0], a.astype(np.float64)) and np.array_equal(z[-1], b.astype(np.float64))
    z = latents.interpolate_latents(a, a + 1e-9, 8, "slerp")
    assert z.shape == (10, 16) and np.all(np.isfinite(z))


def test_slerp_keeps_the_norm_on_a_great_circle():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
    z = latents.slerp(a / 1.0, b / 2.0, np.linspace(0, 1, 5))
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0)
    np.testing.assert_allclose(z[2], [np.sqrt(0.5), np.sqrt(0.5), 0.0])


def test_linear_interpolation_endpoints_and_midpoint():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 8)).astype(np.float32)
    z = latents.interpolate_latents(a, b, 3, "linear")
    assert z.shape == (5, 8)
    assert np.array_equal(z[0], a.astype(np.float64)) and np.array_equal(z[-1], b.astype(np.float64))
    np.testing.assert_allclose(z[2], (a.astype(np.float64) + b) / 2)


def test_parse_pair():
    assert interpolate.parse_pair("3:7") == (3, 7)
    for bad in ("3", "a:b", "1:2:3", "-1:2"):
        with pytest.raises(Exception):
            interpolate.parse_pair(bad)


def test_traversal_ranks_dimensions_by_kl():
    # Hand-built posteriors: dimension 2 has the largest KL, then 0, then 3; 1 and 4 have none.
    mu = np.array([[1.0, 0.0, 3.0, 0.5, 0.0], [-1.0, 0.0, -3.0, 0.5, 0.0]])
    logvar = np.zeros_like(mu)
    from analysis.image_metrics import mean_kl_per_dimension
    kl = mean_kl_per_dimension(mu, logvar)
    np.testing.assert_allclose(kl, [0.5, 0.0, 4.5, 0.125, 0.0])
    assert list(latents.rank_dimensions(kl)) == [2, 0, 3, 1, 4]
    z = latents.traversal_latents(np.arange(5.0), [2, 0], [-3.0, 0.0, 3.0])
    assert z.shape == (2, 3, 5)
    np.testing.assert_array_equal(z[0, :, 2], [-3, 0, 3])
    np.testing.assert_array_equal(z[0][:, [0, 1, 3, 4]], np.tile([0.0, 1, 3, 4], (3, 1)))
    np.testing.assert_array_equal(z[1, :, 0], [-3, 0, 3])
    rel = latents.traversal_latents(np.arange(5.0), [4], [-1.0, 1.0], relative=True)
    np.testing.assert_array_equal(rel[0, :, 4], [3, 5])
    np.testing.assert_allclose(latents.traversal_values(9)[[0, 4, 8]], [-3, 0, 3])


def test_data_flags_override_the_checkpoint():
    parser = evaluate.build_parser()
    recorded = imagedata.DataOptions("celeba", data_dir="/x", crop=100, limit=50)
    assert cli.data_options(parser.parse_args([]), recorded).dataset == "celeba"
    opts = cli.data_options(parser.parse_args(["--dataset", "shapes", "--limit", "3"]), recorded)
    assert opts.dataset == "shapes" and opts.limit == 3 and opts.crop == 100


def test_grid_and_save_are_pixel_exact(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 3, 3, 16, 16), dtype=np.uint8)
    path = figures.image_grid(images, tmp_path / "g.png", scale=1)
    assert _png_size(path) == figures.grid_pixel_size(2, 3, 16, scale=1)
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))
    m = figures.MARGIN_PX
    top = pixels.shape[0] - m - (2 * 16 + figures.GAP)  # the picture sits on the bottom margin
    np.testing.assert_array_equal(pixels[top:top + 16, m:m + 16], images[0, 0].transpose(1, 2, 0))
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_baselines_are_right_on_a_tiny_set():
    """The mean-image and black baselines equal their definitions on a few random images."""
    from analysis.evaluation import baselines, mean_image
    from analysis.image_metrics import psnr, ssim
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (6, 3, 64, 64), dtype=np.uint8)
    test_images = rng.integers(0, 256, (5, 3, 64, 64), dtype=np.uint8)
    mean = mean_image(train_images, size=4)  # two chunks
    np.testing.assert_allclose(mean, train_images.mean(axis=0) / 255, rtol=1e-6)
    base = baselines(test_images, mean, size=2)
    x = test_images.astype(np.float64) / 255
    black_recon = np.mean(np.sum(x ** 2, axis=(1, 2, 3)))
    mean_recon = np.mean(np.sum((x - mean) ** 2, axis=(1, 2, 3)))
    assert base["black"]["recon_loss"] == pytest.approx(black_recon, rel=1e-5)
    assert base["mean_image"]["recon_loss"] == pytest.approx(mean_recon, rel=1e-5)
    x32, out = x.astype(np.float32), np.broadcast_to(mean, x.shape).astype(np.float32)
    assert base["mean_image"]["ssim"] == pytest.approx(float(np.mean(ssim(out, x32))), abs=1e-5)
    assert base["black"]["psnr"] == pytest.approx(float(np.mean(psnr(np.zeros_like(x32), x32))), abs=1e-3)
    assert base["black"]["channel_means"]["reconstruction"] == [0.0, 0.0, 0.0]
