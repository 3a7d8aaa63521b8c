"""Disentanglement metrics for data sets with known discrete factors of variation.

Two scores are implemented in NumPy, and ``score`` applies both (with the active-unit count) to
a trained encoder on a dataset that knows its factors (``imagedata.shapes``, ``imagedata.faces``):

* The beta-VAE metric of

      I. Higgins, L. Matthey, A. Pal, C. Burgess, X. Glorot, M. Botvinick,
      S. Mohamed, A. Lerchner (2017). "beta-VAE: Learning Basic Visual
      Concepts with a Constrained Variational Framework." ICLR 2017.

  Each example fixes one factor ``k`` (drawn uniformly), draws ``L`` pairs of
  factor vectors that agree on factor ``k`` (all other factors drawn at
  random), encodes both images of every pair to their posterior means and
  averages ``|z1 - z2|`` over the pairs.  A linear classifier (multinomial
  logistic regression, trained here by accelerated gradient descent with a
  hand-written gradient) predicts ``k`` from that average; the score is its
  accuracy on held-out examples.  See :func:`beta_vae_score` and
  :func:`beta_vae_score_from_codes`.

* The Mutual Information Gap (MIG) of

      R. T. Q. Chen, X. Li, R. Grosse, D. Duvenaud (2018). "Isolating
      Sources of Disentanglement in Variational Autoencoders." NeurIPS 2018.

  Each latent dimension is discretised into equal-width bins; for every
  factor ``v_k`` the two largest mutual informations ``I(z_j; v_k)`` over
  latents are found, and their gap is normalised by the factor entropy
  ``H(v_k)``.  MIG is the average over factors.  See :func:`mig`.

Conventions: factor vectors are integer arrays ``(n, K)`` with entry ``k`` in
``0 .. factor_sizes[k] - 1``; codes are float arrays ``(n, D)``; every random
draw comes from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

from model import Architecture
from system.errors import UserError

from .evaluation import encode_images
from .image_metrics import ACTIVE_THRESHOLD, active_units

CodeFn = Callable[[np.ndarray], np.ndarray]
SampleFn = Callable[[np.random.Generator, int], np.ndarray]


# ---------------------------------------------------------------------------
# beta-VAE metric (Higgins et al. 2017)
# ---------------------------------------------------------------------------


def beta_vae_examples(
    code_fn: CodeFn,
    sample_factors_fn: SampleFn,
    factor_sizes: Sequence[int],
    num_examples: int,
    *,
    rng: np.random.Generator,
    pairs: int = 64,
    examples_per_batch: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Build ``(z_diff, k)`` examples for the beta-VAE metric.

    For each example a factor index ``k`` is drawn uniformly among the
    factors that take more than one value (a constant factor cannot be told
    apart from "no factor fixed").  Then ``pairs`` (= L) pairs of factor
    vectors are drawn with ``sample_factors_fn``; in the second vector of
    each pair factor ``k`` is overwritten with the first vector's value.
    Both are mapped to codes and ``z_diff = mean_l |z1_l - z2_l|``.

    Args:
      code_fn: ``factors (n, K) int -> codes (n, D)``; for a trained model,
        "render the images, then encode them to the posterior mean".
      sample_factors_fn: ``(rng, n) -> (n, K)`` integer factor vectors.
      factor_sizes: number of values of each of the ``K`` factors.
      num_examples: number of examples to build.
      rng: source of randomness.
      pairs: L, pairs averaged per example.
      examples_per_batch: examples whose ``2 * L`` factor vectors are passed
        to ``code_fn`` in one call (``2 * L * examples_per_batch`` images).

    Returns:
      ``features (num_examples, D)`` float64 and ``labels (num_examples,)``
      int64 factor indices.
    """
    sizes = np.asarray(factor_sizes, dtype=np.int64)
    candidates = np.flatnonzero(sizes > 1)
    if candidates.size == 0:
        raise ValueError("at least one factor must take more than one value")
    if pairs < 1 or num_examples < 1 or examples_per_batch < 1:
        raise ValueError("pairs, num_examples and examples_per_batch must be positive")
    labels = candidates[rng.integers(0, candidates.size, size=num_examples)]
    feats = []
    for start in range(0, num_examples, examples_per_batch):
        ks = labels[start : start + examples_per_batch]
        m = ks.shape[0]
        f1 = np.asarray(sample_factors_fn(rng, m * pairs)).copy()
        f2 = np.asarray(sample_factors_fn(rng, m * pairs)).copy()
        if f1.shape != (m * pairs, sizes.shape[0]) or f2.shape != f1.shape:
            raise ValueError(
                f"sample_factors_fn returned shape {f1.shape}, expected {(m * pairs, sizes.shape[0])}"
            )
        k_rep = np.repeat(ks, pairs)
        rows = np.arange(m * pairs)
        f2[rows, k_rep] = f1[rows, k_rep]
        z = np.asarray(code_fn(np.concatenate([f1, f2], axis=0)), dtype=np.float64)
        if z.ndim != 2 or z.shape[0] != 2 * m * pairs:
            raise ValueError(f"code_fn returned shape {z.shape}, expected ({2 * m * pairs}, D)")
        z1, z2 = z[: m * pairs], z[m * pairs :]
        feats.append(np.abs(z1 - z2).reshape(m, pairs, -1).mean(axis=1))
    return np.concatenate(feats, axis=0), labels.astype(np.int64)


