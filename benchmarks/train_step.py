"""Train-step throughput: the hand-written step against a ``jax.grad`` step of the same model.

From one process, with the repetitions of every contender interleaved (the machine may be
shared: medians of interleaved runs are comparable, separate runs are not), prints a Markdown
table of images/s, the ratio of the two, GFLOP/s from the model's FLOP count, the share of a
float32 matmul peak measured in the same run, the first-step (compile) time and peak memory.
When PyTorch happens to be importable, an equivalent PyTorch step is timed too, eager and under
``torch.compile`` (its compile time in the first-step column). The CPU's model and ISA head the table.

The hand-written step is compiled with the backend's XLA options of ``system/xla.py``
(on the CPU: XLA's own convolutions instead of YNNPACK's). Both steps are also timed under
XLA's default options ("manual, XLA defaults" and "jax.grad"), and ``jax.grad`` under the
model's options, so the table separates what the options give from what the backward gives.

glibc's malloc maps XLA's per-step temporaries afresh each step unless told to keep freed
memory: the benchmark calls ``system.heap.keep_freed_memory()`` first, as the scripts do, so it acts
on every contender in the process alike (``BVAEX_MALLOC=default`` turns it off). At batch 512 the
heap still grows over the first ≈ 10 steps, each growth a step slowed by page faults: the default
12 warm-up steps time the steady state that a training run spends its hours in.
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (set before the process starts) changes the numbers
too. The table says what was in force; compare only runs made under the same settings.

Examples::

    python benchmarks/train_step.py
    python benchmarks/train_step.py --batch-size 512 --repeats 5
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/train_step.py
    python benchmarks/train_step.py --no-autodiff --repeats 20
"""
import argparse
import os

# PyTorch's OpenMP threads spin after each parallel region by default; interleaved with JAX's own
# threads on a few cores that spinning starves both (PyTorch ran 4x slower on 2 cores). Passive
# waiting is what a fair side-by-side needs; set OMP_WAIT_POLICY yourself to override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import resource
import statistics
import time

import jax
import jax.numpy as jnp

import model
from model import adamw
from model.clip import clip_by_global_norm, clip_by_value, global_norm
from reference import reference_loss
from system import cpu, heap, xla


def flops_per_image(arch=model.Architecture()):
    """(forward, training step) multiply-adds ×2 per image, from the layer shapes.

    Forward: every conv/transposed conv is 2·C·O·K²·(pixels on its strided side), every Dense
    2·I·O. The step is the forward plus a backward of twice that, less conv1's input gradient,
    which is never formed.
    """
    sizes = (arch.in_channels,) + arch.channels
    size = arch.image_size
    convs = []
    for c, o in zip(sizes[:-1], sizes[1:]):
        size //= 2
        convs.append(2 * c * o * 16 * size * size)  # output pixels of the conv = input pixels of its transpose
    flat = sizes[-1] * size * size
    dense = 2 * flat * 2 * arch.latent_dim + 2 * arch.latent_dim * flat
    forward = 2 * sum(convs) + dense
    return forward, 3 * forward - convs[0]


def _autodiff_step(state, x, key):
    """``model.train_step`` with ``jax.grad`` in place of the hand-written backward."""
    params, hp = state.params, state.hparams
    x = model.to_float(x)
    eps = jax.random.normal(key, (x.shape[0], params["encoder.fc_mu.weight"].shape[0]), jnp.float32)
    (loss, (recon, kl)), grads = jax.value_and_grad(reference_loss, has_aux=True)(params, x, eps, hp.beta)
    norm = global_norm(grads)
    grads = clip_by_value(clip_by_global_norm(grads, hp.clip_norm, norm), hp.clip_value)
    params, opt = adamw.update(params, grads, state.opt, hp.adamw)
    return model.TrainState(params, opt, hp), {"loss": loss, "recon": recon, "kl": kl, "grad_norm": norm}


