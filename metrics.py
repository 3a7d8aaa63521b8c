"""Reconstruction and latent-usage metrics of a trained β-VAE on held-out images.

On the first ``--num-images`` images of the test split (default 1,000; all of them when the
split is smaller, which is then said), each image is encoded to its posterior mean μ and
decoded from μ -- deterministic, no sampling. Reported, as a Markdown table on stdout and
in full in ``<out-dir>/metrics.json``:

* SSIM (Wang et al. 2004: 11x11 Gaussian window, σ 1.5), mean over images;
* global SSIM: one window over the whole image -- the seed's definition, not comparable
  with SSIM, kept only to reproduce that earlier figure;
* PSNR in dB, mean of the per-image values;
* reconstruction loss: squared error summed over each image's pixels, mean over images;
* KL(q(z|x) || N(0, I)) per image, mean over images;
* the β-VAE loss recon + β·KL (the negative ELBO for β = 1) with the checkpoint's β;
* channel balance: mean R, G, B of the reconstructions and of the originals;
* active latent units, Var_x(μ_j) > 0.01 (Burda et al. 2016), and the KL of each latent
  dimension (all in the JSON, the largest few in the table);
* the split, the number of images used, the checkpoint and its epoch;
* beside the model's image metrics, the same metrics of two outputs that ignore the input, on
  the same images: the mean training image (of the first ``--baseline-images`` training images)
  and black (``"baselines"`` in the JSON). A number is worth what it beats.

Examples::

    python metrics.py
    python metrics.py --num-images 5000 --weights weights/epoch_20
    python metrics.py --dataset celeba --split val --out-dir results/val
"""
import sys
from pathlib import Path

import cli
import imagedata
from dataclasses import replace

from analysis.evaluation import baselines, compute_metrics, markdown_table, mean_image
from analysis.image_metrics import ACTIVE_THRESHOLD
from system.arguments import non_negative_float, positive_int
from system.files import write_json

METRICS_FILE = "metrics.json"


def build_parser():
    parser = cli.make_parser(__doc__)
    cli.add_checkpoint_arguments(parser)
    group = parser.add_argument_group("metrics")
    group.add_argument("--num-images", type=positive_int, default=1000, metavar="N",
                       help="held-out images to evaluate, the first ones of the split (default: 1000)")
    group.add_argument("--active-threshold", type=non_negative_float, default=ACTIVE_THRESHOLD, metavar="V",
                       help=f"a latent unit is active when the variance of its μ over the images exceeds "
                            f"this (default: {ACTIVE_THRESHOLD})")
    group.add_argument("--baseline-images", type=positive_int, default=10000, metavar="N",
                       help="training images averaged into the mean-image baseline (default: 10000)")
    return parser


def _run(argv):
    args = build_parser().parse_args(argv)
    cli.out_dir(args.out_dir)
    checkpoint, data = cli.load_for_script(args, args.num_images)
    result = compute_metrics(checkpoint.params, data.images, beta=checkpoint.config.hparams.beta,
                             active_threshold=args.active_threshold)
    options = cli.data_options(args, checkpoint.config.data)
    options = replace(options, limit=min(args.baseline_images, options.limit or args.baseline_images))
    train_images = imagedata.load(options, "train")
    result.update(dataset=data.dataset, split=data.split, num_images_requested=data.requested, note=data.note,
                  checkpoint=str(checkpoint.path), epoch=checkpoint.epoch,
                  baselines=baselines(data.images, mean_image(train_images[:args.baseline_images])))
    print(markdown_table(result))
    path = write_json(Path(args.out_dir) / METRICS_FILE, result)
    print(f"\nwrote {path}")
    return result


def main(argv=None) -> int:
    return cli.run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
