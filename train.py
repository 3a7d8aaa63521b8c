"""Train the β-VAE with hand-written gradients.

    python train.py                              # the seed's run: CelebA, 100 epochs, batch 512
    python train.py --dataset shapes             # the embedded dataset, a few minutes on a CPU
    python train.py --dataset shapes --max-steps 20 --no-progress   # a smoke test
    python train.py --resume                     # continue from the newest checkpoint in weights/
    python train.py --epochs 150 --resume        # extend a finished run
    python train.py --help

Checkpoints go to ``weights/epoch_N/`` (``params.npz`` with the run's config, ``optimizer.npz``,
``trainer.json``), each written to a temporary folder and renamed into place; the history of
every logged step and every epoch goes to ``weights/history.json`` for ``plots.py``.
With several devices (``jax.device_count() > 1``) the batch is sharded over a device mesh and
the same compiled step runs data-parallel; see the README for multi-host runs.
"""
import argparse
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import load_data
from model import DEFAULT_ARCHITECTURE, CheckpointError, architecture, init_params, init_state, load_params, save_params, train_step
from model import adamw, heap, xla_options
from model.checkpoint import EPOCH_PREFIX, PARAMS_FILE, atomic_write, epoch_dirs
from model.model import TrainState, forward
from model.precision import COMPUTE_DTYPES

HISTORY_FILE = "history.json"
INTERRUPTED = "interrupted"
# What `--dataset` changes when a flag is left at its default: the seed's settings for CelebA,
# and a run of a few minutes on a 2-core CPU for the embedded shapes.
PRESETS = {
    "celeba": {"epochs": 100, "batch_size": 512, "limit": None, "val_images": 2048, "lr": 1e-3},
    # small sprites on black: at 1e-3 the decoder settles on an all-black image within a few hundred
    # steps and stays there (recon ≈ 268, SSIM ≈ 0.92 for a picture of nothing); 3e-4 learns the sprites
    "shapes": {"epochs": 3, "batch_size": 32, "limit": 10240, "val_images": 512, "lr": 3e-4},
}


class TrainingError(RuntimeError):
    """A run that cannot start or go on, with one sentence saying why."""


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train the convolutional β-VAE (every gradient hand-written) and save checkpoints.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    load_data.add_data_arguments(parser, default_dataset="celeba")
    run = parser.add_argument_group("run")
    run.add_argument("--epochs", type=load_data.positive_int, default=None,
                     help="epochs to train (default: 100 for celeba as in the seed, 3 for shapes)")
    run.add_argument("--batch-size", type=load_data.positive_int, default=None,
                     help="images per step (default: 512 for celeba as in the seed, 32 for shapes)")
    run.add_argument("--max-steps", type=load_data.non_negative_int, default=None, help="stop after this many steps in total (quick runs)")
    run.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and sampling noise")
    run.add_argument("--val-images", type=load_data.non_negative_int, default=None,
                     help="validation images scored after each epoch (default: 2048 celeba, 512 shapes; 0 = none)")
    run.add_argument("--weights-dir", default="weights", help="folder of epoch_N/ checkpoints and history.json")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --weights-dir")
    run.add_argument("--keep", type=load_data.positive_int, default=None, help="keep only the newest N epoch checkpoints")
    run.add_argument("--log-every", type=load_data.positive_int, default=10,
                     help="steps between reading metrics back from the device (and history records)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    run.add_argument("--distributed", action="store_true",
                     help="call jax.distributed.initialize() first, for multi-host training")
    hp = parser.add_argument_group("model and optimiser (defaults: the seed's)")
    hp.add_argument("--latent-dim", type=load_data.positive_int, default=None, help="size of the Gaussian latent (default 128)")
    hp.add_argument("--channels", type=load_data.positive_int, nargs="+", default=None,
                    help="encoder conv widths, the decoder mirrors them (default 32 64 128)")
    hp.add_argument("--beta", type=float, default=0.5, help="weight β of the KL term")
    hp.add_argument("--lr", type=float, default=None,
                    help="AdamW learning rate α (default: 1e-3 for celeba as in the seed, 3e-4 for shapes)")
    hp.add_argument("--beta1", type=float, default=0.9, help="AdamW β₁")
    hp.add_argument("--beta2", type=float, default=0.999, help="AdamW β₂")
    hp.add_argument("--adam-eps", type=float, default=1e-8, help="AdamW ε")
    hp.add_argument("--weight-decay", type=float, default=0.01, help="AdamW decoupled weight decay λ")
    hp.add_argument("--clip-norm", type=float, default=None,
                    help="clip the gradient to this global L2 norm (default: no clipping)")
    hp.add_argument("--clip-value", type=float, default=None,
                    help="clip each gradient element to [−c, c] (the seed used 1.0)")
    hp.add_argument("--compute-dtype", choices=COMPUTE_DTYPES, default=None,
                    help="dtype of the forward and backward pass; the weights and AdamW stay float32 "
                         "(bfloat16 pays on GPUs, not on CPUs; default float32, the checkpoint's for --resume)")
    return parser


