#!/usr/bin/env bash
# One short GPU session, at most 8 minutes: install GPU JAX (and the CUDA torch, if the machine
# has one on its disk or index), then benchmarks/gpu.py at the seed's batch 512 with torch.compile
# beside eager PyTorch, float32 and bfloat16. Every table also lands in OUT/gpu/gpu.json, section by
# section, so a run cut short keeps what it finished.
#   bash benchmarks/gpu_run.sh /tmp/out            # on the GPU machine
#   QUICK=1 bash benchmarks/gpu_run.sh /tmp/out    # on a CPU: checks the script in a minute or two
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-benchmarks/results/gpu}}"
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  lscpu | grep -m1 "Model name" || true
} | tee "$OUT/machine.txt"
if [ -z "${QUICK:-}" ]; then
  python -c "import jax; assert jax.default_backend() == 'gpu'" 2>/dev/null \
    || pip install --quiet -e ".[cuda13]" 2>&1 | tail -2
  python -c "import torch" 2>/dev/null || pip install --quiet torch 2>&1 | tail -2  # optional: torch rows
  timeout 450 python benchmarks/gpu.py --out "$OUT/gpu" --skip compare --rounds 5 --steps 40 2>&1 | tee "$OUT/gpu.log"
else
  timeout 450 python benchmarks/gpu.py --quick --out "$OUT/gpu" 2>&1 | tee "$OUT/gpu.log"
fi
echo "exit ${PIPESTATUS[0]}; results in $OUT/gpu/gpu.json"
