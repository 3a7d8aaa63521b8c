"""Tests of the procedural sprites in imagedata/shapes.py."""

import time

import numpy as np
import pytest

from imagedata import shapes

BASE = (0, 5, 0, 10, 12, 0)  # square, largest, upright, somewhere left of centre, red


def with_factor(base, **changes):
    f = list(base)
    for k, v in changes.items():
        f[shapes.FACTOR_NAMES.index(k)] = v
    return f


def mass(img: np.ndarray) -> np.ndarray:
    """Per-pixel intensity of one (3, 64, 64) image."""
    return img.astype(np.float64).max(axis=0)


def centroid(img: np.ndarray) -> tuple:
    w = mass(img)
    ys, xs = np.mgrid[:64, :64]
    return (w * ys).sum() / w.sum(), (w * xs).sum() / w.sum()


def test_factor_metadata():
    assert shapes.FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y", "color")
    assert shapes.FACTOR_SIZES == (3, 6, 40, 32, 32, shapes.NUM_COLORS)
    assert shapes.NUM_COLORS == len(shapes.COLORS) == 6
    assert np.allclose(shapes.SCALES, np.linspace(0.5, 1.0, 6))
    assert len(shapes.ORIENTATIONS) == 40 and shapes.ORIENTATIONS[-1] < 2 * np.pi


def test_render_is_deterministic_and_well_formed():
    rng = np.random.default_rng(0)
    f = shapes.sample_factors(rng, 64)
    a, b = shapes.render(f), shapes.render(f.copy())
    assert a.dtype == np.uint8 and a.shape == (64, 3, 64, 64)
    np.testing.assert_array_equal(a, b)
    # One at a time gives the same pictures as a batch.
    np.testing.assert_array_equal(shapes.render(f[5]), a[5:6])
    assert shapes.render(np.zeros((0, 6), int)).shape == (0, 3, 64, 64)
    # Black background, some sprite always visible, saturated colours reach 255.
    assert (a[:, :, 0, 0] == 0).all()
    assert (a.reshape(64, -1).max(axis=1) == 255).all()


def test_render_rejects_bad_factors():
    with pytest.raises(ValueError):
        shapes.render(np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="pos_x"):
        shapes.render([with_factor(BASE, pos_x=32)])
    with pytest.raises(ValueError):
        shapes.render([with_factor(BASE, color=-1)])


def test_position_moves_the_centroid():
    xs = shapes.render([with_factor(BASE, pos_x=k) for k in (0, 1, 15, 31)])
    ys = shapes.render([with_factor(BASE, pos_y=k) for k in (0, 1, 15, 31)])
    cx = [centroid(im)[1] for im in xs]
    cy = [centroid(im)[0] for im in ys]
    # One index step is one pixel, in the stated direction (x right, y down).
    np.testing.assert_allclose(np.diff(cx), [1, 14, 16], atol=1e-9)
    np.testing.assert_allclose(np.diff(cy), [1, 14, 16], atol=1e-9)
    assert abs(centroid(xs[0])[0] - centroid(xs[3])[0]) < 1e-9  # x does not move y
    # The centre of the grid is the centre of the frame (within a pixel).
    mid = shapes.render([with_factor(BASE, shape=1, pos_x=15, pos_y=15)])[0]
    assert abs(centroid(mid)[0] - 31.0) < 0.5 and abs(centroid(mid)[1] - 31.0) < 0.5


def test_colour_moves_the_mean_colour():
    imgs = shapes.render([with_factor(BASE, color=c) for c in range(shapes.NUM_COLORS)])
    area = mass(imgs[0]) > 0
    for img, rgb in zip(imgs, shapes.COLORS):
        mean = img[:, area].astype(float).mean(axis=1)
        on = rgb > 0
        assert (mean[on] > 100).all() and (mean[~on] == 0).all()
        np.testing.assert_array_equal(mass(img) > 0, area)  # colour does not change the shape
    means = imgs.reshape(6, 3, -1).mean(axis=2)
    assert len({tuple(np.round(m, 3)) for m in means}) == 6


def test_scale_changes_the_area():
    for shape in range(3):
        imgs = shapes.render([with_factor(BASE, shape=shape, scale=s, orientation=3) for s in range(6)])
        areas = [mass(im).sum() / 255 for im in imgs]
        assert all(b > a for a, b in zip(areas, areas[1:]))
        assert 3.0 < areas[-1] / areas[0] < 5.0  # linear scale 0.5 -> 1.0 quadruples the area
        if shape < 2:  # symmetric shapes grow about a fixed centre
            np.testing.assert_allclose(centroid(imgs[0]), centroid(imgs[-1]), atol=0.3)


