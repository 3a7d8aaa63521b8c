"""docs/pytorch.md runs: bvaex weights load into PyTorch strictly with equal outputs, and a PyTorch
state_dict saved with safetensors serves every command and starts a run (needs torch)."""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "pytorch.md").read_text()

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors.torch")


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", PAGE, re.DOTALL)


@pytest.fixture
def page(tmp_path, monkeypatch):
    """The page's Python blocks run in order in one namespace, in a folder holding the shipped model."""
    (tmp_path / "pretrained").symlink_to(ROOT / "pretrained", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    scope = {}
    for code in blocks("python"):
        exec(compile(code, "docs/pytorch.md", "exec"), scope)
    return scope


def test_the_page_runs_and_its_outputs_agree(page):
    assert len(blocks("python")) == 3
    assert page["config"].model.latent_dim == 32  # the last block's PyTorch model, read from its shapes
    state = page["vae"].state_dict()
    assert list(state) == list(page["params"])  # the same names, in the model's order


def test_a_state_dict_from_pytorch_serves_the_commands(page, tmp_path, capsys):
    import evaluate
    import interpolate
    import metrics
    import train
    reduced = {"evaluate.py": ["--num-images", "4", "--num-samples", "4", "--traverse-dims", "2", "--rank-images", "16"],
               "metrics.py": ["--num-images", "16", "--baseline-images", "16"], "interpolate.py": ["--steps", "2"],
               "train.py": ["--max-steps", "2", "--limit", "64", "--batch-size", "32", "--val-images", "0",
                            "--no-progress", "--no-samples"]}
    modules = {"evaluate.py": evaluate, "metrics.py": metrics, "interpolate.py": interpolate, "train.py": train}
    commands = [shlex.split(line) for line in blocks("bash")[0].strip().splitlines()]
    for _, script, *args in commands:
        assert modules[script].main(args + reduced[script]) == 0, script
    from training import load_run
    params, config = load_run(weights_dir=tmp_path / "weights_from_torch")
    assert config.model.latent_dim == 32 and config.data.dataset == "faces"
    start = page["torch_vae"].state_dict()
    assert any(not np.allclose(params[k], start[k].numpy()) for k in params)  # trained from it, two steps


def test_wrong_names_from_pytorch_are_one_sentence(page, tmp_path, capsys):
    import evaluate
    from safetensors.torch import save_file
    state = {k.replace("conv1", "first"): v for k, v in page["torch_vae"].state_dict().items()}
    save_file(state, str(tmp_path / "renamed.safetensors"))
    assert evaluate.main(["--weights", str(tmp_path / "renamed.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