def standardize(
    train: np.ndarray, *others: np.ndarray, eps: float = 1e-12
) -> tuple[np.ndarray, ...]:
    """Scale features to zero mean and unit variance using ``train`` statistics.

    Columns whose training standard deviation is below ``eps`` (e.g. a dead
    latent) are only centred.  Returns ``(train_std, *others_std)``.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std < eps, 1.0, std)
    return tuple((x - mean) / std for x in (train, *others))


def softmax_regression_loss_and_grad(
    w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float = 0.0
) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss and gradient of multinomial logistic regression.

    ``loss = -(1/N) sum_i log softmax(x_i w + b)[y_i] + (l2 / 2) ||w||^2``.
    With ``P = softmax(X W + b)`` and ``Y`` the one-hot labels, the gradient
    is ``dW = X^T (P - Y) / N + l2 W`` and ``db = sum_i (P - Y)_i / N``.

    Args:
      w: ``(D, C)`` weights; b: ``(C,)`` biases.
      x: ``(N, D)`` features; y: ``(N,)`` integer labels in ``0 .. C-1``.
      l2: weight-decay coefficient (the bias is not penalised).

    Returns:
      ``(loss, dW (D, C), db (C,))``.
    """
    n = x.shape[0]
    logits = x @ w + b
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -logp[rows, y].mean() + 0.5 * l2 * np.sum(w * w)
    delta = np.exp(logp)
    delta[rows, y] -= 1.0
    delta /= n
    return float(loss), x.T @ delta + l2 * w, delta.sum(axis=0)


