"""The hand-written train step of two checkouts side by side: does a change slow the step?

Loads ``model`` from each checkout into one process (the older one first), then times their
``train_step`` interleaved on the same uint8 batch and prints the medians and their ratio, and
the median and quartiles of the ratios of steps timed back to back (steadier when the machine's
speed drifts during the run).
A refactor is checked this way against the commit before it::

    git worktree add /tmp/before HEAD~1
    python benchmarks/step_before_after.py /tmp/before . --batch-size 64 --repeats 15
"""
import argparse
import importlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp


def load_model(root):
    """The ``model`` package of the checkout at ``root`` (modules of an earlier load are forgotten)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("model", "system")]:
        del sys.modules[name]
    sys.path.insert(0, root)
    try:
        return importlib.import_module("model")
    finally:
        sys.path.remove(root)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="root of the checkout before the change")
    parser.add_argument("after", help="root of the checkout after the change")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps of each, interleaved (default: 15)")
    args = parser.parse_args()
    models = {"before": load_model(args.before), "after": load_model(args.after)}
    x = jax.random.randint(jax.random.PRNGKey(1), (args.batch_size, 3, 64, 64), 0, 256).astype(jnp.uint8)
    states = {k: m.init_state(m.init_params(jax.random.PRNGKey(0))) for k, m in models.items()}
    times = {k: [] for k in models}
    for r in range(-3, args.repeats):  # three untimed steps each: compilation and warm-up
        for k, m in models.items():
            start = time.perf_counter()
            states[k], metrics = m.train_step(states[k], x, jax.random.PRNGKey(100 + r))
            jax.block_until_ready(metrics)
            if r >= 0:
                times[k].append(time.perf_counter() - start)
    for k, t in times.items():
        print(f"{k}: {args.batch_size / statistics.median(t):.1f} img/s (median of {args.repeats}, batch {args.batch_size})")
    print(f"after / before: {statistics.median(times['before']) / statistics.median(times['after']):.3f}")
    paired = sorted(b / a for b, a in zip(times["before"], times["after"]))  # steps timed back to back
    quartiles = statistics.quantiles(paired, n=4)
    print(f"paired (each step over the other's next to it): median {statistics.median(paired):.3f}, "
          f"quartiles {quartiles[0]:.3f}–{quartiles[2]:.3f}")


if __name__ == "__main__":
    main()
