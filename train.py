"""Train the β-VAE with hand-written gradients.

    python train.py                              # the seed's run: CelebA, 100 epochs, batch 512
    python train.py --dataset faces              # the embedded faces: a short run on a CPU
    python train.py --dataset faces --max-steps 20 --no-progress    # a smoke test
    python train.py --resume                     # continue from the newest checkpoint in weights/
    python train.py --epochs 150 --resume        # extend a finished run
    python train.py --dataset folder --data-dir my_photos --epochs 20 --batch-size 64   # your own images
    python train.py --overwrite                  # replace the run in weights/ by a new one
    python train.py --dataset faces --init-from pretrained/faces    # fine-tune the shipped model

Checkpoints go to ``weights/epoch_N/`` (``model.safetensors`` with the run's config, ``optimizer.safetensors``,
``trainer.json``); the history of every logged step and epoch to ``weights/history.json`` for
``plots.py``; a grid of validation reconstructions and prior samples after every epoch to
``weights/samples/epoch_N.png`` (``--tensorboard DIR`` logs them too). ``--dataset folder --data-dir DIR``
trains on your own images. With several devices the batch is split over them (``training/devices.py``).
"""
import shlex
import sys

import cli
import imagedata
from model.precision import COMPUTE_DTYPES
from system import signals
from system.arguments import non_negative_float, non_negative_int, positive_float, positive_int, seed_int, unit_interval
from system.errors import UserError
from training import PRESETS, TrainConfig, devices, train
from training.config import LR_SCHEDULES, PART_OF
from training.monitor import Monitor


# flags whose default depends on --dataset (training/config.py PRESETS)
PRESET_HELP = "; ".join(f"{name}: {', '.join(f'{k} {v:g}' if isinstance(v, float) else f'{k} {v}' for k, v in p.items())}"
                        for name, p in PRESETS.items() if p)