def fit_softmax_regression(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    l2: float = 1e-4,
    max_iter: int = 2000,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit multinomial logistic regression by Nesterov-accelerated gradient descent.

    The step is ``1 / L`` with ``L = lambda_max([X 1]^T [X 1]) / (2 N) + l2``,
    an upper bound on the curvature of the softmax cross-entropy (Boehning's
    bound), so no step-size tuning is needed.  Stops after ``max_iter`` steps
    or when the gradient norm falls below ``tol``.

    Args:
      x: ``(N, D)`` features (standardise them first); y: ``(N,)`` labels.
      num_classes: C.
      l2: weight decay on ``W``.

    Returns:
      ``(W (D, C), b (C,))``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n, d = x.shape
    xa = np.concatenate([x, np.ones((n, 1))], axis=1)
    lip = np.linalg.eigvalsh(xa.T @ xa / n)[-1] / 2.0 + l2
    step = 1.0 / lip
    w = np.zeros((d, num_classes))
    b = np.zeros((num_classes,))
    w_prev, b_prev = w, b
    for t in range(1, max_iter + 1):
        mom = (t - 1) / (t + 2)
        vw = w + mom * (w - w_prev)
        vb = b + mom * (b - b_prev)
        _, gw, gb = softmax_regression_loss_and_grad(vw, vb, x, y, l2)
        w_prev, b_prev = w, b
        w = vw - step * gw
        b = vb - step * gb
        if np.sqrt(np.sum(gw * gw) + np.sum(gb * gb)) < tol:
            break
    return w, b


def predict_softmax_regression(w: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Most probable class ``(N,)`` for features ``x (N, D)``."""
    return np.argmax(x @ w + b, axis=1)


def beta_vae_score_from_codes(
    code_fn: CodeFn,
    sample_factors_fn: SampleFn,
    factor_sizes: Sequence[int],
    *,
    rng: np.random.Generator,
    num_train: int = 5000,
    num_test: int = 1000,
    pairs: int = 64,
    examples_per_batch: int = 16,
    l2: float = 1e-4,
    max_iter: int = 2000,
) -> dict:
    """beta-VAE metric (Higgins et al. 2017) for a map from factors to codes.

    Builds ``num_train`` and ``num_test`` examples with
    :func:`beta_vae_examples`, standardises the features with the training
    statistics, fits :func:`fit_softmax_regression` on the training examples
    and evaluates it on both sets.

    Args:
      code_fn: ``factors (n, K) int -> codes (n, D)``.
      sample_factors_fn: ``(rng, n) -> (n, K)`` integer factor vectors.
      factor_sizes: number of values of each factor.
      rng: source of randomness.
      num_train, num_test: numbers of examples.
      pairs: L, pairs averaged per example.
      examples_per_batch: examples per ``code_fn`` call.
      l2, max_iter: classifier settings.

    Returns:
      ``dict(train_accuracy=float, test_accuracy=float)``.  Chance level is
      one over the number of factors with more than one value.
    """
    common = dict(rng=rng, pairs=pairs, examples_per_batch=examples_per_batch)
    x_tr, y_tr = beta_vae_examples(code_fn, sample_factors_fn, factor_sizes, num_train, **common)
    x_te, y_te = beta_vae_examples(code_fn, sample_factors_fn, factor_sizes, num_test, **common)
    x_tr, x_te = standardize(x_tr, x_te)
    w, b = fit_softmax_regression(x_tr, y_tr, len(factor_sizes), l2=l2, max_iter=max_iter)
    return dict(
        train_accuracy=float(np.mean(predict_softmax_regression(w, b, x_tr) == y_tr)),
        test_accuracy=float(np.mean(predict_softmax_regression(w, b, x_te) == y_te)),
    )


def beta_vae_score(
    encode_fn: Callable[[np.ndarray], np.ndarray],
    sample_factors_fn: SampleFn,
    render_fn: Callable[[np.ndarray], np.ndarray],
    factor_sizes: Sequence[int],
    **options,
) -> dict:
    """beta-VAE metric (Higgins et al. 2017) of an image encoder.

    Args:
      encode_fn: ``images (n, 3, 64, 64) uint8 -> mu (n, D)``, the posterior
        means of the encoder.
      sample_factors_fn: ``(rng, n) -> (n, K)`` integer factor vectors drawn
        from the data set's factor distribution.
      render_fn: ``factors (n, K) -> images (n, 3, 64, 64) uint8``.
      factor_sizes: number of values of each factor.
      options: ``rng``, ``num_train``, ``num_test``, ``pairs``, ``examples_per_batch``,
        ``l2``, ``max_iter`` of :func:`beta_vae_score_from_codes`; each ``encode_fn``
        call receives ``2 * pairs * examples_per_batch`` images.

    Returns:
      ``dict(train_accuracy=float, test_accuracy=float)``.
    """
    code_fn = lambda factors: np.asarray(encode_fn(render_fn(factors)))  # noqa: E731
    return beta_vae_score_from_codes(code_fn, sample_factors_fn, factor_sizes, **options)


# ---------------------------------------------------------------------------
# Mutual Information Gap (Chen et al. 2018)
# ---------------------------------------------------------------------------


def discretize(mu: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Equal-width histogram bin index of every entry, per column.

    Column ``j`` is split into ``num_bins`` bins of equal width between its
    minimum and maximum (``numpy.histogram`` edges); a constant column falls
    into a single bin.

    Args:
      mu: ``(N, D)`` codes.

    Returns:
      ``(N, D)`` int64 bin indices in ``0 .. num_bins - 1``.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"expected (N, D), got {mu.shape}")
    if num_bins < 1:
        raise ValueError("num_bins must be positive")
    out = np.empty(mu.shape, dtype=np.int64)
    for j in range(mu.shape[1]):
        edges = np.histogram_bin_edges(mu[:, j], bins=num_bins)
        out[:, j] = np.digitize(mu[:, j], edges[1:-1])
    return out


def _dense_labels(v: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(v, return_inverse=True)
    return inverse.reshape(-1), values.shape[0]


def discrete_entropy(v: np.ndarray) -> float:
    """Entropy (nats) of the empirical distribution of the labels ``v (N,)``."""
    _, counts = np.unique(v, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of the empirical joint distribution of ``a, b (N,)``.

    ``I = sum_{x, y} p(x, y) log(p(x, y) / (p(x) p(y)))`` over the observed
    values.
    """
    ia, na = _dense_labels(np.asarray(a))
    ib, nb = _dense_labels(np.asarray(b))
    if ia.shape != ib.shape:
        raise ValueError("a and b must have the same length")
    joint = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb).astype(np.float64)
    joint /= joint.sum()
    pa = joint.sum(axis=1, keepdims=True)
    pb = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))


