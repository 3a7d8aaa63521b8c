"""Write a synthetic dataset in CelebA's exact layout, to run the real CelebA path without the download.

``img_align_celeba/000001.jpg`` … (178×218 JPEGs: smooth colour fields with a bright ellipse, a
different one per image) and ``list_eval_partition.txt`` with the official split boundaries. The
images mean nothing; the point is timing and exercising ``load_data``'s decoding, caching and
``train.py`` at CelebA's size (202,599 images) on a machine that cannot download it::

    python tools/fake_celeba.py --out /tmp/fake_celeba
    python train.py --data-dir /tmp/fake_celeba --epochs 100
"""
import argparse
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image


from imagedata.celeba import OFFICIAL_RANGES
from system.arguments import positive_int

WIDTH, HEIGHT = 178, 218
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def image(i):
    """A deterministic 218×178 RGB image for index i."""
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    slope_y, slope_x = rng.uniform(-0.4, 0.4, (2, 3))  # a colour gradient per channel
    base = rng.uniform(0, 255, 3) + slope_y * yy[..., None] + slope_x * xx[..., None]
    cy, cx = rng.uniform(80, 140), rng.uniform(60, 120)
    inside = ((yy - cy) / rng.uniform(30, 60)) ** 2 + ((xx - cx) / rng.uniform(20, 45)) ** 2 < 1
    base[inside] = rng.uniform(150, 255, 3)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def write_range(args):
    folder, lo, hi = args
    for i in range(lo, hi):
        image(i).save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)
    return hi - lo


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to create (img_align_celeba/ and the partition file)")
    parser.add_argument("--images", type=positive_int, default=202_599, help="how many images (default: CelebA's 202,599)")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count(), help="processes writing JPEGs")
    args = parser.parse_args()
    folder = os.path.join(args.out, "img_align_celeba")
    os.makedirs(folder, exist_ok=True)
    chunk = 1000
    tasks = [(folder, lo, min(lo + chunk, args.images + 1)) for lo in range(1, args.images + 1, chunk)]
    with ProcessPoolExecutor(args.workers) as pool:
        written = sum(pool.map(write_range, tasks))
    with open(os.path.join(args.out, "list_eval_partition.txt"), "w") as f:
        for i in range(1, args.images + 1):
            split = next((s for s, (lo, hi) in OFFICIAL_RANGES.items() if lo <= i <= hi), "test")
            f.write(f"{i:06d}.jpg {SPLIT_CODES[split]}\n")
    print(f"wrote {written:,} images and list_eval_partition.txt to {args.out}")


if __name__ == "__main__":
    main()
