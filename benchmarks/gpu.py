"""The train step on an accelerator: the seed's batch 512, conv formulations, bfloat16.

One script for one short session on a GPU (it runs on the CPU too, ``--quick`` for a smoke test).
Every section prints a Markdown table as soon as it is done and adds its numbers to
``--out``/gpu.json, so a run cut short still reports what it finished:

 1. the device, JAX, and matmul peaks measured here (float32 at the default precision, which on
    GPUs with tensor cores is TF32; float32 at "highest"; bfloat16);
 2. train-step throughput on a synthetic uint8 dataset of CelebA's size and shape resident on
    the device, fed exactly as ``train.py`` feeds it (``imagedata.batches.iterate_batches``, a fresh
    noise key per step): the hand-written step with each formulation of the conv gradient maps
    (``model/conv.py``: lax, fast, narrow), each in float32 and bfloat16, the ``jax.grad`` step
    of the same model and, where PyTorch is installed, the same model in PyTorch, eager and
    ``torch.compile``, float32 and bfloat16; rounds
    of ``--steps`` steps, interleaved, medians;
 3. one full epoch of the synthetic CelebA with the fastest hand-written step, and what that
    makes of the seed's 100 epochs;
 4. bfloat16 against float32 on the procedural shapes data: the same initialisation, batches and
    noise for ``--compare-steps`` steps at two learning rates; the training loss at the end and
    the float32 loss on held-out images;
 5. per-layer times of each gradient map, lax against ``fast_conv``, at the same batch.

Examples::

    python benchmarks/gpu.py --out benchmarks/results/gpu
    python benchmarks/gpu.py --quick --out /tmp/gpu      # minutes on a CPU, for checking the script
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

import model
from imagedata import shapes
from imagedata.batches import iterate_batches
from model import conv, fast_conv
from system import heap
from train_step import autodiff_step, flops_per_image

CELEBA_IMAGES = 202_599
RESULTS = {}


def save(out):
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "gpu.json"), "w") as f:
            json.dump(RESULTS, f, indent=2)


def section(name, out):
    """Run a section; an error is printed and recorded, and the next section still runs."""
    def wrap(fn):
        print(f"\n## {name}\n", flush=True)
        start = time.perf_counter()
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - a benchmark reports and goes on
            traceback.print_exc()
            RESULTS.setdefault("errors", {})[name] = f"{type(err).__name__}: {err}"
        print(f"\n({name}: {time.perf_counter() - start:.1f} s)", flush=True)
        save(out)
        return fn
    return wrap


def timed(fn, calls):
    """Median-free wall time of ``calls`` calls, waiting for the device only at the end."""
    out = fn()
    jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(calls):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def matmul_peaks(n, calls):
    key = jax.random.PRNGKey(0)
    peaks = {}
    for name, dtype, precision in (("float32 default", jnp.float32, None), ("float32 highest", jnp.float32, "highest"),
                                   ("bfloat16", jnp.bfloat16, None)):
        a = jax.random.normal(key, (n, n), jnp.float32).astype(dtype)
        b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), jnp.float32).astype(dtype)
        f = jax.jit(lambda a, b, p=precision: jnp.matmul(a, b, precision=p))
        peaks[name] = 2 * n ** 3 / timed(lambda: f(a, b), calls) / 1e9
    return peaks


class Contender:
    """A train step fed by ``iterate_batches`` over device-resident uint8 images, as train.py does."""

    def __init__(self, name, step, images, batch_size, formulation=None, compute_dtype="float32"):
        self.name, self.images, self.batch_size = name, images, batch_size
        self.formulation, self.compute_dtype = formulation, compute_dtype
        if formulation is not None:
            vae = model.VAE(conv=formulation)  # a fresh VAE: its compiled step is its own
            self.step = lambda s, x, k: vae.train_step(s, x, k, compute_dtype=compute_dtype)
        else:
            self.step = step
        params = model.init_params(jax.random.PRNGKey(0))
        self.state = model.init_state(params)
        self.base_key = jax.random.PRNGKey(0)
        self.epoch, self.step_count = 0, 0
        self.batches = iter(())
        start = time.perf_counter()
        jax.block_until_ready(self.run(1))
        self.compile_s = time.perf_counter() - start
        self.times = []

    def next_batch(self):
        for batch in self.batches:
            return batch
        self.epoch += 1
        self.batches = iterate_batches(self.images, self.batch_size, jax.random.fold_in(self.base_key, self.epoch))
        return next(self.batches)

    def run(self, steps):
        metrics = None
        for _ in range(steps):
            self.step_count += 1
            key = jax.random.fold_in(jax.random.fold_in(self.base_key, 2), self.step_count)
            self.state, metrics = self.step(self.state, self.next_batch(), key)
        return metrics

    def timed_round(self, steps):
        start = time.perf_counter()
        metrics = jax.block_until_ready(self.run(steps))
        self.times.append((time.perf_counter() - start) / steps)
        return metrics


class TorchContender:
    """The same model, loss and AdamW in PyTorch on the same device kind (when torch is there):
    eager or ``torch.compile``, float32 or bfloat16 autocast."""

    def __init__(self, torch, images_shape, batch_size, device, compile=False, bfloat16=False):
        from train_step import TorchContender as TorchStep
        self.name = f"{'torch.compile' if compile else 'PyTorch eager'} {'bfloat16' if bfloat16 else 'float32'}"
        self.torch, self.batch_size, self.device = torch, batch_size, device
        self.net = TorchStep(torch, batch_size, device, compile=compile, bfloat16=bfloat16)  # model, AdamW, one step
        self.images = torch.randint(0, 256, images_shape, dtype=torch.uint8, device=device)
        self.times = []
        start = time.perf_counter()
        self.run(1)
        self.compile_s = time.perf_counter() - start

    def run(self, steps):
        torch = self.torch
        for _ in range(steps):
            idx = torch.randint(0, self.images.shape[0], (self.batch_size,), device=self.device)
            self.net.x = self.images[idx].float() / 255
            self.net.run()
        torch.cuda.synchronize()

    def timed_round(self, steps):
        start = time.perf_counter()
        self.run(steps)
        self.times.append((time.perf_counter() - start) / steps)


def device_peak_mib():
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else round(peak / 2 ** 20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="folder for gpu.json (written after every section)")
    parser.add_argument("--batch-size", type=int, default=512, help="images per step (default 512, the seed's)")
    parser.add_argument("--images", type=int, default=CELEBA_IMAGES, help="synthetic dataset size (default CelebA's)")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each contender, interleaved")
    parser.add_argument("--compare-steps", type=int, default=1000, help="steps of each bfloat16/float32 training run")
    parser.add_argument("--compare-images", type=int, default=51_200, help="shapes images for those runs")
    parser.add_argument("--formulations", nargs="+", default=["lax", "fast", "narrow"],
                        choices=[f for f in conv.FORMULATIONS if f != "auto"], help="conv gradient maps to time")
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "epoch", "compare", "layers"],
                        help="sections to leave out")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing")
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.images, args.steps, args.rounds = 16, 256, 2, 2
        args.compare_steps, args.compare_images = 6, 512
    heap.keep_freed_memory()  # before the first computation (system/heap.py); BVAEX_MALLOC=default: off
    out = args.out
    device = jax.devices()[0]
    RESULTS["setup"] = {"jax": jax.__version__, "backend": jax.default_backend(), "device": device.device_kind,
                        "devices": jax.device_count(), "batch_size": args.batch_size, "images": args.images,
                        "malloc_keeps_freed_memory": heap.applied(), "argv": sys.argv[1:]}
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} × {device.device_kind}; "
          f"auto formulation here: {conv.resolve_formulation('auto')}", flush=True)
    forward_flops, step_flops = flops_per_image()

    @section("matmul peaks", out)
    def _():
        n = 512 if args.quick else 8192
        peaks = matmul_peaks(n, 2 if args.quick else 20)
        RESULTS["matmul_gflops"] = peaks
        print(f"{n}² matmul: " + ", ".join(f"{k} {v / 1e3:.1f} TFLOP/s" for k, v in peaks.items()))

    images = jax.random.bits(jax.random.PRNGKey(7), (args.images, 3, 64, 64), jnp.uint8)
    contenders = {}

    @section("train-step throughput", out)
    def _():
        if "throughput" in args.skip:
            return
        specs = [(f"manual {f} {dt}", dict(formulation=f, compute_dtype=dt))
                 for dt in ("float32", "bfloat16") for f in args.formulations]
        specs.append(("jax.grad float32", dict(step=autodiff_step)))
        for name, spec in specs:
            try:
                contenders[name] = Contender(name, spec.get("step"), images, args.batch_size,
                                             spec.get("formulation"), spec.get("compute_dtype", "float32"))
                print(f"compiled {name} in {contenders[name].compile_s:.1f} s", flush=True)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        try:
            import torch
            if jax.default_backend() == "gpu" and torch.cuda.is_available():
                for compiled in (False, True):
                    for bf16 in (False, True):
                        try:
                            c = TorchContender(torch, (min(args.images, 65536), 3, 64, 64), args.batch_size, "cuda",
                                               compile=compiled, bfloat16=bf16)
                            contenders[c.name] = c
                            print(f"{c.name} ready in {c.compile_s:.1f} s", flush=True)
                        except Exception:  # noqa: BLE001 (torch.compile without a compiler, say)
                            traceback.print_exc()
                RESULTS["torch"] = {"version": torch.__version__, "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                                    "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        for c in contenders.values():  # warm-up round
            c.run(args.steps)
        for _ in range(args.rounds):
            for c in contenders.values():
                c.timed_round(args.steps)
        peak = RESULTS.get("matmul_gflops", {}).get("float32 default")
        autodiff = contenders.get("jax.grad float32")
        base = statistics.median(autodiff.times) if autodiff else None
        rows = {}
        print(f"batch {args.batch_size}, {args.rounds} interleaved rounds of {args.steps} steps (medians); "
              f"{step_flops / 1e6:.1f} MFLOP per image per step")
        print()
        print("| step | images/s | × jax.grad | TFLOP/s | % float32-default matmul | ms/step | first step (s) |")
        print("|---|---|---|---|---|---|---|")
        for name, c in contenders.items():
            s = statistics.median(c.times)
            ips = args.batch_size / s
            tflops = ips * step_flops / 1e12
            ratio = base / s if base else float("nan")
            share = 100 * tflops * 1e3 / peak if peak else float("nan")
            rows[name] = {"images_per_s": ips, "x_jax_grad": ratio, "tflops": tflops, "ms_per_step": 1e3 * s,
                          "compile_s": c.compile_s, "spread": [args.batch_size / t for t in c.times]}
            print(f"| {name} | {ips:,.0f} | {ratio:.2f} | {tflops:.2f} | {share:.0f} % | {1e3 * s:.2f} | {c.compile_s:.1f} |")
        RESULTS["throughput"] = rows
        RESULTS["device_peak_mib"] = device_peak_mib()
        print(f"\ndevice peak memory so far: {device_peak_mib()} MiB (the {images.nbytes / 2 ** 30:.2f} GiB dataset included)")

    @section("one full epoch", out)
    def _():
        if "epoch" in args.skip:
            return
        manual = {k: v for k, v in contenders.items() if k.startswith("manual")}
        if not manual:
            return
        results = {}
        for precision in ("float32", "bfloat16"):
            candidates = {k: v for k, v in manual.items() if k.endswith(precision)}
            if not candidates:
                continue
            name = min(candidates, key=lambda k: statistics.median(candidates[k].times))
            c = candidates[name]
            c.batches = iter(())  # start a fresh epoch: permutation and all
            steps = args.images // args.batch_size
            start = time.perf_counter()
            jax.block_until_ready(c.run(steps))
            seconds = time.perf_counter() - start
            results[name] = {"steps": steps, "seconds": seconds, "images_per_s": steps * args.batch_size / seconds,
                             "hundred_epochs_min": 100 * seconds / 60}
            print(f"{name}: one epoch of {args.images:,} images ({steps} steps) in {seconds:.2f} s = "
                  f"{steps * args.batch_size / seconds:,.0f} images/s; 100 epochs ≈ {100 * seconds / 60:.1f} min")
        RESULTS["epoch"] = results

    @section("bfloat16 against float32 on shapes", out)
    def _():
        if "compare" in args.skip:
            return
        train_x, _ = shapes.make_split("train", args.compare_images)
        test_x, _ = shapes.make_split("test", 2048 if not args.quick else 64)
        train_x, test_x = jnp.asarray(train_x), jnp.asarray(test_x)
        eval_loss = jax.jit(lambda p, x, e: model.loss_and_grads(p, x, e, 0.5)[0])
        eps_test = jax.random.normal(jax.random.PRNGKey(99), (test_x.shape[0], 128))
        vae = model.build()
        steps_fns = {dt: lambda s, x, k, dt=dt: vae.train_step(s, x, k, compute_dtype=dt)
                     for dt in ("float32", "bfloat16")}
        rows = {}
        print(f"{args.compare_steps} steps of {args.batch_size} from one initialisation, the same batches and noise; "
              f"loss = recon + 0.5·KL per image")
        print()
        print("| lr | compute | train loss, last 50 steps | test loss (float32) | test recon | test KL | images/s |")
        print("|---|---|---|---|---|---|---|")
        for lr in (1e-3, 3e-4):
            for dt, step in steps_fns.items():
                state = model.init_state(model.init_params(jax.random.PRNGKey(0)), lr=lr)
                key, losses, epoch = jax.random.PRNGKey(1), [], 0
                batches = iter(())
                start = time.perf_counter()
                for i in range(args.compare_steps):
                    batch = next(batches, None)
                    if batch is None:
                        epoch += 1
                        batches = iterate_batches(train_x, args.batch_size, jax.random.fold_in(key, epoch))
                        batch = next(batches)
                    state, m = step(state, batch, jax.random.fold_in(key, 10_000 + i))
                    losses.append(m["loss"])
                losses = np.asarray(jax.device_get(losses))
                seconds = time.perf_counter() - start
                test = jax.device_get(eval_loss(state.params, test_x, eps_test))
                tail = float(np.mean(losses[-50:]))
                rows[f"{lr:g} {dt}"] = {"lr": lr, "compute": dt, "train_loss_last50": tail,
                                        "test_loss": float(test["loss"]), "test_recon": float(test["recon"]),
                                        "test_kl": float(test["kl"]), "finite": bool(np.all(np.isfinite(losses))),
                                        "curve_every_50": [float(np.mean(losses[j:j + 50])) for j in range(0, len(losses), 50)],
                                        "images_per_s_incl_compile": args.compare_steps * args.batch_size / seconds}
                print(f"| {lr:g} | {dt} | {tail:.1f} | {float(test['loss']):.1f} | {float(test['recon']):.1f} "
                      f"| {float(test['kl']):.1f} | {args.compare_steps * args.batch_size / seconds:,.0f} |", flush=True)
        RESULTS["bf16_vs_f32"] = rows

    @section("per-layer gradient maps", out)
    def _():
        if "layers" in args.skip:
            return
        n, calls = args.batch_size, 3 if args.quick else 30
        rows = []
        print(f"batch {n}, {calls} calls each; ms per call")
        print()
        print("| layers | map | lax | fast_conv | dtype |")
        print("|---|---|---|---|---|")
        for layers, c, o, h in (("conv1 / deconv3", 3, 32, 64), ("conv2 / deconv2", 32, 64, 32),
                                ("conv3 / deconv1", 64, 128, 16)):
            for dtype in (jnp.float32, jnp.bfloat16):
                kx, kw, ky = jax.random.split(jax.random.PRNGKey(h), 3)
                x = jax.random.normal(kx, (n, c, h, h)).astype(dtype)
                w = jax.random.normal(kw, (o, c, 4, 4)).astype(dtype)
                dy = jax.random.normal(ky, (n, o, h // 2, h // 2)).astype(dtype)
                maps = {"input grad": ((dy, w), lambda dy, w: conv.lax_conv2d_input_grad(dy, w, 2, 1, (h, h)),
                                       fast_conv.input_grad),
                        "weight grad": ((x, dy), lambda x, dy: conv.lax_conv2d_weight_grad(x, dy, 2, 1, 4),
                                        fast_conv.weight_grad)}
                for direction, (operands, lax_f, fast_f) in maps.items():
                    lax_j, fast_j = jax.jit(lax_f), jax.jit(fast_f)
                    t_lax = timed(lambda: lax_j(*operands), calls)
                    t_fast = timed(lambda: fast_j(*operands), calls)
                    dtype_name = jnp.dtype(dtype).name
                    rows.append({"layers": layers, "map": direction, "dtype": dtype_name,
                                 "lax_ms": 1e3 * t_lax, "fast_ms": 1e3 * t_fast})
                    print(f"| {layers} | {direction} | {1e3 * t_lax:.3f} | {1e3 * t_fast:.3f} | {dtype_name} |", flush=True)
        RESULTS["layers"] = rows

    save(out)
    print("\ndone", flush=True)


if __name__ == "__main__":
    main()
