"""The README's commands cannot rot: its flags exist, and its "run it" line works at a reduced size."""
import importlib
import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def bash_blocks():
    return re.findall(r"```bash\n(.*?)```", README, re.DOTALL)


def python_commands(text):
    """[(script, [args])] of every `python X.py ...` in a shell text (joined with &&, ;, |)."""
    commands = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for part in re.split(r"&&|;|\|", line):
            words = shlex.split(part)
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]  # leading VAR=value assignments
            if len(words) >= 2 and words[0] in ("python", "python3") and words[1].endswith(".py"):
                commands.append((words[1], words[2:]))
    return commands


def help_text(script, capsys):
    module = importlib.import_module(Path(script).stem)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_readme_has_the_two_commands():
    blocks = bash_blocks()
    assert any("python -m pytest" in b and 'pip install -e ".[test]"' in b for b in blocks)
    run_it = blocks[0]
    assert "python train.py --dataset faces" in run_it and "pip install -e ." in run_it
    assert (ROOT / ".ci" / "run").read_text().count('pip install -e ".[test]" && python -m pytest') == 1


def test_every_flag_in_the_readme_exists(capsys):
    commands = [c for block in bash_blocks() for c in python_commands(block)]
    assert len(commands) >= 6
    for script, args in commands:
        if "/" in script:  # benchmarks and experiments: not importable by name
            continue
        assert (ROOT / script).is_file(), script
        text = help_text(script, capsys)
        for flag in (a.split("=", 1)[0] for a in args if a.startswith("--")):
            assert flag in text, f"README uses {script} {flag}, which --help does not list"


# flags that shrink each step of the "run it" line to seconds, and send its files to tmp_path
REDUCED = {
    "train.py": ["--max-steps", "4", "--limit", "256", "--batch-size", "32", "--val-images", "64",
                 "--channels", "4", "8", "8", "--latent-dim", "4", "--no-progress"],
    "evaluate.py": ["--num-images", "4", "--num-samples", "4", "--traverse-dims", "2", "--rank-images", "32"],
    "metrics.py": ["--num-images", "32"],
    "interpolate.py": ["--steps", "3"],
    "plots.py": [],
}


@pytest.mark.slow
def test_the_run_it_line_works_at_a_reduced_size(tmp_path, monkeypatch):
    commands = python_commands(bash_blocks()[0])
    assert [c[0] for c in commands] == ["train.py", "evaluate.py", "metrics.py", "interpolate.py", "plots.py"]
    monkeypatch.chdir(tmp_path)  # weights/ and results/ land here, as they would in a fresh clone
    for script, args in commands:
        module = importlib.import_module(Path(script).stem)
        assert module.main(args + REDUCED[script]) == 0, script
    for name in ("reconstruction_grid.png", "generated_faces.png", "latent_traversals.png",
                 "latent_interpolation.png", "loss_curves.png"):
        with Image.open(tmp_path / "results" / name) as image:
            image.verify()
    assert (tmp_path / "results" / "metrics.json").is_file()
    assert (tmp_path / "weights" / "epoch_1" / "model.safetensors").is_file()
