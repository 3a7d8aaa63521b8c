"""Tests of the procedural cartoon faces in imagedata/faces.py."""

import time

import numpy as np
import pytest

from imagedata import faces

K = len(faces.FACTOR_NAMES)
# Sky background, light skin, brown short hair, oval, smiling, normal eyes, nothing else, upright.
BASE = (0, 1, 1, 2, 1, 2, 1, 0, 2, 0, 0)


def with_factor(base, **changes):
    f = list(base)
    for k, v in changes.items():
        f[faces.FACTOR_NAMES.index(k)] = v
    return f


def test_factor_metadata():
    assert len(faces.FACTOR_NAMES) >= 8 and len(set(faces.FACTOR_NAMES)) == K
    assert faces.FACTOR_NAMES == tuple(faces.FACTOR_LEVELS)
    assert faces.FACTOR_SIZES == tuple(len(v) for v in faces.FACTOR_LEVELS.values())
    assert all(size >= 2 for size in faces.FACTOR_SIZES)
    assert faces.NUM_COMBINATIONS == int(np.prod(faces.FACTOR_SIZES)) >= 100_000
    for levels in faces.FACTOR_LEVELS.values():
        assert all(isinstance(name, str) and name for name in levels) and len(set(levels)) == len(levels)
    assert faces.IMAGE_SIZE == 64 and faces.SPLITS == ("train", "val", "test")
    assert faces.DEFAULT_SIZES == {"train": 50_000, "val": 2_000, "test": 2_000}
    assert len(faces.TILT_DEGREES) == faces.FACTOR_SIZES[faces.FACTOR_NAMES.index("head_tilt")]


def test_render_is_deterministic_and_well_formed():
    f = faces.sample_factors(np.random.default_rng(0), 300)  # more than two render chunks
    a, b = faces.render(f), faces.render(f.copy())
    assert a.dtype == np.uint8 and a.shape == (300, 3, 64, 64)
    np.testing.assert_array_equal(a, b)
    # One at a time (a (K,) vector or a (1, K) matrix) gives the same bytes as the batch.
    for i in (0, 5, 131, 299):
        np.testing.assert_array_equal(faces.render(f[i]), a[i:i + 1])
        np.testing.assert_array_equal(faces.render(f[i:i + 1].tolist()), a[i:i + 1])
    assert faces.render(np.zeros((0, K), int)).shape == (0, 3, 64, 64)


def test_background_is_a_colour_not_black():
    f = faces.sample_factors(np.random.default_rng(1), 200)
    imgs = faces.render(f).astype(np.float64)
    bg = faces.BACKGROUND_COLORS[f[:, faces.FACTOR_NAMES.index("background")]]
    # The top corners are always background, and the background colour is light.
    for corner in (imgs[:, :, 0, 0], imgs[:, :, 0, -1]):
        np.testing.assert_allclose(corner, bg, atol=0.5)
    assert faces.BACKGROUND_COLORS.min() > 140
    # Full-frame colour: no image is mostly dark.
    assert imgs.mean(axis=(1, 2, 3)).min() > 90
    assert (imgs.max(axis=1) < 10).mean() < 0.01


def test_masks_are_antialiased():
    layers = faces.layer_masks()
    assert [layer.name for layer in layers] == [name for name, _, _ in faces._LAYERS]
    for layer in layers:
        m = layer.masks
        assert m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0
        assert ((m > 0.05) & (m < 0.95)).any(), layer.name  # soft edges, not a hard threshold
        y0, x0 = layer.top_left
        assert y0 + m.shape[1] <= 64 and x0 + m.shape[2] <= 64


def test_render_rejects_bad_factors():
    with pytest.raises(ValueError):
        faces.render(np.zeros((2, K - 1), int))
    with pytest.raises(ValueError, match="hair_style"):
        faces.render([with_factor(BASE, hair_style=4)])
    with pytest.raises(ValueError, match="Smiling"):
        faces.render([with_factor(BASE, Smiling=-1)])
    with pytest.raises(ValueError, match="head_tilt"):
        faces.render(with_factor(BASE, head_tilt=5))
    with pytest.raises(ValueError, match="integer"):
        faces.render(np.array(BASE, float) + 0.5)


def test_every_factor_changes_the_picture():
    """Changing any one factor, from any of 300 random faces, visibly changes a patch of the image.

    "Visibly" is at least 20 pixels whose colour moves by more than 24 levels (about 10 % of the
    range) in some channel: the size of the smallest feature change in the design (an eye
    growing by a pixel in height, a mouth bending), large enough for a 64 px VAE to reconstruct,
    and far above rounding differences (at most 1 level). So no feature ever hides another
    completely (e.g. the hair colour still shows on a bald head, in the eyebrows).
    """
    base = faces.sample_factors(np.random.default_rng(2), 300)
    base[:4] = [BASE,
                with_factor(BASE, hair_style=0, Wearing_Hat=1),
                with_factor(BASE, Eyeglasses=1, Pale_Skin=3),
                with_factor(BASE, hair_style=3, Wearing_Hat=1, Mustache=1, head_tilt=0)]
    before = faces.render(base).astype(np.int16)
    for col, size in enumerate(faces.FACTOR_SIZES):
        for step in range(1, size):
            changed = base.copy()
            changed[:, col] = (changed[:, col] + step) % size
            diff = np.abs(faces.render(changed).astype(np.int16) - before).max(axis=1)
            visible = (diff > 24).sum(axis=(1, 2))
            worst = visible.argmin()
            assert visible[worst] >= 20, (faces.FACTOR_NAMES[col], base[worst], changed[worst, col])


