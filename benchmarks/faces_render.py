"""Rendering speed of the procedural faces (imagedata/faces.py).

Measures images per second of
  * ``make_split("train", N)``: drawing the split's factors and rendering them;
  * ``render`` alone on those factors;
and the one-off cost of drawing the mask tables. Single process, single thread
(NumPy, no BLAS). Prints a Markdown table; each rate is the best of --repeats.

Example::

    python benchmarks/faces_render.py
    python benchmarks/faces_render.py --n 50000 --repeats 1
"""

import argparse
import time


from imagedata import faces


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="number of training faces (default: 20000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions; the best is reported (default: 3)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    faces.layer_masks()
    tables = time.perf_counter() - t0
    factors = faces.split_factors("train", args.n)
    split = best_time(lambda: faces.make_split("train", args.n), args.repeats)
    render = best_time(lambda: faces.render(factors), args.repeats)

    print(f"| what ({args.n:,} faces) | seconds | images/s |")
    print("|---|---|---|")
    print(f"| mask tables (once per process) | {tables:.2f} | |")
    print(f"| make_split(\"train\", {args.n}) | {split:.2f} | {args.n / split:,.0f} |")
    print(f"| render alone | {render:.2f} | {args.n / render:,.0f} |")


if __name__ == "__main__":
    main()