def mig(mu: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict:
    """Mutual Information Gap (Chen et al. 2018).

    Each latent dimension is discretised into ``num_bins`` equal-width bins
    (:func:`discretize`).  With ``I[j, k] = I(z_j; v_k)`` the discrete mutual
    information, the gap of factor ``k`` is ``(I_(1) - I_(2)) / H(v_k)``
    where ``I_(1) >= I_(2)`` are the two largest values of ``I[:, k]`` (with
    a single latent, ``I_(2) = 0``); MIG is the mean gap over factors.

    A factor that is constant in ``factors`` has ``H(v_k) = 0``; its gap is
    NaN and it is left out of the mean.  Note that equal-width binning caps
    the information a latent can carry at ``log(num_bins)``, so a factor
    with more than ``num_bins`` values cannot reach a gap of 1 even for a
    perfect code.

    Args:
      mu: ``(N, D)`` latent means.
      factors: ``(N, K)`` ground-truth factor values (any integer coding).
      num_bins: bins per latent dimension (20 in the paper's reference code).

    Returns:
      ``dict(mig=float, per_factor=(K,) float64, mi_matrix=(D, K) float64
      [nats], factor_entropy=(K,) float64 [nats])``.
    """
    mu = np.asarray(mu, dtype=np.float64)
    factors = np.asarray(factors)
    if factors.ndim != 2 or mu.ndim != 2 or factors.shape[0] != mu.shape[0]:
        raise ValueError(f"expected mu (N, D) and factors (N, K), got {mu.shape} and {factors.shape}")
    zb = discretize(mu, num_bins)
    d, k = mu.shape[1], factors.shape[1]
    mi = np.array(
        [[discrete_mutual_info(zb[:, j], factors[:, i]) for i in range(k)] for j in range(d)],
        dtype=np.float64,
    ).reshape(d, k)
    ent = np.array([discrete_entropy(factors[:, i]) for i in range(k)], dtype=np.float64)
    top = -np.sort(-mi, axis=0)
    second = top[1] if d > 1 else np.zeros(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_factor = np.where(ent > 0, (top[0] - second) / np.where(ent > 0, ent, 1.0), np.nan)
    score = float(np.nanmean(per_factor)) if np.any(ent > 0) else float("nan")
    return dict(mig=score, per_factor=per_factor, mi_matrix=mi, factor_entropy=ent)


# ---------------------------------------------------------------------------
# Scoring a trained encoder
# ---------------------------------------------------------------------------

RESULTS_FILE = "disentanglement.json"
DEFAULT_SIZES = {"num_train": 1000, "num_test": 500, "pairs": 32, "mig_samples": 10000, "mig_bins": 40}
ENCODE_CHUNK = 256


def encode_means(params, images, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Posterior means μ (N, D) float64 of uint8 images (N, 3, 64, 64), in padded chunks of ``chunk``."""
    if len(images) == 0:
        return np.zeros((0, Architecture.of(params).latent_dim))
    return encode_images(params, images, chunk)[0].astype(np.float64)


def check_model(params, dataset) -> None:
    """Raise UserError unless the model takes the 3×S×S images of ``dataset`` (a module with factors)."""
    arch = Architecture.of(params)
    size = dataset.IMAGE_SIZE
    if arch.in_channels != 3 or arch.image_size != size:
        raise UserError(f"The model takes {arch.in_channels}x{arch.image_size}x{arch.image_size} images, "
                        f"but the dataset's are 3x{size}x{size}; score a model trained on 3x{size}x{size} images.")


def score(params, dataset, *, seed: int = 0, rng: np.random.Generator | None = None,
          num_train: int = DEFAULT_SIZES["num_train"], num_test: int = DEFAULT_SIZES["num_test"],
          pairs: int = DEFAULT_SIZES["pairs"], mig_samples: int = DEFAULT_SIZES["mig_samples"],
          mig_bins: int = DEFAULT_SIZES["mig_bins"], examples_per_batch: int = 16) -> dict:
    """β-VAE metric, MIG and active units of the encoder ``params`` on the factors of ``dataset``.

    Args:
      params: model parameters (any architecture taking the dataset's 3x64x64 images).
      dataset: a module with known factors (``imagedata.shapes``, ``imagedata.faces``):
        ``FACTOR_NAMES``, ``FACTOR_SIZES``, ``sample_factors``, ``render``.
      seed: seeds two independent streams, one for the β-VAE metric and one for the MIG
        draws; ignored when ``rng`` is given, which then feeds both in turn.
      num_train, num_test: examples to fit and to test the β-VAE metric's classifier.
      pairs: image pairs averaged per β-VAE-metric example (L in the paper).
      mig_samples: uniform factor draws whose posterior means give MIG and active units.
      mig_bins: equal-width bins per latent dimension for MIG.
      examples_per_batch: β-VAE-metric examples rendered and encoded together.

    Returns a JSON-able dict::

      {"beta_vae": {train_accuracy, test_accuracy, chance, num_train, num_test, pairs},
       "mig": {mig, bins, samples, per_factor {name: gap}, best_latent {name: j},
               factor_entropy {name: nats}, mi_matrix [[nats] * K] * D},
       "active_units": {count, latent_dim, threshold, variances [D]},
       "factors": {name: number of values}, "seed": seed, "seconds": wall time}
    """
    for name, value in (("num_train", num_train), ("num_test", num_test), ("pairs", pairs),
                        ("mig_samples", mig_samples), ("mig_bins", mig_bins)):
        if int(value) < 1:
            raise UserError(f"{name} must be a positive whole number, not {value}.")
    if mig_samples < 2:
        raise UserError("mig_samples must be at least 2 to measure any variation.")
    check_model(params, dataset)
    if rng is None:
        beta_rng, mig_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    else:
        beta_rng = mig_rng = rng
    start = time.perf_counter()

    bvae = beta_vae_score(lambda images: encode_means(params, images), dataset.sample_factors, dataset.render,
                          dataset.FACTOR_SIZES, rng=beta_rng, num_train=int(num_train), num_test=int(num_test),
                          pairs=int(pairs), examples_per_batch=int(examples_per_batch))

    factors = dataset.sample_factors(mig_rng, int(mig_samples))
    mu = encode_means(params, dataset.render(factors))
    gap = mig(mu, factors, num_bins=int(mig_bins))
    count, variances = active_units(mu, threshold=ACTIVE_THRESHOLD)

    names = dataset.FACTOR_NAMES
    mi = np.asarray(gap["mi_matrix"])
    finite = lambda v: None if not math.isfinite(float(v)) else float(v)
    return {
        "beta_vae": {"train_accuracy": float(bvae["train_accuracy"]), "test_accuracy": float(bvae["test_accuracy"]),
                     "chance": 1.0 / sum(1 for s in dataset.FACTOR_SIZES if s > 1),
                     "num_train": int(num_train), "num_test": int(num_test), "pairs": int(pairs)},
        "mig": {"mig": finite(gap["mig"]), "bins": int(mig_bins), "samples": int(mig_samples),
                "per_factor": {n: finite(v) for n, v in zip(names, gap["per_factor"])},
                "best_latent": {n: int(np.argmax(mi[:, k])) for k, n in enumerate(names)},
                "factor_entropy": {n: float(v) for n, v in zip(names, gap["factor_entropy"])},
                "mi_matrix": mi.tolist()},
        "active_units": {"count": int(count), "latent_dim": int(mu.shape[1]), "threshold": ACTIVE_THRESHOLD,
                         "variances": np.asarray(variances, np.float64).tolist()},
        "factors": dict(zip(names, (int(s) for s in dataset.FACTOR_SIZES))),
        "seed": int(seed) if rng is None else None,
        "seconds": time.perf_counter() - start,
    }


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _num(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(result: dict, title: str | None = None) -> str:
    """The scores of ``score`` (plus optional checkpoint facts) as Markdown tables."""
    b, g, a = result["beta_vae"], result["mig"], result["active_units"]
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| metric | value |",
        "|---|---|",
        f"| β-VAE metric (Higgins et al. 2017), test accuracy | {_pct(b['test_accuracy'])} "
        f"(train {_pct(b['train_accuracy'])}; chance {_pct(b['chance'])}) |",
        f"| MIG (Chen et al. 2018), {g['bins']} bins | {_num(g['mig'])} |",
        f"| active units (Var μ > {a['threshold']}) | {a['count']} / {a['latent_dim']} |",
        "",
        f"β-VAE metric: {b['num_train']} training and {b['num_test']} test examples of {b['pairs']} pairs each. "
        f"MIG and active units: posterior means of {g['samples']} uniform factor draws, "
        f"{g['bins']} equal-width bins per latent.",
        "",
        "| factor | values | H (nats) | MIG | most informative latent |",
        "|---|---|---|---|---|",
    ]
    for name in g["per_factor"]:
        lines.append(f"| {name} | {result['factors'][name]} | {g['factor_entropy'][name]:.2f} | "
                     f"{_num(g['per_factor'][name])} | z{g['best_latent'][name]} |")
    return "\n".join(lines) + "\n"


def factor_labels(mu, factors, names, dims, num_bins: int = 20) -> dict:
    """{latent dimension: the factor it carries the most mutual information about} for ``dims``.

    ``mu`` (N, D) posterior means and ``factors`` (N, K) of the same images; the MI is that of
    MIG (equal-width bins). A dimension that carries no information about any factor is left out.
    """
    codes = discretize(np.asarray(mu)[:, list(dims)], num_bins)
    labels = {}
    for column, d in enumerate(dims):
        mi = [discrete_mutual_info(codes[:, column], factors[:, k]) for k in range(factors.shape[1])]
        if max(mi) > 1e-3:
            labels[int(d)] = names[int(np.argmax(mi))]
    return labels
