"""docs/derivations.md stays true to the code: its references exist, its numbers are the script's,
and the gradient check it points to passes and can fail."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "derivations.md"
REFERENCE = re.compile(r"`([\w./-]+\.py)::([\w.]+)`")
LINE_RANGE = re.compile(r"`([\w./-]+\.py):(\d+)(?:-(\d+))?`")
BEGIN, END = "<!-- conv1d_example:begin -->", "<!-- conv1d_example:end -->"
LAYER_HEADINGS = ["Dense", "ReLU", "Sigmoid", "Conv2D", "TransposedConv2D", "Reparameterisation",
                  "ELBO: squared error and KL", "Gradient clipping", "AdamW", "Glorot initialisation"]

sys.path.insert(0, str(ROOT / "benchmarks"))


def page():
    return PAGE.read_text(encoding="utf-8")


def defined(path, dotted):
    """Whether ``dotted`` (function, class, or Class.method) is defined at the top of ``path``."""
    body = ast.parse((ROOT / path).read_text(encoding="utf-8")).body
    for part in dotted.split("."):
        found = [node for node in body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == part]
        if not found:
            return False
        body = found[0].body
    return True


def test_references_name_code_that_exists():
    references = REFERENCE.findall(page())
    assert len(set(references)) >= 25, f"only {len(set(references))} code references on the page"
    missing = [f"{path}::{name}" for path, name in sorted(set(references))
               if not (ROOT / path).is_file() or not defined(path, name)]
    assert not missing, f"the page names code that does not exist: {missing}"
    tests = {(path, name) for path, name in references if path.startswith("tests/")}
    assert len(tests) >= 10 and all(name.startswith("test_") for _, name in tests)
    for path, first, last in LINE_RANGE.findall(page()):
        lines = (ROOT / path).read_text(encoding="utf-8").count("\n") + 1
        assert 1 <= int(first) <= int(last or first) <= lines, f"{path}:{first}-{last} is outside the file"


def test_the_reference_check_can_fail():
    assert defined("model/dense.py", "Dense.backward") and defined("model/clip.py", "clip_by_value")
    assert not defined("model/dense.py", "Dense.no_such_method") and not defined("model/dense.py", "backward")
    assert REFERENCE.findall("see `model/conv.py::Conv2D.forward` and `tests/test_x.py::test_y`") == [
        ("model/conv.py", "Conv2D.forward"), ("tests/test_x.py", "test_y")]


def test_every_layer_has_a_section():
    headings = {line[3:].strip() for line in page().splitlines() if line.startswith("## ")}
    assert set(LAYER_HEADINGS) <= headings, f"missing sections: {set(LAYER_HEADINGS) - headings}"
    for heading in ("The path of one step", "The convolution worked on numbers", "The fast formulations",
                    "A check you can run"):
        assert heading in headings


def conv1d_block():
    text = page()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    return text.split(BEGIN)[1].split(END)[0].strip("\n")


def test_conv1d_block_is_the_script_output():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conv1d_example.py")], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert conv1d_block() == out.strip("\n"), "regenerate the block with python benchmarks/conv1d_example.py"


def test_conv1d_numbers_agree_with_jax_vjp():
    import conv1d_example
    conv1d_example.check_with_jax()


def run_check(*args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "check_gradients.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def relative_errors(output):
    return [float(e) for e in re.findall(r"\b(?:vjp|fd|formula)\s+([0-9.]+e[+-]\d+)", output)]


@pytest.mark.slow  # the whole script (20 s); its failing case below stays in the quick loop
def test_check_gradients_all_passes():
    result = run_check("all")
    assert result.returncode == 0, result.stdout + result.stderr
    errors = relative_errors(result.stdout)
    assert len(errors) >= 60, result.stdout
    assert max(errors) < 1e-6 and "FAIL" not in result.stdout
    for layer in ("dense", "relu", "sigmoid", "conv2d", "conv_transpose", "fast_conv", "reparameterize", "elbo",
                  "clip", "adamw", "model"):
        assert f"\n{layer}\n" in "\n" + result.stdout


def test_check_gradients_fails_on_a_wrong_gradient():
    result = run_check("--perturb", "1.001", "relu", "clip")
    assert result.returncode == 1 and "FAIL" in result.stdout, result.stdout + result.stderr


def test_the_comparison_catches_a_wrong_backward():
    import numpy as np
    import check_gradients
    good = np.arange(6.0).reshape(2, 3)
    assert check_gradients.relative_error(good, good) == 0.0
    assert check_gradients.relative_error(good * 0.5, good) == pytest.approx(0.5)  # the seed's extra 1/B at B = 2
    assert check_gradients.relative_error(good.T, good) == float("inf")  # a gradient of the wrong shape
    rows = check_gradients.compare(["w"], [good[::-1]], {"vjp": [good]})
    assert rows[0][1]["vjp"] > check_gradients.TOLERANCE["vjp"]


def test_check_gradients_help_lists_the_layers():
    result = run_check("--help")
    assert result.returncode == 0
    for name in ("dense", "conv2d", "conv_transpose", "elbo", "adamw", "all", "--perturb"):
        assert name in result.stdout