def build_parser():
    parser = cli.make_parser(__doc__)
    cli.add_data_arguments(parser, default_dataset="celeba")
    parser.set_defaults(dataset=None)  # the seed's CelebA, unless given: a resumed run keeps its own
    seed = TrainConfig.from_flat().flat()  # the seed's settings, by flat name
    preset = f"(default: {{}} as in the seed; the embedded datasets' presets differ: {PRESET_HELP})"
    run = parser.add_argument_group("run")
    run.add_argument("--epochs", type=positive_int, help="epochs to train " + preset.format(seed['epochs']))
    run.add_argument("--batch-size", type=positive_int, help="images per step " + preset.format(seed['batch_size']))
    run.add_argument("--max-steps", type=non_negative_int, help="stop after this many steps in total (default: no limit)")
    run.add_argument("--seed", type=seed_int, help=f"seed of initialisation, shuffling and sampling noise, 0 to "
                                                       f"2^32 − 1 (default: {seed['seed']})")
    run.add_argument("--val-images", type=non_negative_int,
                     help="validation images scored after each epoch, 0 for none " + preset.format(seed['val_images']))
    run.add_argument("--weights-dir", default=cli.DEFAULT_WEIGHTS_DIR,
                     help=f"folder of epoch_N/ checkpoints and history.json (default: {cli.DEFAULT_WEIGHTS_DIR})")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --weights-dir")
    run.add_argument("--resume-from", metavar="PATH",
                     help="continue from this checkpoint folder (an epoch_N/ or interrupted/), e.g. when the newest is corrupt")
    run.add_argument("--init-from", metavar="PATH",
                     help="start the new run from these parameters instead of a random initialisation: a bvaex "
                          "checkpoint or a PyTorch state_dict saved with safetensors (docs/pytorch.md); the "
                          "architecture is read from them, the optimiser starts afresh")
    run.add_argument("--overwrite", action="store_true",
                     help="delete the run already in --weights-dir and start afresh (default: refuse to)")
    run.add_argument("--keep", type=positive_int, help="keep only the newest N epoch checkpoints (default: all)")
    run.add_argument("--log-every", type=positive_int,
                     help=f"steps between reading metrics back from the device (default: {seed['log_every']})")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    run.add_argument("--device", choices=devices.DEVICES, default="auto",
                     help="auto: a GPU when JAX has one, else the CPU; gpu: stop with the reason when JAX sees "
                          "no GPU; cpu: stay on the CPU (default: auto; docs/gpu.md)")
    run.add_argument("--sample-every", type=positive_int, metavar="N",
                     help="also write the grid of reconstructions and prior samples every N steps "
                          "(default: after every epoch only, into WEIGHTS_DIR/samples/)")
    run.add_argument("--no-samples", action="store_true", help="write no sample grids")
    run.add_argument("--tensorboard", metavar="DIR",
                     help="log losses, gradient norm, images/s and the sample grids to DIR for TensorBoard "
                          "(needs pip install -e \".[tensorboard]\")")
    run.add_argument("--distributed", action="store_true",
                     help="call jax.distributed.initialize() first, for multi-process training")
    run.add_argument("--coordinator", metavar="HOST:PORT",
                     help="with --distributed: process 0's address (default: $JAX_COORDINATOR_ADDRESS or detected)")
    run.add_argument("--num-processes", type=positive_int,
                     help="with --distributed: how many processes (default: $JAX_NUM_PROCESSES or detected)")
    run.add_argument("--process-id", type=non_negative_int,
                     help="with --distributed: this process's index (default: $JAX_PROCESS_ID or detected)")
    run.add_argument("--coordinator-timeout", type=positive_float, default=devices.COORDINATOR_TIMEOUT_S,
                     metavar="SECONDS", help="with --distributed: how long to wait for the coordinator "
                                             f"(default: {devices.COORDINATOR_TIMEOUT_S})")
    hp = parser.add_argument_group("model and optimiser (defaults: the seed's)")
    hp.add_argument("--latent-dim", type=positive_int, help=f"size of the Gaussian latent (default: {seed['latent_dim']})")
    hp.add_argument("--channels", type=positive_int, nargs="+",
                    help=f"encoder conv widths, the decoder mirrors them (default: {' '.join(map(str, seed['channels']))})")
    hp.add_argument("--beta", type=non_negative_float, help=f"weight β of the KL term (default: {seed['beta']})")
    hp.add_argument("--lr", type=positive_float, help="AdamW learning rate α " + preset.format(seed['lr']))
    hp.add_argument("--beta1", dest="b1", type=unit_interval, help=f"AdamW β₁ (default: {seed['b1']})")
    hp.add_argument("--beta2", dest="b2", type=unit_interval, help=f"AdamW β₂ (default: {seed['b2']})")
    hp.add_argument("--adam-eps", dest="eps", type=positive_float, help=f"AdamW ε (default: {seed['eps']})")
    hp.add_argument("--weight-decay", type=non_negative_float, help=f"AdamW decoupled weight decay λ (default: {seed['weight_decay']})")
    hp.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                    help="constant, or cosine: the learning rate decays to 0 over the run's planned steps "
                         "(epochs x steps per epoch) (default: constant, the seed's)")
    hp.add_argument("--clip-norm", type=positive_float, help="clip the gradient to this global L2 norm (default: no clipping)")
    hp.add_argument("--clip-value", type=positive_float, help="clip each gradient element to [−c, c] (the seed used 1.0; default: off)")
    hp.add_argument("--compute-dtype", choices=COMPUTE_DTYPES,
                    help="dtype of the forward and backward pass; the weights and AdamW stay float32 (bfloat16 pays "
                         "on GPUs, not on CPUs; default: float32, the checkpoint's for --resume)")
    return parser


def config_from_args(args) -> TrainConfig:
    """The run's TrainConfig: the seed's defaults, the dataset's preset, then the flags given."""
    given = {name: getattr(args, name) for name in PART_OF
             if name not in ("dataset", "crop") and getattr(args, name, None) is not None}
    if args.crop != imagedata.AUTO_CROP:  # given: a size, "square", or None for no crop
        given["crop"] = args.crop
    return TrainConfig.for_dataset(args.dataset, **given)


def _run(argv):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    devices.select(args.device)
    if args.distributed:
        devices.initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                       timeout=args.coordinator_timeout)
    if args.overwrite and (args.resume or args.resume_from):
        raise UserError("--overwrite starts afresh and --resume continues; give one of them.")
    config = config_from_args(args)
    fresh = not (args.resume or args.resume_from)  # a resumed run's dataset and length are its checkpoint's
    if fresh:
        cli.check_file_flags(args, config.data.dataset)
    print(devices.describe())
    if fresh:
        devices.warn_if_long(config)
    monitor = Monitor(samples=not args.no_samples, sample_every=args.sample_every, tensorboard=args.tensorboard)
    summary = train(config, weights_dir=args.weights_dir, resume=args.resume, resume_from=args.resume_from,
                    overwrite=args.overwrite, keep=args.keep, progress=not args.no_progress, monitor=monitor,
                    init_from=args.init_from, command=shlex.join(["python", "train.py"] + list(argv)))
    return signals.exit_code(summary["signal"]) if summary["interrupted"] else 0


def main(argv=None) -> int:
    return cli.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
