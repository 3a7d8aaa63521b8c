"""Which devices a run uses, and how a batch is spread over them.

JAX picks its backend itself (a GPU when a CUDA jaxlib plugin is installed and works, else the
CPU). ``--device gpu`` turns a silent fall-back to the CPU into one sentence naming the likely
cause; ``--device cpu`` keeps a run off the GPU (docs/gpu.md). With several devices the run is
data-parallel on JAX's own sharding: one mesh over all devices, batches split along axis 0,
parameters and optimiser state replicated; XLA inserts the gradient all-reduce. Several
processes join with ``--distributed``.
"""
from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from importlib import metadata

import jax
import numpy as np

from imagedata import celeba
from system.errors import EXIT_USER_ERROR, UserError

DEVICES = ("auto", "cpu", "gpu")
COORDINATOR_TIMEOUT_S = 120  # how long a process waits for --distributed's coordinator
NATIVE_DEADLINE_AFTER_S = 10  # JAX's own deadline, which aborts natively, this long after ours
CPU_IMAGES_PER_S = 170      # the seed's model at batch 512 on a 2-core x86_64 CPU (docs/speed.md)
LONG_RUN_S = 30 * 60        # warn before CPU runs estimated longer than this
INSTALL_CUDA13 = 'pip install -e ".[cuda13]"'
INSTALL_CUDA12 = 'pip install -e ".[cuda12]"'
MIN_CC_CUDA13 = 7.5         # CUDA 13 wheels: Turing and newer
MIN_CUDNN_DROPPED = (9, 11)  # cuDNN 9.11 dropped Maxwell and Pascal (cc < 7.0)


def select(device: str) -> None:
    """Apply ``--device`` before JAX starts a backend; ``gpu`` raises UserError when there is none."""
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
    elif device == "gpu" and not has_gpu():
        raise UserError(no_gpu_reason())


def has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def describe() -> str:
    """One line naming the devices the run will use, e.g. ``2 x Tesla T4 (gpu)``."""
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    where = f", {jax.process_count()} processes" if jax.process_count() > 1 else ""
    return f"Devices: {len(devices)} x {' + '.join(kinds)} ({devices[0].platform}){where}."


# --------------------------------------------------------------------------- data parallelism

def device_layout(batch_size):
    """(sharding of a batch, sharding of replicated arrays), or (None, None) on one device."""
    devices = jax.devices()
    if len(devices) == 1:
        return None, None
    if batch_size % len(devices):
        raise UserError(f"The batch size {batch_size} does not divide across {len(devices)} devices; "
                        f"pick a multiple of {len(devices)}.")
    mesh = jax.sharding.Mesh(np.array(devices), ("data",))
    spec = jax.sharding.PartitionSpec
    return jax.sharding.NamedSharding(mesh, spec("data")), jax.sharding.NamedSharding(mesh, spec())


def place_batch(batch, batch_sharding):
    """``batch`` laid out as ``batch_sharding`` says (each host feeds its own slice of the global batch)."""
    if batch_sharding is None:
        return batch
    if jax.process_count() > 1:
        per_host = batch.shape[0] // jax.process_count()
        local = batch[jax.process_index() * per_host:(jax.process_index() + 1) * per_host]
        return jax.make_array_from_process_local_data(batch_sharding, np.asarray(local))
    return jax.device_put(batch, batch_sharding)


# --------------------------------------------------------------------------- why no GPU