autodiff_step = jax.jit(_autodiff_step, donate_argnums=0)
# Fresh functions, not the same ones jitted again: jax.jit caches traces by function, so a
# second jit of one function would reuse the first trace.
autodiff_step_with_options = xla.compiled(lambda state, x, key: _autodiff_step(state, x, key), donate_argnums=0)
manual_step_xla_defaults = jax.jit(lambda state, x, key: model.build().step(state, x, key), donate_argnums=0)


class JaxContender:
    """A jitted step over a donated TrainState; ``run()`` takes one step and waits for it."""

    def __init__(self, step, batch):
        self.step, self.x = step, batch
        self.state = model.init_state(model.init_params(jax.random.PRNGKey(0)))
        self.calls = 0
        start = time.perf_counter()
        self.run()
        self.compile_s = time.perf_counter() - start

    def run(self):
        self.calls += 1
        self.state, metrics = self.step(self.state, self.x, jax.random.PRNGKey(self.calls))
        jax.block_until_ready(metrics)


class MatmulContender:
    """A jitted float32 n×n matmul: the machine's GEMM peak at the moment of measuring."""

    def __init__(self, n=2048):
        self.a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
        self.flops = 2 * n ** 3
        self.f = jax.jit(lambda a: a @ a)
        self.run()

    def run(self):
        self.f(self.a).block_until_ready()