def config_from_args(args):
    """The run's full, JSON-able configuration: model, training and data options."""
    preset = PRESETS[args.dataset]
    data = load_data.data_options(args)
    if data.get("limit") is None:
        data["limit"] = preset["limit"]
    pick = lambda value, name: preset[name] if value is None else value
    return {
        # None: the seed's value for a new run, the checkpoint's for --resume
        "model": {"in_channels": 3, "channels": args.channels and list(args.channels), "latent_dim": args.latent_dim,
                  "image_size": 64},
        "train": {"epochs": pick(args.epochs, "epochs"), "batch_size": pick(args.batch_size, "batch_size"),
                  "max_steps": args.max_steps, "seed": args.seed, "val_images": pick(args.val_images, "val_images"),
                  "beta": args.beta, "lr": pick(args.lr, "lr"), "b1": args.beta1, "b2": args.beta2, "eps": args.adam_eps,
                  "weight_decay": args.weight_decay, "clip_norm": args.clip_norm, "clip_value": args.clip_value,
                  "log_every": args.log_every, "compute_dtype": args.compute_dtype},
        "data": data,
    }


# --------------------------------------------------------------------------- checkpoints

def hyperparams(train_cfg):
    inf = float("inf")
    return dict(beta=train_cfg["beta"], lr=train_cfg["lr"], b1=train_cfg["b1"], b2=train_cfg["b2"],
                eps=train_cfg["eps"], weight_decay=train_cfg["weight_decay"],
                clip_norm=inf if train_cfg["clip_norm"] is None else train_cfg["clip_norm"],
                clip_value=inf if train_cfg["clip_value"] is None else train_cfg["clip_value"])


