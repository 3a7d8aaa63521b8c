"""train.py: checkpoints, exact resumption, failure messages, data-parallel equivalence."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from system.errors import EXIT_USER_ERROR, UserError

import train
import training
import training.loop
from model import VAE, count_params
from training import load_run

pytestmark = pytest.mark.slow  # every test here trains a model

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "shapes", "--limit", "128", "--batch-size", "32", "--val-images", "64",
        "--channels", "4", "8", "8", "--latent-dim", "4", "--no-progress", "--log-every", "2"]


def run(tmp_path, *extra, name="w"):
    args = train.build_parser().parse_args(TINY + ["--weights-dir", str(tmp_path / name)] + list(extra))
    return training.train(train.config_from_args(args), weights_dir=tmp_path / name, resume=args.resume,
                       keep=args.keep, progress=False, log=lambda *_: None)


def params_of(folder):
    return load_run(folder)[0]


def assert_same_params(a, b, rtol=1e-6):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-7, err_msg=k)


def test_run_writes_checkpoints_and_history(tmp_path):
    summary = run(tmp_path, "--epochs", "2")
    w = tmp_path / "w"
    assert sorted(p.name for p in w.iterdir()) == ["epoch_1", "epoch_2", "history.json"]
    for name in ("model.safetensors", "optimizer.safetensors", "trainer.json"):
        assert (w / "epoch_2" / name).is_file()
    history = json.loads((w / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert {"train_loss", "val_loss", "val_recon", "val_kl", "images_per_s", "wall_time"} <= set(history["epochs"][0])
    assert [s["step"] for s in history["steps"]] == list(range(1, 9))
    assert {"loss", "recon", "kl", "grad_norm", "lr", "wall_time", "images_per_s"} <= set(history["steps"][0])
    params, config = load_run(w / "epoch_2")
    assert config.run.batch_size == 32 and config.data.dataset == "shapes"
    assert config.model.latent_dim == 4
    assert_same_params(params, jax.device_get(summary["state"].params), rtol=0)
    assert summary["step"] == 8


def test_two_epochs_equal_one_epoch_plus_a_resumed_epoch(tmp_path):
    run(tmp_path, "--epochs", "2", name="straight")
    run(tmp_path, "--epochs", "1", name="split")
    run(tmp_path, "--epochs", "2", "--resume", name="split")
    assert_same_params(params_of(tmp_path / "straight" / "epoch_2"), params_of(tmp_path / "split" / "epoch_2"))
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    split = json.loads((tmp_path / "split" / "history.json").read_text())
    assert [s["step"] for s in split["steps"]] == [s["step"] for s in straight["steps"]]
    np.testing.assert_allclose([s["loss"] for s in split["steps"]], [s["loss"] for s in straight["steps"]], rtol=1e-5)


def test_max_steps_stops_mid_epoch_and_resumes_exactly(tmp_path):
    run(tmp_path, "--epochs", "2", name="straight")
    summary = run(tmp_path, "--epochs", "2", "--max-steps", "3", name="split")
    assert summary["step"] == 3 and (tmp_path / "split" / "epoch_1").is_dir()
    progress = json.loads((tmp_path / "split" / "epoch_1" / "trainer.json").read_text())
    assert progress == {**progress, "epoch": 0, "batch": 3, "step": 3}
    run(tmp_path, "--epochs", "2", "--resume", name="split")
    assert_same_params(params_of(tmp_path / "straight" / "epoch_2"), params_of(tmp_path / "split" / "epoch_2"))


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch):
    run(tmp_path, "--epochs", "1", name="straight")
    real_step, calls = VAE.train_step, []

    def step_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during step 2
        return real_step(*args, **kwargs)

    monkeypatch.setattr(VAE, "train_step", step_then_interrupt)
    summary = run(tmp_path, "--epochs", "1", name="split")
    monkeypatch.setattr(VAE, "train_step", real_step)
    assert summary["interrupted"] and summary["step"] == 2
    assert (tmp_path / "split" / "interrupted" / "model.safetensors").is_file()
    run(tmp_path, "--epochs", "1", "--resume", name="split")
    assert not (tmp_path / "split" / "interrupted").exists()
    assert_same_params(params_of(tmp_path / "straight" / "epoch_1"), params_of(tmp_path / "split" / "epoch_1"))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run(tmp_path, "--epochs", "1")
    before = params_of(tmp_path / "w" / "epoch_1")
    real_step = VAE.train_step

    def nan_at_step_6(vae, state, x, key, **kwargs):
        state, metrics = real_step(vae, state, x, key, **kwargs)
        if int(state.opt.step) == 6:
            metrics = dict(metrics, loss=jnp.nan)
        return state, metrics

    monkeypatch.setattr(VAE, "train_step", nan_at_step_6)
    with pytest.raises(UserError, match="at step 6"):
        run(tmp_path, "--epochs", "2", "--resume")
    assert not (tmp_path / "w" / "epoch_2").exists()
    assert_same_params(before, params_of(tmp_path / "w" / "epoch_1"), rtol=0)


def test_keep_prunes_old_checkpoints(tmp_path):
    run(tmp_path, "--epochs", "3", "--keep", "2")
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["epoch_2", "epoch_3", "history.json"]


@pytest.mark.parametrize("extra,message", [
    (["--resume"], "found no checkpoint"),
    (["--batch-size", "512"], "fewer than one batch"),
])
def test_clear_messages(tmp_path, capsys, extra, message):
    code = train.main(TINY + ["--weights-dir", str(tmp_path / "w")] + extra)
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_resume_with_another_architecture_is_refused(tmp_path, capsys):
    run(tmp_path, "--epochs", "1")
    code = train.main(TINY + ["--weights-dir", str(tmp_path / "w"), "--resume", "--latent-dim", "6"])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and "another architecture" in err and "Traceback" not in err


def test_missing_celeba_says_what_to_do(tmp_path, capsys):
    code = train.main(["--dataset", "celeba", "--data-dir", str(tmp_path / "nothing"), "--no-progress",
                       "--weights-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and "--dataset faces" in err and "Traceback" not in err


def test_defaults_are_the_seeds():
    config = train.config_from_args(train.build_parser().parse_args([]))
    assert config.data.dataset == "celeba"
    assert config.model.latent_dim == 128 and config.model.channels == (32, 64, 128)
    assert (config.run.epochs, config.run.batch_size) == (100, 512) and config.hparams.beta == 0.5
    assert tuple(config.hparams.adamw) == (1e-3, 0.9, 0.999, 1e-8, 0.01)
    recorded = config.as_dict()
    assert recorded["format"] == 2 and training.TrainConfig.from_dict(recorded) == config


def test_a_new_run_gets_the_seeds_architecture(tmp_path):
    config = train.config_from_args(train.build_parser().parse_args(["--dataset", "shapes", "--limit", "64",
                                                                      "--max-steps", "0", "--val-images", "0"]))
    summary = training.train(config, weights_dir=tmp_path, progress=False, log=lambda *_: None)
    assert summary["step"] == 0  # max_steps 0: the model is built, nothing is trained
    assert count_params(summary["state"].params) == 3_485_251


def test_resume_without_architecture_flags_takes_the_checkpoints(tmp_path):
    run(tmp_path, "--epochs", "1")
    args = train.build_parser().parse_args(["--dataset", "shapes", "--no-progress", "--epochs", "2", "--resume",
                                            "--weights-dir", str(tmp_path / "w")])
    assert args.latent_dim is None
    summary = training.train(train.config_from_args(args), weights_dir=tmp_path / "w", resume=True, progress=False,
                          log=lambda *_: None)
    assert summary["epoch"] == 2
    assert load_run(tmp_path / "w" / "epoch_2")[1].model.latent_dim == 4


TWO_DEVICE_SCRIPT = """
import json, sys
import jax, numpy as np
import train
import training
import training.loop
args = train.build_parser().parse_args(json.loads(sys.argv[1]))
summary = training.train(train.config_from_args(args), weights_dir=sys.argv[2], progress=False, log=lambda *_: None)
print(json.dumps({"devices": jax.device_count()}))
"""


def test_two_devices_train_like_one(tmp_path):
    """Data-parallel over 2 (forced host) devices gives the parameters of 1-device training."""
    args = TINY + ["--epochs", "1"]
    outputs = {}
    for devices in (1, 2):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
        result = subprocess.run([sys.executable, "-c", TWO_DEVICE_SCRIPT, json.dumps(args), str(tmp_path / f"d{devices}")],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout.strip().splitlines()[-1])["devices"] == devices
        outputs[devices] = params_of(tmp_path / f"d{devices}" / "epoch_1")
    assert_same_params(outputs[1], outputs[2], rtol=1e-4)


def test_bfloat16_compute_is_recorded_and_kept_on_resume(tmp_path):
    run(tmp_path, "--epochs", "1", "--compute-dtype", "bfloat16", name="bf16")
    run(tmp_path, "--epochs", "1", name="f32")
    assert load_run(tmp_path / "bf16" / "epoch_1")[1].run.compute_dtype == "bfloat16"
    bf16, f32 = params_of(tmp_path / "bf16" / "epoch_1"), params_of(tmp_path / "f32" / "epoch_1")
    assert all(v.dtype == np.float32 for v in bf16.values())  # master weights stay float32
    assert any(not np.array_equal(bf16[k], f32[k]) for k in bf16)  # and the pass did run in bfloat16
    for k in bf16:  # four steps apart only by rounding
        np.testing.assert_allclose(bf16[k], f32[k], atol=2e-3, err_msg=k)
    assert load_run(tmp_path / "f32" / "epoch_1")[1].run.compute_dtype == "float32"
    run(tmp_path, "--epochs", "2", "--resume", name="bf16")  # no flag: the checkpoint's dtype
    assert load_run(tmp_path / "bf16" / "epoch_2")[1].run.compute_dtype == "bfloat16"
    run(tmp_path, "--epochs", "3", "--resume", "--compute-dtype", "float32", name="bf16")  # the flag wins
    assert load_run(tmp_path / "bf16" / "epoch_3")[1].run.compute_dtype == "float32"
