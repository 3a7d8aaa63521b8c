"""β sweep on an embedded dataset: how the KL weight trades reconstruction for disentanglement.

For every β in ``--betas`` (default 0.5 1 4 8) a fresh model is trained on ``--dataset`` (the
sprites by default, or the faces) with the
same seed, architecture and step budget (``--steps`` steps of ``--batch-size`` images drawn from
the first ``--train-images`` training images), each run into its own folder under
``--work-dir``. Each trained model is then scored with

* recon and KL: mean per-image summed squared error (pixels in [0, 1]) of the decode of μ, and
  mean KL(q(z|x) || N(0, I)) in nats, on the first ``--test-images`` images of the test split;
* active units, the β-VAE metric (Higgins et al. 2017) and MIG (Chen et al. 2018), computed
  by ``analysis.disentanglement.score``.

Writes ``beta_sweep.md`` (the table, the budget, the wall times and the published reference)
and ``beta_sweep.png`` (the metrics against β) into ``--out-dir``. The table and the raw rows
(``--work-dir``/sweep.json) are rewritten after every β, so an interrupted sweep still leaves
its finished rows, and ``--reuse`` picks the finished runs up again. The work folder holds a
``.gitignore`` of its own, so nothing in it is ever committed.

The default budget is the seed's architecture (channels 32 64 128, 128 latents) at 400 steps of
64 images per β, with learning rate 3e-4, the shapes preset of ``training/config.py``. At the seed's 1e-3
the seed's model (β = 0.5) still decoded every z to an almost black image after 400 steps (test
recon 268.6, exactly what an all-black output scores): the sigmoid output settles on these mostly
black pictures and stays there. At 3e-4 the same model leaves that plateau within one epoch of
12,800 images. The tables record each run's wall time; a smaller model trains several times
faster, and ``experiments/beta_sweep/beta_sweep_cpu.md`` was made on the CPU with

    python experiments/beta_sweep/beta_sweep.py --channels 16 32 64 --latent-dim 10 --lr 2e-4 --steps 1600

and ``experiments/beta_sweep/beta_sweep.md``, the seed's model at 3 million images per β, on one H200 GPU,
with

    python experiments/beta_sweep/beta_sweep.py --steps 6000 --batch-size 512 --train-images 102400

Examples::

    python experiments/beta_sweep/beta_sweep.py                          # the default sweep
    python experiments/beta_sweep/beta_sweep.py --betas 1 4 --steps 50 --channels 8 16 16 --latent-dim 10 \\
        --num-train 100 --num-test 50 --pairs 8 --mig-samples 1000 --out-dir /tmp/sweep   # a quick check
    python experiments/beta_sweep/beta_sweep.py --reuse                  # re-score finished runs, train the rest
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np

import imagedata
from analysis.disentanglement import score
from analysis.evaluation import baselines as image_baselines, loss_on, mean_image
from model import Architecture
from system.arguments import non_negative_float, positive_float, positive_int, seed_int
from system.errors import EXIT_USER_ERROR
from system.files import atomic_write
from training import RunDir, TrainConfig, load_run, train

HERE = Path(__file__).resolve().parent
SEED_ARCHITECTURE = Architecture()

MARKDOWN_FILE = "beta_sweep.md"
PLOT_FILE = "beta_sweep.png"
RAW_FILE = "sweep.json"
DEFAULT_BETAS = (0.5, 1.0, 4.0, 8.0)
DSPRITES_IMAGES = 737_280
# Higgins et al. (2017), Table 1: accuracy of their disentanglement metric on dSprites.
REFERENCE = {"VAE": 0.6158, "β-VAE": 0.9923}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("training budget (the same for every β)")
    run.add_argument("--dataset", choices=tuple(imagedata.GENERATED), default="shapes",
                     help="the embedded dataset with known factors to sweep on (default: shapes)")
    run.add_argument("--betas", type=non_negative_float, nargs="+", default=list(DEFAULT_BETAS),
                     help="KL weights to train (default: 0.5 1 4 8)")
    run.add_argument("--steps", type=positive_int, default=400, help="train steps per β (default: 400)")
    run.add_argument("--batch-size", type=positive_int, default=64, help="images per step (default: 64)")
    run.add_argument("--train-images", type=positive_int, default=12800,
                     help="training images cycled through, the first N of the train split (default: 12800)")
    run.add_argument("--lr", type=positive_float, default=3e-4,
                     help="AdamW learning rate (default: 3e-4, the shapes preset; the seed's 1e-3 plateaus here)")
    run.add_argument("--seed", type=seed_int, default=0,
                     help="seed of initialisation, shuffling, sampling noise and metric draws (default: 0)")
    run.add_argument("--channels", type=positive_int, nargs="+", default=list(SEED_ARCHITECTURE.channels),
                     help="encoder conv widths, mirrored by the decoder (default: the seed's 32 64 128)")
    run.add_argument("--latent-dim", type=positive_int, default=SEED_ARCHITECTURE.latent_dim,
                     help=f"latent size (default: the seed's {SEED_ARCHITECTURE.latent_dim})")
    score = parser.add_argument_group("scoring")
    score.add_argument("--test-images", type=positive_int, default=2000,
                       help="test-split images for recon and KL (default: 2000)")
    score.add_argument("--num-train", type=positive_int, default=500,
                       help="β-VAE metric: classifier training examples (default: 500)")
    score.add_argument("--num-test", type=positive_int, default=250,
                       help="β-VAE metric: held-out examples (default: 250)")
    score.add_argument("--pairs", type=positive_int, default=32,
                       help="β-VAE metric: image pairs averaged per example (default: 32)")
    score.add_argument("--mig-samples", type=positive_int, default=10000,
                       help="factor draws for MIG and active units (default: 10000)")
    score.add_argument("--mig-bins", type=positive_int, default=40, help="equal-width bins per latent for MIG (default: 40)")
    where = parser.add_argument_group("folders")
    where.add_argument("--work-dir", default=str(HERE / ".runs"),
                       help="folder of the per-β training runs (default: experiments/beta_sweep/.runs)")
    where.add_argument("--out-dir", default=str(HERE),
                       help=f"folder of {MARKDOWN_FILE} and {PLOT_FILE} (default: experiments/beta_sweep)")
    where.add_argument("--reuse", action="store_true",
                       help="score a β's existing run in --work-dir when it matches this budget instead of retraining")
    where.add_argument("--report-only", action="store_true",
                       help="only rewrite the table and the plot from the rows recorded in --work-dir/sweep.json")
    where.add_argument("--note", default=None, metavar="TEXT",
                       help="a paragraph printed under the table, e.g. why this budget was chosen")
    where.add_argument("--quiet", action="store_true", help="print only the final table")
    return parser


# --------------------------------------------------------------------------- one β

def train_config(args, beta: float) -> TrainConfig:
    """The training run of one β of the sweep."""
    per_epoch = args.train_images // args.batch_size
    return TrainConfig.for_dataset(
        args.dataset, limit=args.train_images, batch_size=args.batch_size, val_images=0, channels=tuple(args.channels),
        latent_dim=args.latent_dim, beta=float(beta), lr=float(args.lr), seed=args.seed,
        epochs=max(1, math.ceil(args.steps / max(per_epoch, 1))), max_steps=args.steps, log_every=20)


def _run_matches(weights_dir: Path, config: TrainConfig) -> bool:
    """Whether ``weights_dir`` holds a finished run of exactly ``config`` (less its epoch count)."""
    folder = RunDir(weights_dir).latest_epoch()
    if folder is None:
        return False
    _, recorded = load_run(folder)
    return (recorded.with_flat(epochs=config.run.epochs, max_steps=config.run.max_steps) == config
            and RunDir.steps_of(folder) == config.run.max_steps)


def run_beta(args, beta: float, test_images: np.ndarray, log) -> dict:
    weights_dir = Path(args.work_dir) / f"beta_{beta:g}"
    config = train_config(args, beta)
    reused = args.reuse and _run_matches(weights_dir, config)
    if reused:
        log(f"β = {beta:g}: reusing the finished run in {weights_dir}")
    else:
        shutil.rmtree(weights_dir, ignore_errors=True)
        log(f"β = {beta:g}: training {args.steps} steps of {args.batch_size} into {weights_dir}")
        train(config, weights_dir=weights_dir, progress=False, log=log)
    run = RunDir(weights_dir)
    path = run.find_params()
    params, _ = load_run(path)
    history = json.loads(run.history.read_text())
    steps = history["steps"]
    rates = [s["images_per_s"] for s in steps[1:]] or [s["images_per_s"] for s in steps]  # first window: compile
    train_seconds = history["epochs"][-1]["wall_time"] if history["epochs"] else float("nan")

    start = time.perf_counter()
    test = loss_on(params, test_images, beta)
    scores = score(params, imagedata.GENERATED[args.dataset], seed=args.seed, num_train=args.num_train, num_test=args.num_test,
                               pairs=args.pairs, mig_samples=args.mig_samples, mig_bins=args.mig_bins)
    score_seconds = time.perf_counter() - start
    row = {"beta": float(beta), "checkpoint": str(path), "steps": int(steps[-1]["step"]) if steps else 0,
           "images_seen": (int(steps[-1]["step"]) if steps else 0) * args.batch_size,
           "recon": float(test["recon"]), "kl": float(test["kl"]),
           "final_train_loss": float(steps[-1]["loss"]) if steps else float("nan"),
           "active_units": scores["active_units"]["count"], "latent_dim": scores["active_units"]["latent_dim"],
           "beta_vae_train": scores["beta_vae"]["train_accuracy"], "beta_vae_test": scores["beta_vae"]["test_accuracy"],
           "mig": scores["mig"]["mig"], "mig_per_factor": scores["mig"]["per_factor"],
           "train_seconds": float(train_seconds), "images_per_s": float(np.median(rates)) if rates else float("nan"),
           "score_seconds": score_seconds, "reused": bool(reused)}
    log(f"β = {beta:g}: recon {row['recon']:.1f}, KL {row['kl']:.2f}, active {row['active_units']}/{row['latent_dim']}, "
        f"β-VAE metric {100 * row['beta_vae_test']:.1f} %, MIG {row['mig']:.3f} "
        f"(train {row['train_seconds']:.0f} s at {row['images_per_s']:.0f} img/s, scoring {score_seconds:.0f} s)")
    return row


# --------------------------------------------------------------------------- report

def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _fmt(x, spec) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def markdown(rows: list[dict], args, total_seconds: float, chance: float, baselines: dict | None = None) -> str:
    images = args.steps * args.batch_size
    arch = f"channels {' '.join(map(str, args.channels))}, {args.latent_dim} latents"
    seed_arch = tuple(args.channels) == SEED_ARCHITECTURE.channels and args.latent_dim == SEED_ARCHITECTURE.latent_dim
    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU" if jax.devices()[0].platform == "cpu" \
        else f"{jax.device_count()} × {jax.devices()[0].device_kind}"
    lines = [
        f"# β sweep on the embedded {getattr(args, 'dataset', 'shapes')}",
        "",
        f"**Budget per β:** {args.steps} steps of {args.batch_size} images = **{images:,} images seen** "
        f"(from the first {args.train_images:,} training images), seed {args.seed}, AdamW lr {args.lr:g}, "
        f"{arch}" + (" (the seed's architecture)" if seed_arch else " (smaller than the seed's 32 64 128 / 128)")
        + f". Trained and scored on a {cpu}; whole sweep {_duration(total_seconds)} wall time.",
        "",
        "| β | recon ↓ | KL (nats) | active units | β-VAE metric (test) | β-VAE metric (train) "
        f"| MIG ({args.mig_bins} bins) | train wall time | img/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    flagged = False
    for r in rows:
        mark = ""
        if baselines and r["recon"] >= baselines["mean_image"]:
            mark, flagged = " †", True
        lines.append(f"| {r['beta']:g} | {_fmt(r['recon'], '.1f')}{mark} | {_fmt(r['kl'], '.2f')} "
                     f"| {r['active_units']} / {r['latent_dim']} | {_fmt(100 * r['beta_vae_test'], '.1f')} % "
                     f"| {_fmt(100 * r['beta_vae_train'], '.1f')} % | {_fmt(r['mig'], '.3f')} "
                     f"| {_duration(r['train_seconds'])} | {_fmt(r['images_per_s'], '.0f')} |")
    lines += [
        "",
        f"recon: summed squared error per image (3×64×64 pixels in [0, 1]) of the decode of μ, and KL: "
        f"KL(q(z|x) ‖ N(0, I)), both averaged over the first {args.test_images:,} test-split images. "
        f"Active units: latents whose posterior mean has variance > 0.01 over {args.mig_samples:,} uniform factor "
        f"draws. β-VAE metric: accuracy of the linear classifier naming the fixed factor, trained on "
        f"{args.num_train} and tested on {args.num_test} examples of {args.pairs} pairs each "
        f"(chance {100 * chance:.1f} %). MIG: {args.mig_samples:,} draws, {args.mig_bins} equal-width "
        f"bins per latent. Train wall time: the training loop, compilation included.",
        "",
    ]
    if baselines:
        lines += [f"For scale, two outputs that ignore z: an all-black image scores recon {baselines['black']:.1f}, "
                  f"the mean training image {baselines['mean_image']:.1f}."
                  + (" † marks a model no better than the mean image: its decoder has not yet learnt to use z "
                     "(early in training the sigmoid output can sit on an almost black image for many steps)."
                     if flagged else ""), ""]
    reused = [f"{r['beta']:g}" for r in rows if r.get("reused")]
    if reused:
        lines += [f"Training of β = {', '.join(reused)} was reused from an earlier run in the work folder "
                  f"(--reuse); its train wall time is that run's and is not part of the sweep's total.", ""]
    if rows:
        factors = list(rows[0]["mig_per_factor"])
        lines += ["Per-factor MIG:", "",
                  "| β | " + " | ".join(factors) + " |",
                  "|---|" + "---|" * len(factors)]
        for r in rows:
            lines.append(f"| {r['beta']:g} | " + " | ".join(_fmt(r["mig_per_factor"][f], ".3f") for f in factors) + " |")
        lines.append("")
    if len(rows) > 1:
        accs = [r["beta_vae_test"] for r in rows]
        migs = [r["mig"] for r in rows if r["mig"] is not None]
        p = float(np.mean(accs))
        two_se = 200 * math.sqrt(p * (1 - p) / args.num_test)
        spread = 100 * (max(accs) - min(accs))
        verdict = (f"within two binomial standard errors ({two_se:.1f} points with {args.num_test} test examples), "
                   f"so at this budget β makes no measurable difference to it"
                   if spread <= two_se else
                   f"more than two binomial standard errors ({two_se:.1f} points with {args.num_test} test examples)")
        lines += [f"Across β the β-VAE metric spans {100 * min(accs):.1f}-{100 * max(accs):.1f} %, {verdict}; "
                  + (f"MIG spans {min(migs):.3f}-{max(migs):.3f}; " if migs else "")
                  + f"the KL falls from {rows[0]['kl']:.2f} to {rows[-1]['kl']:.2f} nats and the recon goes from "
                  f"{rows[0]['recon']:.1f} to {rows[-1]['recon']:.1f} between β = {rows[0]['beta']:g} and "
                  f"β = {rows[-1]['beta']:g}.", ""]
    if getattr(args, "note", None):
        lines += [args.note, ""]
    lines += [
        "## Published reference",
        "",
        f"Higgins et al. (2017), Table 1, on dSprites (737,280 images, five factors, chance 20 %): "
        f"VAE {100 * REFERENCE['VAE']:.2f} %, β-VAE {100 * REFERENCE['β-VAE']:.2f} % on their metric.",
        "",
    ]
    if rows:
        best = max(rows, key=lambda r: r["beta_vae_test"])
        lines.append(
            f"Here each model saw {images:,} images, {100 * images / DSPRITES_IMAGES:.2g} % of one pass over a "
            f"data set the size of dSprites, so these are "
            + ("early-training numbers" if images < DSPRITES_IMAGES else "numbers")
            + " on a related but different task "
            f"(colour is a sixth factor, the metric uses {args.pairs} pairs and {args.num_train} training examples): "
            f"the best β-VAE metric reached is {100 * best['beta_vae_test']:.1f} % (β = {best['beta']:g}), "
            f"to be read against the chance level of {100 * chance:.1f} % rather than against the published "
            f"{100 * REFERENCE['β-VAE']:.2f} %, which took far longer training than this budget.")
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, chance: float, mig_bins: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    betas = [r["beta"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    x = np.arange(len(betas))

    def setup(ax, title):
        ax.set_xticks(x, [f"{b:g}" for b in betas])
        ax.set_xlabel("β")
        ax.set_title(title)
        ax.grid(alpha=0.3)

    ax = axes[0, 0]
    ax.plot(x, [100 * r["beta_vae_test"] for r in rows], "o-", label="test")
    ax.plot(x, [100 * r["beta_vae_train"] for r in rows], "s--", alpha=0.6, label="train")
    ax.axhline(100 * chance, color="grey", ls=":", label="chance")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    setup(ax, "β-VAE metric")
    ax = axes[0, 1]
    ax.plot(x, [np.nan if r["mig"] is None else r["mig"] for r in rows], "o-")
    ax.set_ylabel("MIG")
    ax.set_ylim(0, max([0.1] + [1.2 * r["mig"] for r in rows if r["mig"] is not None]))
    setup(ax, f"MIG ({mig_bins} bins)")
    ax = axes[1, 0]
    ax.plot(x, [r["recon"] for r in rows], "o-", color="C0")
    ax.set_ylabel("recon (SSE / image)", color="C0")
    twin = ax.twinx()
    twin.plot(x, [r["kl"] for r in rows], "s--", color="C3")
    twin.set_ylabel("KL (nats)", color="C3")
    ax.ticklabel_format(axis="y", useOffset=False)
    twin.ticklabel_format(axis="y", useOffset=False)
    setup(ax, "test recon and KL (from μ)")
    ax = axes[1, 1]
    ax.bar(x, [r["active_units"] for r in rows], color="C2")
    ax.set_ylim(0, 1.15 * max([1] + [r["active_units"] for r in rows]))
    ax.set_ylabel(f"active units (of {rows[0]['latent_dim'] if rows else '?'})")
    setup(ax, "active units")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), fsync=False)
    plt.close(fig)


def _write(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()), fsync=False)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    log = (lambda *_: None) if args.quiet else (lambda msg: print(msg, flush=True))
    work, out = Path(args.work_dir), Path(args.out_dir)
    work.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("# training runs of experiments/beta_sweep/beta_sweep.py: never committed\n*\n")
    betas = list(dict.fromkeys(args.betas))
    dataset = imagedata.GENERATED[args.dataset]
    chance = 1.0 / sum(1 for s in dataset.FACTOR_SIZES if s > 1)
    if args.report_only:
        try:
            raw = json.loads((work / RAW_FILE).read_text())
        except (OSError, ValueError):
            print(f"error: {work / RAW_FILE} holds no recorded sweep; run the sweep first.", file=sys.stderr)
            return EXIT_USER_ERROR
        recorded = argparse.Namespace(**dict(raw["args"], note=args.note or raw["args"].get("note")))
        _write(out / MARKDOWN_FILE, markdown(raw["rows"], recorded, raw["seconds"], chance, raw.get("baselines")))
        plot(raw["rows"], out / PLOT_FILE, chance, recorded.mig_bins)
        print(markdown(raw["rows"], recorded, raw["seconds"], chance, raw.get("baselines")))
        return 0
    start = time.perf_counter()
    test_images = dataset.make_split("test", args.test_images)[0]
    train_images = dataset.make_split("train", args.train_images)[0]
    baselines = {name: b["recon_loss"] for name, b in image_baselines(test_images, mean_image(train_images)).items()}
    rows = []
    for beta in betas:
        rows.append(run_beta(args, beta, test_images, log))
        total = time.perf_counter() - start
        _write(work / RAW_FILE, json.dumps({"args": vars(args), "rows": rows, "baselines": baselines,
                                            "seconds": total}, indent=2) + "\n")
        _write(out / MARKDOWN_FILE, markdown(rows, args, total, chance, baselines))
    plot(rows, out / PLOT_FILE, chance, args.mig_bins)
    print(markdown(rows, args, time.perf_counter() - start, chance, baselines))
    log(f"wrote {out / MARKDOWN_FILE} and {out / PLOT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
