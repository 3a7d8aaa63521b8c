"""Loss curves of a training run: the β-VAE loss, its reconstruction term and its KL term.

Reads the training history (default ``<weights-dir>/history.json``, as written by
``train.py``) and draws ``<out-dir>/loss_curves.png`` (``analysis/curves.py``): three panels
sharing the epoch axis, with the training and validation values of every epoch and, faintly,
the per-step records.

Examples::

    python plots.py
    python plots.py --log
    python plots.py --history runs/celeba/history.json --out-dir results/celeba
"""
import sys
from pathlib import Path

import cli
from analysis.curves import CURVES_FILE, load_history, loss_curves
from system.errors import UserError
from training import RunDir, TrainConfig

HISTORY_FILE = RunDir.HISTORY_FILE


def build_parser():
    parser = cli.make_parser(__doc__)
    parser.add_argument("--history", default=None, metavar="PATH",
                        help=f"the training history JSON (default: <weights-dir>/{HISTORY_FILE})")
    parser.add_argument("--weights-dir", default=cli.DEFAULT_WEIGHTS_DIR, metavar="DIR",
                        help=f"folder of the training run holding {HISTORY_FILE} (default: {cli.DEFAULT_WEIGHTS_DIR})")
    cli.add_out_argument(parser)
    parser.add_argument("--log", action="store_true", help="logarithmic y axes")
    parser.add_argument("--no-steps", action="store_true", help="leave out the per-step records even if present")
    return parser


def _run(argv):
    args = build_parser().parse_args(argv)
    cli.out_dir(args.out_dir)
    history_path = Path(args.history) if args.history else RunDir(args.weights_dir).history
    shipped = cli.shipped_fallback(None, args.weights_dir) if args.history is None else None
    if shipped is not None and not history_path.exists():
        history_path = RunDir(shipped).history
        print(f"note: no run in {args.weights_dir}/ yet, so the shipped faces model's history is drawn; "
              f"train your own with python train.py --dataset faces.", file=sys.stderr)
    history = load_history(history_path)
    path = loss_curves(history, Path(args.out_dir) / CURVES_FILE, title=title(history), log=args.log,
                       show_steps=not args.no_steps)
    print(f"history {history_path}: {len(history['epochs'])} epochs, {len(history.get('steps') or [])} steps")
    print(f"wrote {path}")
    return path


def title(history: dict) -> str:
    """"Training curves, <dataset>, β = <β>, latent dim <D>" from the run's recorded config."""
    try:
        config = TrainConfig.from_dict(history.get("config") or {})
    except (UserError, TypeError, ValueError):
        return "Training curves"
    return f"Training curves, {config.data.dataset}, β = {config.hparams.beta:g}, latent dim {config.model.latent_dim}"


def main(argv=None) -> int:
    return cli.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
