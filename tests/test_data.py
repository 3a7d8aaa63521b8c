"""Tests of imagedata/ and load_data.py on small CelebA-shaped fixtures generated here."""

import argparse
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from PIL import Image

import cli
import imagedata
from imagedata import batches, cache, decoding
from imagedata import celeba as celeba_source
from model import to_float
from imagedata import shapes
from system.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_IMAGES = 30
WIDTH, HEIGHT = 178, 218
CROP = 148
CROP_BOX = ((WIDTH - CROP) // 2, (HEIGHT - CROP) // 2, (WIDTH + CROP) // 2, (HEIGHT + CROP) // 2)  # (15, 35, 163, 183)
RED = (200, 30, 30)
BLUE = (30, 30, 220)
BLUE_BOX = (70, 90, 108, 128)  # 38x38, centred on the frame centre (89, 109)


def partition_code(i: int) -> int:
    """Not the official ranges: 18 train, 6 val (4, 9, ...), 6 test (5, 10, ...)."""
    return {1: 0, 2: 0, 3: 0, 4: 1, 0: 2}[i % 5]


def green_level(i: int) -> int:
    return 40 + 6 * i


def frame(i: int) -> np.ndarray:
    """Red border (removed by the 148 crop), green crop square coding i, blue centre."""
    a = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    a[:] = RED
    x0, y0, x1, y1 = CROP_BOX
    a[y0:y1, x0:x1] = (30, green_level(i), 30)
    x0, y0, x1, y1 = BLUE_BOX
    a[y0:y1, x0:x1] = BLUE
    return a


@functools.lru_cache(maxsize=None)
def jpeg_bytes(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame(i)).save(buf, "JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def name(i: int) -> str:
    return f"{i:06d}.jpg"


def write_images(folder, indices=range(1, N_IMAGES + 1)):
    os.makedirs(folder, exist_ok=True)
    for i in indices:
        with open(os.path.join(folder, name(i)), "wb") as f:
            f.write(jpeg_bytes(i))


def write_partition_txt(path, indices=range(1, N_IMAGES + 1)):
    with open(path, "w") as f:
        for i in indices:
            f.write(f"{name(i)} {partition_code(i)}\n")


def ids_of(images: np.ndarray) -> list:
    """Recover the fixture index from the green level of the crop square."""
    g = images[:, 1, 4:12, 4:60].reshape(len(images), -1).mean(axis=1)
    return [int(round((v - 40) / 6)) for v in g]


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba_folder")
    write_images(root / "img_align_celeba")
    write_partition_txt(root / "list_eval_partition.txt")
    return str(root)


@pytest.fixture(scope="module")
def celeba_zip(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba_zip")
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("img_align_celeba/", b"")
        for i in range(1, N_IMAGES + 1):
            zf.writestr(f"img_align_celeba/{name(i)}", jpeg_bytes(i))
    write_partition_txt(root / "list_eval_partition.txt")
    return str(root)


@pytest.fixture(scope="module")
def celeba_kaggle(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba_kaggle")
    write_images(root / "img_align_celeba" / "img_align_celeba")
    with open(root / "list_eval_partition.csv", "w") as f:
        f.write("image_id,partition\n")
        for i in range(1, N_IMAGES + 1):
            f.write(f"{name(i)},{partition_code(i)}\n")
    return str(root)


def load_split(dataset, split, **kw):
    """``imagedata.load`` of one split, the data options and the loading options given together."""
    options = {k: kw.pop(k) for k in imagedata.DataOptions.names() if k in kw}
    return imagedata.load(imagedata.DataOptions(dataset, **options), split, **kw)


def load(root, split, cache, **kw):
    kw.setdefault("num_workers", 1)
    return load_split("celeba", split, data_dir=root, cache_dir=str(cache), progress=False, **kw)


def manifest_of(cache, split, **kw):
    _, json_path = celeba_source.split_cache_files(split, cache_dir=str(cache), **kw)
    with open(json_path) as f:
        return json.load(f)


def one_sentence(msg: str) -> bool:
    return msg.endswith(".") and ". " not in msg and "\n" not in msg


# --------------------------------------------------------------------------- #
# Splits and layouts
# --------------------------------------------------------------------------- #


def test_split_counts_and_membership(celeba, tmp_path):
    expected = {s: [i for i in range(1, N_IMAGES + 1) if partition_code(i) == c] for c, s in enumerate(imagedata.SPLITS)}
    for split in imagedata.SPLITS:
        images = load(celeba, split, tmp_path)
        assert images.dtype == np.uint8
        assert images.shape == (len(expected[split]), 3, 64, 64)
        assert ids_of(images) == expected[split]
    assert [len(v) for v in expected.values()] == [18, 6, 6]
    m = manifest_of(tmp_path, "test")
    assert m["count"] == 6 and m["layout"] == "folder" and m["crop"] == CROP and m["image_size"] == 64
    assert m["skipped"] == [] and m["format_version"] == cache.CACHE_FORMAT_VERSION
    assert m["source"] == os.path.join(celeba, "img_align_celeba")


def test_zip_and_kaggle_layouts_give_the_same_arrays(celeba, celeba_zip, celeba_kaggle, tmp_path):
    for split in ("train", "test"):
        ref = load(celeba, split, tmp_path / "folder")
        for root, layout in ((celeba_zip, "zip"), (celeba_kaggle, "kaggle")):
            got = load(root, split, tmp_path / layout)
            np.testing.assert_array_equal(got, ref)
            assert manifest_of(tmp_path / layout, split)["layout"] == layout
    # --data-dir may also name the zip file or the image folder itself.
    zipped = load(os.path.join(celeba_zip, "img_align_celeba.zip"), "val", tmp_path / "z2")
    flat = load(os.path.join(celeba, "img_align_celeba"), "val", tmp_path / "flat")
    np.testing.assert_array_equal(zipped, flat)
    assert ids_of(flat) == [4, 9, 14, 19, 24, 29]


def test_crop_lands_on_the_centre(celeba, tmp_path):
    images = load(celeba, "train", tmp_path)
    # Exactly the reference pipeline: decode, centre crop 148, LANCZOS to 64.
    with Image.open(io.BytesIO(jpeg_bytes(1))) as im:
        ref = np.asarray(im.convert("RGB").crop(CROP_BOX).resize((64, 64), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(images[0], ref.transpose(2, 0, 1))
    # The red border is gone; the blue square sits at the centre, 38 * 64 / 148 ~ 16 px wide.
    red = (images[:, 0].astype(int) > 120) & (images[:, 1] < 100)
    assert not red[:, 1:-1, 1:-1].any()
    blue = (images[0, 2] > 150) & (images[0, 0] < 100)
    ys, xs = np.nonzero(blue)
    assert abs(ys.mean() - 31.5) < 0.6 and abs(xs.mean() - 31.5) < 0.6
    assert 14 <= xs.max() - xs.min() + 1 <= 18


def test_crop_none_resizes_the_whole_frame(celeba, tmp_path):
    images = load(celeba, "train", tmp_path, crop=None)
    with Image.open(io.BytesIO(jpeg_bytes(1))) as im:
        ref = np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(images[0], ref.transpose(2, 0, 1))
    # Border: 15 of 178 columns -> ~5 px, 35 of 218 rows -> ~10 px stay red.
    img = images[0].astype(int)
    red = (img[0] > 150) & (img[1] < 80)
    assert red[:, :4].all() and red[:, -4:].all()
    assert red[:9, :].all() and red[-9:, :].all()
    assert not red[12:-12, 7:-7].any()
    m = manifest_of(tmp_path, "train", crop=None)
    assert m["crop"] is None


# --------------------------------------------------------------------------- #
# The cache
# --------------------------------------------------------------------------- #


def counting_decoder(monkeypatch):
    calls = []
    real = decoding.decode_image

    def counted(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(decoding, "decode_image", counted)
    return calls


def test_cache_is_reused_without_decoding(celeba, tmp_path, monkeypatch):
    calls = counting_decoder(monkeypatch)
    first = np.array(load(celeba, "train", tmp_path))
    assert len(calls) == 18
    npy_path, json_path = celeba_source.split_cache_files("train", cache_dir=str(tmp_path))
    mtimes = os.stat(npy_path).st_mtime_ns, os.stat(json_path).st_mtime_ns
    second = load(celeba, "train", tmp_path)
    assert len(calls) == 18  # nothing decoded again
    assert not isinstance(second, np.memmap)  # read into memory: a file truncated later cannot SIGBUS the job
    np.testing.assert_array_equal(second, first)
    assert (os.stat(npy_path).st_mtime_ns, os.stat(json_path).st_mtime_ns) == mtimes
    np.testing.assert_array_equal(np.load(npy_path, mmap_mode="r"), first)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_cache_is_rebuilt_for_other_options(celeba, celeba_zip, tmp_path, monkeypatch, capsys):
    calls = counting_decoder(monkeypatch)
    base = load(celeba, "val", tmp_path)
    assert len(calls) == 6
    other_crop = load(celeba, "val", tmp_path, crop=120)
    assert len(calls) == 12 and not np.array_equal(other_crop, base)
    small = load(celeba, "val", tmp_path, image_size=32)
    assert len(calls) == 18 and small.shape == (6, 3, 32, 32)
    limited = load(celeba, "val", tmp_path, limit=2)
    assert len(calls) == 20 and limited.shape[0] == 2
    np.testing.assert_array_equal(limited, base[:2])
    # The same options from another source rebuild the file in place.
    capsys.readouterr()
    again = load(celeba_zip, "val", tmp_path)
    assert len(calls) == 26
    assert "rebuilding" in capsys.readouterr().err
    assert manifest_of(tmp_path, "val")["layout"] == "zip"
    np.testing.assert_array_equal(again, base)
    # Caches with other names are left alone and load again without decoding.
    load(celeba, "val", tmp_path, crop=120)
    assert len(calls) == 26


def test_corrupt_jpegs_are_skipped_and_named(celeba, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(celeba, root)
    folder = root / "img_align_celeba"
    data = jpeg_bytes(2)
    (folder / name(2)).write_bytes(data[: len(data) // 2])  # truncated
    (folder / name(3)).write_bytes(b"this is not a JPEG" * 20)  # garbage
    images = load(str(root), "train", tmp_path / "cache", num_workers=2)  # also exercises the process pool
    assert images.shape[0] == 16
    good = [i for i in range(1, N_IMAGES + 1) if partition_code(i) == 0 and i not in (2, 3)]
    assert ids_of(images) == good
    ref = load(celeba, "train", tmp_path / "ref")
    np.testing.assert_array_equal(images, ref[[i for i, k in enumerate(ids_of(ref)) if k not in (2, 3)]])
    m = manifest_of(tmp_path / "cache", "train")
    assert m["count"] == 16 and m["num_skipped"] == 2 and m["num_listed"] == 18
    assert [s["name"] for s in m["skipped"]] == [name(2), name(3)]
    assert all(s["reason"] for s in m["skipped"])
    err = capsys.readouterr().err.strip().splitlines()
    summary = [line for line in err if line.startswith("skipped")]
    assert len(summary) == 1 and name(2) in summary[0] and name(3) in summary[0]


def test_truncated_or_corrupt_cache_is_a_data_error(celeba, tmp_path):
    load(celeba, "test", tmp_path)
    npy_path, json_path = celeba_source.split_cache_files("test", cache_dir=str(tmp_path))
    good = open(npy_path, "rb").read()

    with open(npy_path, "wb") as f:
        f.write(good[:-1000])  # truncated
    with pytest.raises(UserError) as e:
        load(celeba, "test", tmp_path)
    assert "truncated or corrupt" in str(e.value) and npy_path in str(e.value) and one_sentence(str(e.value))

    with open(npy_path, "wb") as f:
        f.write(good[:40])  # cut inside the header
    with pytest.raises(UserError, match="truncated or corrupt"):
        load(celeba, "test", tmp_path)

    with open(npy_path, "wb") as f:
        f.write(good + b"\0" * 100)  # trailing garbage
    with pytest.raises(UserError, match="truncated or corrupt"):
        load(celeba, "test", tmp_path)

    with open(npy_path, "wb") as f:
        f.write(b"\x93NUMPY garbage garbage" * 10)
    with pytest.raises(UserError, match="truncated or corrupt"):
        load(celeba, "test", tmp_path)

    with open(npy_path, "wb") as f:
        f.write(good)
    with open(json_path, "w") as f:
        f.write('{"count": 6, "crop": ')  # truncated manifest
    with pytest.raises(UserError, match="manifest"):
        load(celeba, "test", tmp_path)

    os.remove(json_path)  # no manifest: rebuilt
    assert load(celeba, "test", tmp_path).shape == (6, 3, 64, 64)


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #


def test_missing_dataset_says_what_to_download(tmp_path, monkeypatch):
    for where in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(UserError) as e:
            load(str(where), "train", tmp_path / "cache")
        msg = str(e.value)
        assert one_sentence(msg), msg
        for needle in ("img_align_celeba.zip", "list_eval_partition.txt", "Align&Cropped Images",
                       "--dataset faces", "--data-dir", str(where)):
            assert needle in msg, needle
    # The default folder is ./data/celeba unless $BVAEX_DATA_DIR says otherwise.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(celeba_source.DATA_DIR_ENV, raising=False)
    with pytest.raises(UserError, match="data/celeba"):
        load_split("celeba", "train", progress=False)


def test_data_dir_from_environment(celeba, tmp_path, monkeypatch):
    monkeypatch.setenv(celeba_source.DATA_DIR_ENV, celeba)
    images = load_split("celeba", "val", cache_dir=str(tmp_path), num_workers=1, progress=False)
    assert images.shape == (6, 3, 64, 64)
    assert celeba_source.resolve_data_dir("elsewhere") == os.path.abspath("elsewhere")


def test_empty_image_folder(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "img_align_celeba" / "readme.txt").write_text("nothing here")
    with pytest.raises(UserError) as e:
        load(str(tmp_path), "train", tmp_path / "cache")
    assert "no CelebA images" in str(e.value) and one_sentence(str(e.value))


def test_corrupt_zip_file(tmp_path):
    (tmp_path / "img_align_celeba.zip").write_bytes(b"PK\x03\x04 broken" * 50)
    with pytest.raises(UserError, match="zip"):
        load(str(tmp_path), "train", tmp_path / "cache")


def test_partition_file_that_does_not_match(tmp_path):
    root = tmp_path / "data"
    write_images(root / "img_align_celeba")
    part = root / "list_eval_partition.txt"

    write_partition_txt(part, range(1, N_IMAGES + 3))  # lists 000031.jpg and 000032.jpg
    with pytest.raises(UserError) as e:
        load(str(root), "train", tmp_path / "c1")
    assert "000031.jpg" in str(e.value) and "2 image(s)" in str(e.value) and one_sentence(str(e.value))

    write_partition_txt(part)
    with open(part, "a") as f:
        f.write("000031.jpg\n")  # one field
    with pytest.raises(UserError, match="line 31"):
        load(str(root), "train", tmp_path / "c2")

    part.write_text("000001.jpg 0\n000002.jpg 7\n")  # bad code
    with pytest.raises(UserError, match="line 2 .*malformed"):
        load(str(root), "train", tmp_path / "c3")

    part.write_text("000001.jpg 0\n000001.jpg 1\n")
    with pytest.raises(UserError, match="twice"):
        load(str(root), "train", tmp_path / "c4")

    part.unlink()
    (root / "list_eval_partition.csv").write_text("image,split\n000001.jpg,0\n")
    with pytest.raises(UserError, match="header"):
        load(str(root), "train", tmp_path / "c5")


def test_without_partition_file_the_official_ranges_are_used(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(celeba_source, "_OFFICIAL_NOTE_SHOWN", set())
    root = tmp_path / "data"
    write_images(root / "img_align_celeba")
    images = load(str(root), "train", tmp_path / "cache")
    assert ids_of(images) == list(range(1, N_IMAGES + 1))  # all of 1..30 are official train images
    load(str(root), "train", tmp_path / "cache", crop=None)
    with pytest.raises(UserError, match="test split .* no images"):
        load(str(root), "test", tmp_path / "cache")
    notes = [line for line in capsys.readouterr().err.splitlines() if "official" in line]
    assert len(notes) == 1 and "list_eval_partition" in notes[0]
    assert manifest_of(tmp_path / "cache", "train")["partition"] == "official index ranges"

    split = celeba_source.official_split
    assert split(1) == split(162_770) == split("162770.jpg") == "train"
    assert split(162_771) == split(182_637) == "val"
    assert split(182_638) == split("202599.jpg") == "test"
    assert split(0) is None and split(202_600) is None


def test_bad_arguments_are_data_errors(celeba, tmp_path):
    with pytest.raises(UserError, match="unknown dataset"):
        load_split("mnist", "train")
    with pytest.raises(UserError, match="unknown split"):
        load_split("shapes", "validation")
    with pytest.raises(UserError, match="crop"):
        load(celeba, "train", tmp_path, crop=200)
    with pytest.raises(UserError, match="limit"):
        load(celeba, "train", tmp_path, limit=0)
    with pytest.raises(UserError, match="64x64"):
        load_split("shapes", "train", image_size=32)


def test_decoder_converts_other_modes_to_rgb():
    def encode(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    rgb = Image.fromarray(frame(7))
    gray = decoding.decode_image(encode(rgb.convert("L"), "JPEG"))
    assert gray.shape == (3, 64, 64) and gray.dtype == np.uint8
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()
    cmyk = decoding.decode_image(encode(rgb.convert("CMYK"), "JPEG", quality=95))
    ref = decoding.decode_image(encode(rgb, "JPEG", quality=95))
    assert cmyk.shape == (3, 64, 64)
    assert np.abs(cmyk.astype(int) - ref.astype(int)).mean() < 6
    rgba = decoding.decode_image(encode(rgb.convert("RGBA"), "PNG"), crop=None, size=32)
    assert rgba.shape == (3, 32, 32)
    with pytest.raises(ValueError, match="smaller than"):
        decoding.decode_image(encode(rgb.resize((100, 120)), "PNG"))


# --------------------------------------------------------------------------- #
# Device arrays and batches
# --------------------------------------------------------------------------- #


def id_images(n: int) -> np.ndarray:
    """Image k is filled with the value k (k < 256)."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 3, 4, 4)).copy()


def batch_ids(batches) -> list:
    out = []
    for b in batches:
        b = np.asarray(b)
        assert (b == b[:, :1, :1, :1]).all()
        out.append(b[:, 0, 0, 0].tolist())
    return out


def test_to_device_and_to_float():
    x = batches.to_device(id_images(10))
    assert isinstance(x, jax.Array) and x.dtype == jnp.uint8 and x.shape == (10, 3, 4, 4)
    f = jax.jit(to_float)(x)
    assert f.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(f), id_images(10).astype(np.float32) / 255.0, rtol=1e-6)
    for fn in (to_float, jax.jit(to_float)):
        assert np.asarray(fn(np.array([0, 255], dtype=np.uint8))).tolist() == [0.0, 1.0]
    assert to_float(jnp.ones(3, jnp.float32) * 0.5).dtype == jnp.float32
    with pytest.raises(UserError):
        batches.to_device(np.zeros((2, 3, 4, 4), np.float32))
    assert batches.num_batches(70, 16) == 4 and batches.num_batches(64, 16) == 4
    assert batches.num_batches(15, 16) == 0


def test_batches_are_a_deterministic_shuffle():
    n, b = 70, 16
    images = batches.to_device(id_images(n))
    key = jax.random.key(0)
    first = batch_ids(batches.iterate_batches(images, b, key))
    again = batch_ids(batches.iterate_batches(images, b, key))
    other = batch_ids(batches.iterate_batches(images, b, jax.random.key(1)))
    assert first == again
    assert first != other
    assert len(first) == batches.num_batches(n, b) == 4
    assert all(len(batch) == b for batch in first)
    for ids in (first, other):
        flat = sum(ids, [])
        assert len(flat) == len(set(flat)) == 64  # each image at most once; the 6 left over are dropped
        assert set(flat) <= set(range(n))
    assert sum(first, []) != list(range(64))  # actually shuffled
    # Over keys, every image gets its turn.
    seen = set()
    for k in range(5):
        seen |= set(sum(batch_ids(batches.iterate_batches(images, b, jax.random.key(k))), []))
    assert seen == set(range(n))
    # An exact multiple: every image exactly once.
    exact = sum(batch_ids(batches.iterate_batches(images[:64], b, key)), [])
    assert sorted(exact) == list(range(64))
    # Raw uint32 keys work too.
    assert batch_ids(batches.iterate_batches(images, b, jax.random.PRNGKey(3)))


def test_batches_stay_uint8_on_the_device_and_too_small():
    images = batches.to_device(id_images(40))
    key = jax.random.key(7)
    ints = list(batches.iterate_batches(images, 8, key))
    assert ints[0].dtype == jnp.uint8 and isinstance(ints[0], jax.Array) and ints[0].shape == (8, 3, 4, 4)
    with pytest.raises(UserError, match="fewer than one batch"):
        batches.iterate_batches(images, 41, key)  # raised at the call, not at the first batch


# --------------------------------------------------------------------------- #
# Options and command line
# --------------------------------------------------------------------------- #


def test_data_arguments_and_options(celeba, tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_data_arguments(parser)
    args = parser.parse_args([])
    assert (args.dataset, args.data_dir, args.crop, args.cache_dir, args.limit) == ("faces", None, "auto", None, None)
    assert parser.parse_args(["--crop", "none"]).crop is None
    assert parser.parse_args(["--crop", "None"]).crop is None
    assert parser.parse_args(["--crop", "128"]).crop == 128
    for bad in (["--crop", "0"], ["--crop", "big"], ["--limit", "-3"], ["--dataset", "mnist"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help

    celeba_parser = argparse.ArgumentParser()
    cli.add_data_arguments(celeba_parser, default_dataset="celeba")
    args = celeba_parser.parse_args(["--data-dir", celeba, "--cache-dir", str(tmp_path), "--crop", "none", "--limit", "3"])
    options = cli.data_options(args)
    assert options.as_dict() == {"dataset": "celeba", "data_dir": celeba, "crop": None, "cache_dir": str(tmp_path),
                                 "limit": 3, "split_file": None}
    assert imagedata.DataOptions(**json.loads(json.dumps(options.as_dict()))) == options
    images = imagedata.load(options, "test", num_workers=1, progress=False)
    np.testing.assert_array_equal(images, load(celeba, "test", tmp_path / "x", crop=None, limit=3))

    shape_options = cli.data_options(parser.parse_args(["--dataset", "shapes", "--limit", "10"]))
    sprites = imagedata.load(shape_options, "val")
    assert sprites.shape == (10, 3, 64, 64) and sprites.dtype == np.uint8
    np.testing.assert_array_equal(sprites, shapes.make_split("val", 10)[0])
    np.testing.assert_array_equal(load_split("shapes", "test", limit=5), shapes.make_split("test", 5)[0])


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "load_data.py"), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_command_line(celeba, tmp_path):
    out = run_cli("--help")
    assert out.returncode == 0
    for flag in ("--dataset", "--data-dir", "--crop", "--cache-dir", "--limit", "BVAEX_DATA_DIR", "Examples"):
        assert flag in out.stdout
    out = run_cli("--dataset", "celeba", "--data-dir", celeba, "--cache-dir", str(tmp_path), "--no-progress",
                  "--num-workers", "1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for split, n in (("train", 18), ("val", 6), ("test", 6)):
        line = next(line for line in lines if f" {split} " in line)
        assert f" {n} images" in line and f"({n}, 3, 64, 64)" in line and f"celeba_{split}_crop148_64px.npy" in line
    assert lines[-1].startswith("total")
    out = run_cli("--dataset", "celeba", "--data-dir", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "--dataset faces" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("--dataset", "shapes", "--limit", "20", "--splits", "val", "test")
    assert out.returncode == 0 and "(20, 3, 64, 64)" in out.stdout and "not cached" in out.stdout