def test_levels_go_the_stated_way():
    def count(imgs, rgb, rows):
        return (np.abs(imgs[:, :, rows].astype(int) - np.array(rgb)[:, None, None]).max(axis=1) < 4).sum(axis=(1, 2))

    skin = faces.SKIN_COLORS[BASE[1]]
    widths = count(faces.render([with_factor(BASE, Chubby=w) for w in range(3)]), skin, slice(30, 40))
    assert widths[0] < widths[1] < widths[2]
    eyes = count(faces.render([with_factor(BASE, Narrow_Eyes=e) for e in range(3)]), faces.FIXED_COLORS["white"], slice(0, 64))
    assert eyes[0] < eyes[1] < eyes[2]
    # Positive tilts turn the head counter-clockwise on screen: the top of the head moves left.
    bg = faces.BACKGROUND_COLORS[BASE[0]]
    tilts = faces.render([with_factor(BASE, head_tilt=t) for t in range(5)])
    head = np.abs(tilts[:, :, :20].astype(float) - bg[:, None, None]).max(axis=1) > 30
    cols = [np.nonzero(h)[1].mean() for h in head]
    assert cols[0] > cols[1] > cols[2] > cols[3] > cols[4]
    assert abs(cols[2] - 31.5) < 1.0  # upright faces are centred


def test_sample_factors_is_uniform():
    f = faces.sample_factors(np.random.default_rng(3), 40_000)
    assert f.shape == (40_000, K) and f.dtype == np.int64
    for col, size in enumerate(faces.FACTOR_SIZES):
        counts = np.bincount(f[:, col], minlength=size)
        assert len(counts) == size
        expected = 40_000 / size
        assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)
    np.testing.assert_array_equal(faces.sample_factors(np.random.default_rng(3), 10), f[:10])
    with pytest.raises(ValueError):
        faces.sample_factors(np.random.default_rng(3), -1)


def test_split_hash_partitions_the_combinations():
    f = faces.sample_factors(np.random.default_rng(4), 100_000)
    idx = faces.flat_index(f)
    assert idx.min() >= 0 and idx.max() < faces.NUM_COMBINATIONS
    np.testing.assert_array_equal(np.unravel_index(idx, faces.FACTOR_SIZES), f.T)
    owner = faces.split_of(f)
    fractions = np.bincount(owner, minlength=3) / len(f)
    np.testing.assert_allclose(fractions, [0.90, 0.05, 0.05], atol=0.005)
    np.testing.assert_array_equal(faces.split_of(f[:10]), owner[:10])  # a fixed function of the combination


def test_make_split_is_fixed_and_held_out():
    t0 = time.perf_counter()
    train_img, train_f = faces.make_split("train", 5000)
    assert time.perf_counter() - t0 < 10  # 50,000 must take well under a minute
    assert train_img.shape == (5000, 3, 64, 64) and train_f.shape == (5000, K)
    np.testing.assert_array_equal(faces.render(train_f), train_img)  # addressable from the factors
    val_img, val_f = faces.make_split("val", 300)
    test_f = faces.split_factors("test")
    assert test_f.shape == (2000, K)
    # Same call, same data; a smaller n is a prefix.
    np.testing.assert_array_equal(faces.make_split("val", 300)[0], val_img)
    np.testing.assert_array_equal(faces.split_factors("val", 100), val_f[:100])
    np.testing.assert_array_equal(faces.split_factors("train", 1000), train_f[:1000])
    # The splits are disjoint in factor space.
    keys = [set(faces.flat_index(f).tolist()) for f in (train_f, val_f, test_f)]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    for split, f in enumerate((train_f, val_f, test_f)):
        assert (faces.split_of(f) == split).all()
    # The held-out split still covers every level of every factor.
    for col, size in enumerate(faces.FACTOR_SIZES):
        assert len(np.unique(test_f[:, col])) == size
    with pytest.raises(ValueError):
        faces.make_split("validation")
    assert faces.make_split("test", 0)[0].shape == (0, 3, 64, 64)


def test_cli_writes_a_grid(tmp_path, capsys):
    out = tmp_path / "faces.png"
    faces.main(["--split", "val", "--n", "10", "--out", str(out)])
    from PIL import Image

    with Image.open(out) as im:
        assert im.size == (8 * 66, 2 * 66) and im.mode == "RGB"
    assert "wrote 10 val faces" in capsys.readouterr().out