def save_checkpoint(folder, state, config, progress):
    """Write params, optimizer state and progress into ``folder`` all at once (temp dir + rename)."""
    folder = Path(folder)
    tmp = folder.with_name("." + folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    params, opt = jax.device_get((state.params, state.opt))
    save_params(tmp / PARAMS_FILE, params, config)
    moments = {f"m.{k}": v for k, v in opt.m.items()} | {f"v.{k}": v for k, v in opt.v.items()}
    atomic_write(tmp / "optimizer.npz", lambda f: np.savez(f, step=np.asarray(opt.step), **moments))
    atomic_write(tmp / "trainer.json", lambda f: f.write(json.dumps(progress, indent=2).encode()))
    old = folder.with_name("." + folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint_state(folder, config):
    """(TrainState, progress dict) from a checkpoint folder written by ``save_checkpoint``."""
    folder = Path(folder)
    params, saved = load_params(folder / PARAMS_FILE, architecture=config["model"])
    try:
        with np.load(folder / "optimizer.npz", allow_pickle=False) as f:
            m = {k: jnp.asarray(f[f"m.{k}"]) for k in params}
            v = {k: jnp.asarray(f[f"v.{k}"]) for k in params}
            step = jnp.asarray(f["step"], jnp.int32)
        progress = json.loads((folder / "trainer.json").read_text())
    except (OSError, KeyError, ValueError) as err:
        raise TrainingError(f"The checkpoint in {folder} is incomplete ({err}); resume from another one or start afresh.") from None
    state = init_state(params, **hyperparams(config["train"]))
    return TrainState(state.params, adamw.AdamWState(step, m, v), state.hparams), progress


def find_resume_point(weights_dir):
    """The checkpoint folder with the most steps: the newest epoch_N or an interrupted one."""
    candidates = [path for _, path in epoch_dirs(weights_dir)]
    interrupted = Path(weights_dir) / INTERRUPTED
    if (interrupted / PARAMS_FILE).is_file():
        candidates.append(interrupted)
    if not candidates:
        raise TrainingError(f"--resume found no checkpoint in {weights_dir}/; run without --resume to start a new run.")

    def steps(path):
        try:
            return json.loads((path / "trainer.json").read_text())["step"]
        except (OSError, KeyError, ValueError):
            return -1
    return max(candidates, key=steps)


def prune(weights_dir, keep):
    if keep:
        for _, path in epoch_dirs(weights_dir)[:-keep]:
            shutil.rmtree(path, ignore_errors=True)


def write_history(weights_dir, history):
    atomic_write(Path(weights_dir) / HISTORY_FILE, lambda f: f.write(json.dumps(history).encode()))


# --------------------------------------------------------------------------- evaluation

@xla_options.jit
def _eval_sums(params, x, mask, beta):
    """Sums over the masked images of recon, KL and loss, decoding μ (no sampling noise)."""
    x = load_data.to_float(x)
    eps = jnp.zeros((x.shape[0], architecture(params)["latent_dim"]), x.dtype)  # ε = 0: z = μ
    x_hat, mu, logvar, _ = forward(params, x, eps)
    recon = jnp.sum((x_hat - x) ** 2, axis=(1, 2, 3))
    kl = -0.5 * jnp.sum(1 + logvar - mu ** 2 - jnp.exp(logvar), axis=1)
    return jnp.stack([jnp.sum(mask * recon), jnp.sum(mask * kl), jnp.sum(mask * (recon + beta * kl))])


def evaluate_loss(params, images, beta, chunk=256):
    """Mean recon, KL and loss over ``images`` (uint8, host or device), in fixed-size chunks."""
    n = images.shape[0]
    total = np.zeros(3)
    for start in range(0, n, chunk):
        x = np.asarray(images[start:start + chunk])
        mask = np.ones(chunk, np.float32)
        if x.shape[0] < chunk:  # pad the last chunk so every chunk has one compiled shape
            mask[x.shape[0]:] = 0
            x = np.concatenate([x, np.zeros((chunk - x.shape[0],) + x.shape[1:], x.dtype)])
        total += np.asarray(_eval_sums(params, x, mask, beta), np.float64)
    recon, kl, loss = total / max(n, 1)
    return {"loss": loss, "recon": recon, "kl": kl}


# --------------------------------------------------------------------------- devices

def device_layout(batch_size):
    """(sharding of a batch, sharding of replicated arrays), or (None, None) on one device."""
    devices = jax.devices()
    if len(devices) == 1:
        return None, None
    if batch_size % len(devices):
        raise TrainingError(f"The batch size {batch_size} does not divide across {len(devices)} devices; "
                            f"pick a multiple of {len(devices)}.")
    mesh = jax.sharding.Mesh(np.array(devices), ("data",))
    spec = jax.sharding.PartitionSpec
    return jax.sharding.NamedSharding(mesh, spec("data")), jax.sharding.NamedSharding(mesh, spec())


def place_batch(batch, batch_sharding):
    if batch_sharding is None:
        return batch
    if jax.process_count() > 1:  # each host feeds its own slice of the global batch
        per_host = batch.shape[0] // jax.process_count()
        local = batch[jax.process_index() * per_host:(jax.process_index() + 1) * per_host]
        return jax.make_array_from_process_local_data(batch_sharding, np.asarray(local))
    return jax.device_put(batch, batch_sharding)


# --------------------------------------------------------------------------- the loop

def _progress_bar(total, desc, enabled, initial=0):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, leave=True)


def train(config, *, weights_dir="weights", resume=False, keep=None, progress=True, log=print):
    """Run (or resume) training as ``config`` says. Returns a summary dict.

    Raises TrainingError / load_data.DataError / CheckpointError with one-sentence messages.
    """
    weights_dir = Path(weights_dir)
    if not resume:
        defaults = dict(DEFAULT_ARCHITECTURE, channels=list(DEFAULT_ARCHITECTURE["channels"]))
        config = dict(config, model={k: defaults[k] if v is None else v for k, v in config["model"].items()},
                      train=dict(config["train"], compute_dtype=config["train"].get("compute_dtype") or "float32"))
    tcfg = config["train"]
    batch_size, seed = tcfg["batch_size"], tcfg["seed"]
    batch_sharding, replicated = device_layout(batch_size)

    if resume:
        folder = find_resume_point(weights_dir)
        _, saved = load_params(folder / PARAMS_FILE)
        saved_model = dict(saved.get("model") or DEFAULT_ARCHITECTURE)
        saved_model["channels"] = list(saved_model["channels"])
        if any(value is not None and saved_model.get(key) != value for key, value in config["model"].items()):
            raise TrainingError(f"The checkpoint in {folder} is of another architecture ({saved['model']}); "
                                f"resume with the same --channels/--latent-dim or use another --weights-dir.")
        compute = tcfg.get("compute_dtype") or saved["train"].get("compute_dtype") or "float32"
        config = dict(saved, train=dict(saved["train"], epochs=tcfg["epochs"], max_steps=tcfg["max_steps"],
                                        compute_dtype=compute))
        tcfg = config["train"]
        batch_size, seed = tcfg["batch_size"], tcfg["seed"]
        batch_sharding, replicated = device_layout(batch_size)

    train_images = load_data.load_from_options(config["data"], "train", progress=progress)
    val_images = None
    if tcfg["val_images"]:
        val_images = load_data.load_from_options(dict(config["data"], limit=tcfg["val_images"]), "val", progress=progress)
    steps_per_epoch = load_data.num_batches(len(train_images), batch_size)
    if steps_per_epoch == 0:
        raise TrainingError(f"The training set has {len(train_images)} images, fewer than one batch of {batch_size}; "
                            f"lower --batch-size or raise --limit.")
    if resume:
        state, done = load_checkpoint_state(folder, config)
        history_path = weights_dir / HISTORY_FILE
        history = json.loads(history_path.read_text()) if history_path.is_file() else {"epochs": [], "steps": []}
        history["steps"] = [r for r in history["steps"] if r["step"] <= done["step"]]
        history["epochs"] = [r for r in history["epochs"] if r["epoch"] <= done["epoch"]]
        log(f"Resuming from {folder} at epoch {done['epoch']}, step {done['step']}.")
    else:
        params = init_params(jax.random.PRNGKey(seed), **dict(config["model"], channels=tuple(config["model"]["channels"])))
        state = init_state(params, **hyperparams(tcfg))
        done = {"epoch": 0, "batch": 0, "step": 0, "wall_time": 0.0}
        history = {"epochs": [], "steps": []}
    history["config"] = config
    images = load_data.to_device(train_images, sharding=replicated)
    if replicated is not None:
        state = jax.device_put(state, replicated)
    total_steps = tcfg["epochs"] * steps_per_epoch
    if tcfg["max_steps"] is not None:
        total_steps = min(total_steps, tcfg["max_steps"])
    log(f"Training on {len(train_images):,} {config['data']['dataset']} images, {steps_per_epoch} steps of "
        f"{batch_size} per epoch, {total_steps} steps in all, on {jax.device_count()} {jax.devices()[0].platform} device(s).")

    base_key = jax.random.PRNGKey(seed)
    shuffle_key = lambda epoch: jax.random.fold_in(jax.random.fold_in(base_key, 1), epoch)
    noise_key = lambda step: jax.random.fold_in(jax.random.fold_in(base_key, 2), step)
    log_every = max(1, tcfg["log_every"])
    compute_dtype = tcfg.get("compute_dtype") or "float32"  # checkpoints older than the option: float32
    step, epoch, skip = done["step"], done["epoch"], done["batch"]
    wall_before = done.get("wall_time", 0.0)
    start = time.perf_counter()
    interrupted = False
    last_saved = None

    def elapsed():
        return wall_before + time.perf_counter() - start

    def progress_record(epoch_, batch_):
        return {"epoch": epoch_, "batch": batch_, "step": step, "wall_time": elapsed()}

    previous_handler = signal.getsignal(signal.SIGINT)
    stop_requested = []  # Ctrl-C finishes the current step, then a checkpoint is written
    signal.signal(signal.SIGINT, lambda *_: stop_requested.append(True))
    try:
        while epoch < tcfg["epochs"] and step < total_steps and not stop_requested:
            bar = _progress_bar(min(steps_per_epoch, total_steps - step + skip), f"epoch {epoch + 1}/{tcfg['epochs']}",
                                progress, initial=skip)
            pending, window_start, window_images = [], time.perf_counter(), 0
            sums = np.zeros(3)
            counted = 0
            batches = load_data.iterate_batches(images, batch_size, shuffle_key(epoch))
            for i, batch in enumerate(batches):
                if i < skip:
                    continue
                state, metrics = train_step(state, place_batch(batch, batch_sharding), noise_key(step),
                                            compute_dtype=compute_dtype)
                step += 1
                pending.append((step, metrics))
                window_images += batch_size
                end_of_epoch = i + 1 == steps_per_epoch or step >= total_steps
                if len(pending) >= log_every or end_of_epoch or stop_requested:
                    fetched = jax.device_get([m for _, m in pending])  # one host sync per window
                    now = time.perf_counter()
                    rate = window_images / max(now - window_start, 1e-9)
                    for (s, _), m in zip(pending, fetched):
                        if not all(math.isfinite(float(m[k])) for k in ("loss", "recon", "kl")):
                            raise TrainingError(f"The loss became {float(m['loss'])} at step {s}; stopping. The last good "
                                                f"checkpoint is kept; try a lower --lr or --clip-norm.")
                        history["steps"].append({"step": s, "epoch": epoch + 1, "loss": float(m["loss"]),
                                                 "recon": float(m["recon"]), "kl": float(m["kl"]),
                                                 "grad_norm": float(m["grad_norm"]), "lr": tcfg["lr"],
                                                 "wall_time": elapsed(), "images_per_s": rate})
                        sums += [float(m["loss"]), float(m["recon"]), float(m["kl"])]
                        counted += 1
                    last = history["steps"][-1]
                    if bar is not None:
                        bar.update(len(pending))
                        bar.set_postfix(loss=f"{last['loss']:.2f}", recon=f"{last['recon']:.2f}",
                                        kl=f"{last['kl']:.2f}", img_s=f"{rate:.0f}")
                    pending, window_start, window_images = [], now, 0
                if stop_requested or step >= total_steps:
                    break
            if bar is not None:
                bar.close()
            batch_done = i + 1
            if stop_requested and batch_done < steps_per_epoch:  # Ctrl-C: resumable from this batch
                skip, interrupted = batch_done, True
                break
            partial = batch_done < steps_per_epoch  # --max-steps ended the run inside this epoch
            record = {"epoch": epoch + 1, "step": step, "train_loss": sums[0] / counted,
                      "train_recon": sums[1] / counted, "train_kl": sums[2] / counted,
                      "wall_time": elapsed(), "images_per_s": _epoch_rate(history, epoch + 1)}
            if partial:
                record["partial"] = True
            if val_images is not None and len(val_images):
                val = evaluate_loss(state.params, val_images, tcfg["beta"])
                record.update(val_loss=val["loss"], val_recon=val["recon"], val_kl=val["kl"])
            history["epochs"].append(record)
            last_saved = weights_dir / f"{EPOCH_PREFIX}{epoch + 1}"
            epoch, skip = (epoch, batch_done) if partial else (epoch + 1, 0)
            save_checkpoint(last_saved, state, config, progress_record(epoch, skip))
            write_history(weights_dir, history)
            shutil.rmtree(weights_dir / INTERRUPTED, ignore_errors=True)
            prune(weights_dir, keep)
            val_text = f", val loss {record['val_loss']:.2f} (recon {record['val_recon']:.2f}, kl {record['val_kl']:.2f})" \
                if "val_loss" in record else ""
            log(f"epoch {record['epoch']}{' (partial)' if partial else ''}: train loss {record['train_loss']:.2f} "
                f"(recon {record['train_recon']:.2f}, kl {record['train_kl']:.2f}){val_text}, "
                f"{record['images_per_s']:.0f} img/s -> {last_saved}")
            if partial:
                break
    finally:
        signal.signal(signal.SIGINT, previous_handler)

    if interrupted:  # keep what was learnt so far, resumable from this batch
        last_saved = weights_dir / INTERRUPTED
        save_checkpoint(last_saved, state, config, progress_record(epoch, skip))
        write_history(weights_dir, history)
        log(f"Interrupted at step {step}; saved {last_saved} (continue with --resume).")
    return {"step": step, "epoch": epoch, "checkpoint": str(last_saved) if last_saved else None,
            "history": history, "state": state, "interrupted": interrupted}


def _epoch_rate(history, epoch):
    rates = [r["images_per_s"] for r in history["steps"] if r["epoch"] == epoch]
    return float(np.median(rates)) if rates else float("nan")


def main(argv=None):
    args = build_parser().parse_args(argv)
    heap.keep_freed_memory()  # before the first computation (model/heap.py)
    try:
        if args.distributed:
            jax.distributed.initialize()
        config = config_from_args(args)
        summary = train(config, weights_dir=args.weights_dir, resume=args.resume, keep=args.keep,
                        progress=not args.no_progress)
    except (TrainingError, load_data.DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 130 if summary["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