def test_largest_sprite_is_clearly_visible():
    img = shapes.render([with_factor(BASE, pos_x=15, pos_y=15)])[0]
    cols = np.nonzero(mass(img).max(axis=0) > 127)[0]
    assert 18 <= cols.max() - cols.min() + 1 <= 22  # the square at scale 1.0 spans ~20 px


def test_shape_and_orientation_change_the_mask():
    masks = [mass(im) for im in shapes.render([with_factor(BASE, shape=s) for s in range(3)])]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(masks[i] - masks[j]).sum() / 255 > 20
    heart = shapes.render([with_factor(BASE, shape=2, orientation=k) for k in (0, 10, 20)])
    assert np.abs(mass(heart[0]) - mass(heart[1])).sum() / 255 > 20
    # Upright the heavy lobes are above the centre (row 12 + 16 = 28); a quarter
    # turn counter-clockwise moves them left of it (column 10 + 16 = 26), half a turn below.
    c0, c10, c20 = (centroid(im) for im in heart)
    assert c0[0] < 28 < c20[0]
    assert c10[1] < 26 and abs(c10[0] - 28) < 0.5
    masks = shapes.sprite_masks().astype(int)
    flipped = np.flip(masks[2, 5, 0], axis=(0, 1))
    assert np.abs(flipped - masks[2, 5, 20]).mean() < 2
    # The square has a fourfold symmetry: a quarter turn (10 steps) gives the same picture.
    sq = shapes.render([with_factor(BASE, orientation=k) for k in (0, 10, 5)])
    assert np.abs(mass(sq[0]) - mass(sq[1])).max() <= 64
    assert np.abs(mass(sq[0]) - mass(sq[2])).sum() / 255 > 20


def test_every_sprite_fits_inside_the_frame():
    masks = shapes.sprite_masks()
    assert masks.shape == (3, 6, 40, shapes.SPRITE_SIZE, shapes.SPRITE_SIZE)
    # No mask touches its canvas border ...
    border = np.concatenate([masks[..., 0, :], masks[..., -1, :], masks[..., :, 0], masks[..., :, -1]], axis=-1)
    assert border.max() == 0
    # ... and the canvas at the last position still ends inside the 64 px frame.
    assert shapes.NUM_POSITIONS - 1 + shapes.SPRITE_SIZE <= shapes.IMAGE_SIZE
    f = np.array([[s, 5, o, x, y, 1] for s in range(3) for o in range(0, 40, 3) for x in (0, 31) for y in (0, 31)])
    imgs = shapes.render(f)
    totals = imgs.reshape(len(f), -1).astype(np.int64).sum(axis=1)
    expected = [masks[s, 5, o].astype(np.int64).sum() * 2 for s, _, o, _, _, _ in f]  # yellow: R and G
    np.testing.assert_array_equal(totals, expected)


def test_sample_factors_is_uniform():
    rng = np.random.default_rng(1)
    f = shapes.sample_factors(rng, 40_000)
    assert f.shape == (40_000, 6) and np.issubdtype(f.dtype, np.integer)
    for col, size in enumerate(shapes.FACTOR_SIZES):
        counts = np.bincount(f[:, col], minlength=size)
        assert len(counts) == size
        expected = 40_000 / size
        assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)
    np.testing.assert_array_equal(shapes.sample_factors(np.random.default_rng(1), 10), f[:10])


def test_make_split_is_fixed_and_held_out():
    t0 = time.perf_counter()
    train_img, train_f = shapes.make_split("train", 5000)
    elapsed = time.perf_counter() - t0
    assert train_img.shape == (5000, 3, 64, 64) and train_f.shape == (5000, 6)
    assert elapsed < 10  # 50,000 must take well under a minute
    np.testing.assert_array_equal(shapes.render(train_f), train_img)  # addressable from the factors
    val_img, val_f = shapes.make_split("val", 300)
    test_img, test_f = shapes.make_split("test")
    assert test_img.shape == (2000, 3, 64, 64) and len(test_f) == 2000
    assert shapes.DEFAULT_SIZES == {"train": 50_000, "val": 2_000, "test": 2_000}
    # Same call, same data; a smaller n is a prefix.
    again_img, again_f = shapes.make_split("val", 300)
    np.testing.assert_array_equal(again_img, val_img)
    np.testing.assert_array_equal(shapes.make_split("val", 100)[1], val_f[:100])
    # The splits are disjoint in factor space.
    keys = [set(shapes.flat_index(f).tolist()) for f in (train_f, val_f, test_f)]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    assert (shapes.split_of(train_f) == 0).all() and (shapes.split_of(test_f) == 2).all()
    # The held-out splits still cover every value of every factor.
    for col, size in enumerate(shapes.FACTOR_SIZES):
        assert len(np.unique(test_f[:, col])) == size
    with pytest.raises(ValueError):
        shapes.make_split("validation")
    assert shapes.make_split("test", 0)[0].shape == (0, 3, 64, 64)
