"""The benchmarks run: the CPU table names its CPU, runs where torch is missing, and the GPU
session's script completes on a CPU in its quick form."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from system import cpu

ROOT = Path(__file__).resolve().parents[1]


def test_the_cpu_is_named_with_its_instruction_sets():
    line = cpu.describe()
    info = cpu.info()
    assert info["model"] and info["model"] in line and f"{info['cores']} cores" in line
    if Path("/proc/cpuinfo").exists() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "AVX2" in info["isa"]


@pytest.mark.slow
def test_train_step_benchmark_runs_without_torch(tmp_path):
    (tmp_path / "torch.py").write_text("raise ImportError('no torch on this machine')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "benchmarks/train_step.py", "--batch-size", "4", "--repeats", "1",
                          "--warmup", "0", "--no-autodiff", "--no-option-variants", "--matmul-size", "64"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("CPU: ") and "| manual |" in out.stdout
    assert "| PyTorch eager |" not in out.stdout and "torch" not in out.stdout.split("\n")[0]


@pytest.mark.slow
def test_the_gpu_session_script_completes_quickly_on_a_cpu(tmp_path):
    out = subprocess.run(["bash", "benchmarks/gpu_run.sh", str(tmp_path)], cwd=ROOT,
                         env=dict(os.environ, QUICK="1"), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "exit 0" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    results = json.loads((tmp_path / "gpu" / "gpu.json").read_text())
    assert "throughput" in results and any(k.startswith("manual") for k in results["throughput"])


@pytest.mark.slow
def test_layer_benchmark_marks_the_models_own_maps_beside_pytorchs():
    """Every map of every shape is timed once as the model computes it (one ``*`` row each) and
    beside PyTorch's two layouts; every candidate is checked against lax before timing."""
    out = subprocess.run([sys.executable, "benchmarks/layers.py", "--batch-size", "2", "--repeats", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| conv")]
    assert out.stdout.startswith("CPU: ")
    assert sum(line.split("|")[3].strip().endswith("*") for line in rows) == 9  # 3 shapes × 3 maps
    assert sum("PyTorch" in line for line in rows) == 18


def test_layer_benchmark_leaves_pytorch_out_where_it_is_missing(monkeypatch):
    spec = importlib.util.spec_from_file_location("layers_benchmark", ROOT / "benchmarks" / "layers.py")
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert layers.torch_candidates("weight grad") == {}