def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def compute_capability() -> float | None:
    """The first GPU's compute capability as nvidia-smi reports it, or None (no driver, no GPU)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.split()
        return float(out[0]) if out else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def no_gpu_reason(cc=None, plugins=None, cudnn=None) -> str:
    """The one sentence ``--device gpu`` stops with: the likely cause and the fix."""
    cc = compute_capability() if cc is None else cc
    plugins = plugins if plugins is not None else {
        name: _version(f"jax-{name}-plugin") for name in ("cuda13", "cuda12")}
    cudnn = _version("nvidia-cudnn-cu12") if cudnn is None else cudnn
    card = "" if cc is None else f" (compute capability {cc:g})"
    if not any(plugins.values()):
        return (f"JAX sees no GPU because only the CPU jaxlib is installed: install GPU JAX with "
                f"{INSTALL_CUDA13} (Turing and newer) or {INSTALL_CUDA12} (Pascal/Volta, e.g. the P100), "
                f"or run with --device cpu.")
    if cc is not None and cc < MIN_CC_CUDA13 and plugins.get("cuda13") and not plugins.get("cuda12"):
        return (f"JAX sees no GPU: the installed CUDA 13 wheel needs compute capability {MIN_CC_CUDA13:g} or "
                f"newer and this card has {cc:g}; pip uninstall -y jax-cuda13-plugin jax-cuda13-pjrt, then "
                f"{INSTALL_CUDA12}.")
    if cc is not None and cc < 7.0 and cudnn and tuple(map(int, cudnn.split(".")[:2])) >= MIN_CUDNN_DROPPED:
        return (f"JAX sees no GPU: cuDNN {cudnn} no longer supports this card{card} (9.11 dropped Pascal "
                f"and Maxwell); {INSTALL_CUDA12} pins nvidia-cudnn-cu12<9.11.")
    if cc is None:
        return ("JAX sees no GPU and nvidia-smi finds none: switch the notebook's accelerator to a GPU (or "
                "install the NVIDIA driver), or run with --device cpu.")
    installed = ", ".join(f"jax-{k}-plugin {v}" for k, v in plugins.items() if v)
    return (f"JAX sees no GPU although {installed} is installed and the card{card} is visible; run "
            f"python -c \"import jax; jax.devices('gpu')\" to read JAX's reason (see docs/gpu.md).")


# --------------------------------------------------------------------------- the long-run warning

def planned_images(config) -> int:
    """Images the run will train on: epochs x the training split (or --limit), capped by --max-steps."""
    per_epoch, run = config.data.limit, config.run
    if config.data.dataset == "celeba":
        lo, hi = celeba.OFFICIAL_RANGES["train"]
        per_epoch = min(hi - lo + 1, config.data.limit or math.inf)
    if per_epoch is None:
        return 0  # a generated set without a limit: small, nothing to warn about
    total = run.epochs * (int(per_epoch) // run.batch_size) * run.batch_size
    if run.max_steps is not None:
        total = min(total, run.max_steps * run.batch_size)
    return total


def cpu_warning(config, platform: str) -> str | None:
    """A one-sentence warning when ``config`` would run longer than LONG_RUN_S on the CPU, else None."""
    if platform != "cpu":
        return None
    seconds = planned_images(config) / CPU_IMAGES_PER_S
    if seconds <= LONG_RUN_S:
        return None
    hours = seconds / 3600
    took = f"{hours:.0f} hours" if hours >= 2 else f"{seconds / 60:.0f} minutes"
    faces = "" if config.data.dataset in ("faces", "shapes") else " or try the embedded --dataset faces"
    return (f"warning: this run trains on the CPU and will take about {took} at ~{CPU_IMAGES_PER_S} img/s; "
            f"on an NVIDIA GPU install GPU JAX with {INSTALL_CUDA13} ({INSTALL_CUDA12} on a P100/V100, "
            f"see docs/gpu.md){faces}.")


def warn_if_long(config) -> None:
    message = cpu_warning(config, jax.devices()[0].platform)
    if message:
        print(message, file=sys.stderr)


# --------------------------------------------------------------------------- several processes

def initialize_distributed(coordinator=None, num_processes=None, process_id=None, timeout=COORDINATOR_TIMEOUT_S) -> None:
    """``jax.distributed.initialize`` with what was given; the rest from $JAX_COORDINATOR_ADDRESS,
    $JAX_NUM_PROCESSES, $JAX_PROCESS_ID, or JAX's own cluster detection (SLURM, ...).

    A process other than 0 first waits at most ``timeout`` seconds for the coordinator to accept a
    connection, so an unreachable one is one sentence instead of JAX's native abort minutes later.
    """
    env = os.environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    num_processes = num_processes if num_processes is not None else _int_env("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _int_env("JAX_PROCESS_ID")
    if coordinator:
        host_and_port(coordinator)  # a malformed address is refused by every process alike
    if coordinator and process_id:
        wait_for_coordinator(coordinator, timeout)
    kwargs = {k: v for k, v in (("coordinator_address", coordinator), ("num_processes", num_processes),
                                ("process_id", process_id)) if v is not None}
    watchdog = None
    if process_id == 0 and num_processes and num_processes > 1:
        watchdog = threading.Timer(timeout, _nobody_joined, (coordinator, num_processes, timeout))
        watchdog.daemon = True
        watchdog.start()
    try:  # JAX's own deadline comes after the watchdog's: it aborts the process natively
        jax.distributed.initialize(**kwargs, initialization_timeout=max(1, int(timeout)) + NATIVE_DEADLINE_AFTER_S)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--distributed could not start ({first}); give --coordinator HOST:PORT, "
                        f"--num-processes and --process-id.") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()


def _nobody_joined(coordinator, num_processes, timeout) -> None:
    """Process 0 waited ``timeout`` seconds for the others: one sentence and exit, before JAX's
    deadline aborts the process with a native stack trace (nothing has been written yet)."""
    others = "process 1" if num_processes == 2 else f"processes 1 to {num_processes - 1}"
    print(f"error: {others} did not join the coordinator {coordinator} within {timeout:g} s; start "
          f"{'it' if num_processes == 2 else 'them'} with the same --coordinator and --num-processes, or raise "
          f"--coordinator-timeout.", file=sys.stderr, flush=True)
    os._exit(EXIT_USER_ERROR)


def host_and_port(address: str) -> tuple[str, int]:
    """(host, port) of a ``HOST:PORT`` coordinator address; UserError when it is not one."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"--coordinator must be HOST:PORT with a port from 1 to 65535, not {address!r}.")
    return host.strip("[]"), int(port)


def wait_for_coordinator(address: str, timeout: float) -> None:
    """Return once ``HOST:PORT`` accepts a TCP connection; UserError after ``timeout`` seconds."""
    host, port = host_and_port(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=min(5.0, max(timeout, 0.1))).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise UserError(f"the coordinator {address} did not answer within {timeout:g} s ({e.strerror or e}); "
                                f"start process 0 first, check the address, or raise --coordinator-timeout.") from None
            time.sleep(0.5)


def _int_env(name):
    value = os.environ.get(name)
    try:
        return None if value in (None, "") else int(value)
    except ValueError:
        raise UserError(f"${name} must be a whole number, not {value!r}.") from None