class TorchContender:
    """The same architecture, loss and AdamW in PyTorch (only when torch is importable)."""

    def __init__(self, torch, batch, device="cpu", compile=False, bfloat16=False):
        nn = torch.nn
        self.torch = torch

        class VAE(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                             nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(), nn.Flatten())
                self.fc_mu, self.fc_logvar = nn.Linear(8192, 128), nn.Linear(8192, 128)
                self.fc = nn.Linear(128, 8192)
                self.decoder = nn.Sequential(nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
                                             nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                             nn.ConvTranspose2d(32, 3, 4, 2, 1), nn.Sigmoid())

            def forward(self, x):
                h = self.encoder(x)
                mu, logvar = self.fc_mu(h), self.fc_logvar(h)
                z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                return self.decoder(self.fc(z).view(-1, 128, 8, 8)), mu, logvar

        self.net = VAE().to(device)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-3, weight_decay=0.01)
        self.x = torch.rand(batch, 3, 64, 64, device=device)
        # compiled: the forward and loss (their backward follows, compiled by AOTAutograd) and the
        # optimiser's step, each with torch.compile's defaults, as PyTorch's tutorials show
        self.autocast = dict(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bfloat16)
        self.loss = torch.compile(self._loss) if compile else self._loss
        self.opt_step = torch.compile(self.opt.step) if compile else self.opt.step
        start = time.perf_counter()
        for _ in range(3 if compile else 1):  # torch.compile may recompile on the second call
            self.run()
        self.compile_s = time.perf_counter() - start

    def _loss(self, x):
        with self.torch.autocast(**self.autocast):  # bfloat16: the pass in bfloat16, the loss in float32
            x_hat, mu, logvar = self.net(x)
        x_hat, mu, logvar = x_hat.float(), mu.float(), logvar.float()
        n = x.shape[0]
        return ((x_hat - x) ** 2).sum() / n - 0.25 * (1 + logvar - mu ** 2 - logvar.exp()).sum() / n

    def run(self):
        loss = self.loss(self.x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_step()


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def device_peak_mib():
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2 ** 20


def interleaved_medians(contenders, repeats, warmup):
    """Median seconds per ``run()`` of each contender, the repetitions taken round-robin."""
    for _ in range(warmup):
        for c in contenders.values():
            c.run()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, c in contenders.items():
            start = time.perf_counter()
            c.run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64; try 512 too)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps of each contender, interleaved")
    parser.add_argument("--warmup", type=int, default=12,
                        help="untimed steps of each contender after compiling (default 12: the process's heap "
                             "grows over the first ≈ 10 steps at batch 512, docs/speed.md)")
    parser.add_argument("--no-autodiff", action="store_true", help="skip the jax.grad step")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is importable")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (it compiles for a minute)")
    parser.add_argument("--no-option-variants", action="store_true",
                        help="skip the manual step under XLA's defaults and jax.grad under the model's options")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n×n float32 matmul peak")
    args = parser.parse_args()

    heap.keep_freed_memory()  # before the first computation; it acts on every contender alike
    jax.jit(lambda a: a + 1)(jnp.zeros(())).block_until_ready()  # start the backend outside the first-step timings
    batch = jax.random.randint(jax.random.PRNGKey(1), (args.batch_size, 3, 64, 64), 0, 256).astype(jnp.uint8)
    contenders = {"manual": JaxContender(model.train_step, batch)}
    rss_manual = peak_rss_mib()
    device_manual = device_peak_mib()
    if not args.no_option_variants and xla.options():  # without options the two are one program
        contenders["manual, XLA defaults"] = JaxContender(manual_step_xla_defaults, batch)
    if not args.no_autodiff:
        contenders["jax.grad"] = JaxContender(autodiff_step, batch)
        if not args.no_option_variants and xla.options():
            contenders["jax.grad, model's XLA options"] = JaxContender(autodiff_step_with_options, batch)
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            contenders["PyTorch eager"] = TorchContender(torch, args.batch_size)
            if not args.no_compile:
                try:
                    contenders["torch.compile"] = TorchContender(torch, args.batch_size, compile=True)
                except Exception as error:  # no C compiler, an unsupported platform: say so, go on
                    print(f"torch.compile unavailable here ({str(error).splitlines()[0][:120]}); skipped")
    contenders["matmul"] = MatmulContender(args.matmul_size)
    seconds = interleaved_medians(contenders, args.repeats, args.warmup)

    forward_flops, step_flops = flops_per_image()
    peak = contenders["matmul"].flops / seconds.pop("matmul") / 1e9
    hugetlb = "glibc.malloc.hugetlb=1" in os.environ.get("GLIBC_TUNABLES", "")
    manual_ips = args.batch_size / seconds["manual"]
    versions = f"jax {jax.__version__}" + (f", torch {torch.__version__}" if torch is not None else "")
    print(f"CPU: {cpu.describe()}; {versions}")
    print(f"batch {args.batch_size}, {args.repeats} interleaved repeats after {args.warmup} warm-up steps (medians), "
          f"{jax.devices()[0].device_kind}; GLIBC_TUNABLES hugetlb {'SET' if hugetlb else 'not set'} "
          f"(compare only runs under the same setting)")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (PyTorch's OpenMP threads)")
    print(f"glibc malloc keeps freed memory (system/heap.py, acts on every contender): "
          f"{'yes' if heap.applied() else 'no'}")
    print(f"XLA options of the manual step: {xla.options() or 'none (the defaults)'}")
    print(f"model: {forward_flops / 1e6:.1f} MFLOP forward, {step_flops / 1e6:.1f} MFLOP per training step per image; "
          f"float32 {args.matmul_size}² matmul peak in this run: {peak:.1f} GFLOP/s")
    print()
    print("| step | images/s | manual ÷ this | GFLOP/s | % matmul peak | first step (s) |")
    print("|---|---|---|---|---|---|")
    for name, s in seconds.items():
        ips = args.batch_size / s
        gflops = ips * step_flops / 1e9
        print(f"| {name} | {ips:.1f} | {manual_ips / ips:.2f} | {gflops:.1f} | {100 * gflops / peak:.0f} % "
              f"| {contenders[name].compile_s:.2f} |")
    print()
    device = f", device peak {device_manual:.0f} MiB" if device_manual is not None else ""
    print(f"peak memory: max RSS {rss_manual:.0f} MiB after the manual step alone{device}; "
          f"{peak_rss_mib():.0f} MiB after all contenders")


if __name__ == "__main__":
    main()
