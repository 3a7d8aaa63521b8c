"""Data pipeline throughput: CelebA decoding, shapes generation, device batches.

Measures
  * images per second decoding CelebA-layout JPEGs into the uint8 cache with
    all cores (N synthetic 178x218 JPEGs in a temporary folder, unless
    --data-dir names a real CelebA folder, of which the first N train images
    are used), and the time to load that cache again;
  * images per second generating the embedded shapes training set;
  * batches per second from the shuffled on-device iterator (float output).

Prints a Markdown table.

Examples::

    python benchmarks/data.py
    python benchmarks/data.py --n 10000 --num-workers 8
    python benchmarks/data.py --data-dir ~/datasets/celeba --n 20000
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw


import imagedata
from imagedata import batches, decoding, shapes


def synthetic_celeba(folder: str, n: int, seed: int = 0) -> None:
    """n face-sized JPEGs (178x218, smooth background and a few blobs) named like CelebA."""
    rng = np.random.default_rng(seed)
    images = os.path.join(folder, "img_align_celeba")
    os.makedirs(images, exist_ok=True)
    yy, xx = np.mgrid[:218, :178].astype(np.float32)
    t = ((xx / 178 + yy / 218) / 2)[..., None]
    noise = rng.normal(0, 6, (8, 218, 178, 3)).astype(np.float32)  # a small bank, reused
    for i in range(1, n + 1):
        c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
        base = c0 * (1 - t) + c1 * t + noise[i % len(noise)]
        im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(4):
            x, y = rng.uniform(20, 158), rng.uniform(20, 198)
            r = rng.uniform(10, 50)
            draw.ellipse((x - r, y - r * 1.3, x + r, y + r * 1.3), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        im.save(os.path.join(images, f"{i:06d}.jpg"), quality=90)
    with open(os.path.join(folder, "list_eval_partition.txt"), "w") as f:
        for i in range(1, n + 1):
            f.write(f"{i:06d}.jpg 0\n")


def bench_decode(data_dir: str, n: int, workers: int, cache_dir: str) -> tuple:
    start = time.perf_counter()
    options = imagedata.DataOptions("celeba", data_dir=data_dir, cache_dir=cache_dir, limit=n)
    images = imagedata.load(options, "train", num_workers=workers, progress=False)
    build = time.perf_counter() - start
    count = len(images)
    start = time.perf_counter()
    again = imagedata.load(options, "train", num_workers=workers, progress=False)
    np.asarray(again[-1]).sum()
    reload = time.perf_counter() - start
    return count, build, reload


def bench_batches(images, batch_size: int, epochs: int) -> tuple:
    import jax

    key = jax.random.key(0)
    for b in batches.iterate_batches(images, batch_size, jax.random.fold_in(key, 10_000)):
        b.block_until_ready()  # warm-up epoch: compiles the permutation and the gather
    steps = 0
    start = time.perf_counter()
    for e in range(epochs):
        for b in batches.iterate_batches(images, batch_size, jax.random.fold_in(key, e)):
            b.block_until_ready()
            steps += 1
    return steps, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help="a real CelebA folder to decode from (default: generate synthetic JPEGs in a temp dir)")
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs to decode (default: 2000)")
    parser.add_argument("--num-workers", type=int, default=None, help="decoding processes (default: all cores)")
    parser.add_argument("--shapes-n", type=int, default=50_000,
                        help="shapes images to generate (default: 50000, the training set size)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 64],
                        help="batch sizes for the device iterator (default: 512 64)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per batch size (default: 3)")
    args = parser.parse_args(argv)

    import jax

    workers = args.num_workers or decoding.default_num_workers()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bvaex_bench_") as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = os.path.join(tmp, "celeba")
            t0 = time.perf_counter()
            synthetic_celeba(data_dir, args.n)
            print(f"generated {args.n} synthetic JPEGs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        count, build, reload = bench_decode(data_dir, args.n, workers, os.path.join(tmp, "cache"))
        source = "synthetic" if args.data_dir is None else "CelebA"
        rows.append((f"decode JPEG -> uint8 cache ({source} 178x218, crop 148, 64 px)",
                     f"{count:,} images, {workers} workers", f"{count / build:,.0f} img/s ({build:.2f} s)"))
        rows.append(("load the cache again (memory-mapped)", f"{count:,} images", f"{reload * 1000:.1f} ms"))

    t0 = time.perf_counter()
    images, _ = shapes.make_split("train", args.shapes_n)
    gen = time.perf_counter() - t0
    rows.append(("shapes generation (render 64x64 sprites)", f"{args.shapes_n:,} images",
                 f"{args.shapes_n / gen:,.0f} img/s ({gen:.2f} s)"))

    device_images = batches.to_device(images)
    device_images.block_until_ready()
    device = jax.devices()[0]
    for bs in args.batch_sizes:
        steps, seconds = bench_batches(device_images, bs, args.epochs)
        rows.append((f"device iterator, shuffled, uint8 -> float32 ({device.platform})",
                     f"batch {bs}, {steps:,} batches",
                     f"{steps / seconds:,.0f} batches/s ({steps * bs / seconds:,.0f} img/s)"))

    print(f"\nDevice: {device.device_kind} ({device.platform}); CPU cores: {os.cpu_count()}\n")
    print("| measurement | setting | rate |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
