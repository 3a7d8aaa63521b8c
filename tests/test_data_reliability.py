"""Nothing lost, nothing mixed, round two: the image files and caches a hostile user brings.

Each test is one case a user met: a phone photo's EXIF orientation, 16-bit and transparent
images, a link loop and doubled links in a folder, a split file that lists an image twice, a
SIGTERM during a cache build, a zip member of 100 MB and duplicate member names, a FIFO named
``.jpg``, ``--cache-dir`` naming a file, a cache truncated under a running job."""
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imagedata
from imagedata import decoding, folder
from system.errors import UserError

from test_data import jpeg_bytes, name, write_partition_txt
from test_own_images import load, make_folder, write_image

ROOT = Path(__file__).resolve().parents[1]


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    import io
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------- 1. and 6. pixels as they were meant

def test_a_phone_photo_is_decoded_upright():
    """A landscape sensor image stored sideways with EXIF orientation 6 (rotate 90° clockwise to view)."""
    stored = np.zeros((32, 64, 3), np.uint8)  # stored: 32 rows, 64 columns; left half red
    stored[:, :32, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    out = decoding.decode_image(data, crop=None, size=16)
    # viewed upright the photo is 64 rows by 32 columns, the red half on top; the resize squashes it
    # to 16 x 16, so red must fill the top rows, not the left columns
    red = out[0].astype(int)
    assert red[:6].mean() > 200 and red[-6:].mean() < 60, "EXIF orientation was not applied"
    unrotated = decoding.decode_image(encoded(Image.fromarray(stored), "JPEG", quality=95), crop=None, size=16)
    assert unrotated[0, :, :6].mean() > 200  # the same photo without the tag stays as stored


def test_sixteen_bit_images_are_scaled_not_clipped():
    gray = np.full((8, 8), 8000, np.uint16)
    gray[:, 4:] = 32768
    out = decoding.decode_image(encoded(Image.fromarray(gray), "PNG"), crop=None, size=8)
    assert out.shape == (3, 8, 8)
    assert abs(int(out[0, 4, 1]) - 31) <= 1 and abs(int(out[0, 4, 6]) - 128) <= 1  # 8000/257, 32768/257
    assert (out[0] == out[1]).all() and (out[1] == out[2]).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "1", "L", "I", "F"])
def test_every_pixel_mode_becomes_rgb(mode):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    im = im.convert("RGBA") if mode == "RGBA" else im.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    out = decoding.decode_image(encoded(im, fmt), crop=None, size=12)
    assert out.shape == (3, 12, 12) and out.dtype == np.uint8
    assert 20 < out.mean() < 235  # never solid white or black


def test_transparency_is_laid_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    out = decoding.decode_image(encoded(Image.fromarray(rgba, "RGBA"), "PNG"), crop=None, size=8)
    assert (out == 255).all()


def test_a_single_image_is_read_upright_too(tmp_path):
    """``interpolate.py --pair`` and ``--images`` read through ``load_image``: the same decoding."""
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :32, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    path.write_bytes(encoded(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes()))
    out = decoding.load_image(path, crop=None, size=16)
    assert out[0, :6].mean() > 200 and out[0, -6:].mean() < 60


# --------------------------------------------------------------------------- 5. the same image in train and test

def test_a_link_loop_is_walked_once(tmp_path):
    root = make_folder(tmp_path / "photos", 10)
    (root / "trip" / "up").symlink_to("..")  # sub/up -> ..: without care, 10 files become hundreds
    files = [rel for rel, _, _ in folder.scan(str(root))]
    assert len(files) == 10


def test_two_links_to_one_photo_count_once(tmp_path):
    root = make_folder(tmp_path / "photos", 10)
    (root / "again.jpg").symlink_to(root / "im000.jpg")
    (root / "trip" / "copy.jpg").symlink_to(root / "im000.jpg")
    files = [rel for rel, _, _ in folder.scan(str(root))]
    assert len(files) == 10


def test_a_split_file_listing_an_image_twice_is_refused(tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("a.jpg train\nb.jpg test\na.jpg test\n")
    with pytest.raises(UserError, match=r"lists a\.jpg twice \(line 3\)"):
        folder.read_split_file(split)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")
def test_a_fifo_named_jpg_is_never_opened(tmp_path):
    root = make_folder(tmp_path / "photos", 6)
    os.mkfifo(root / "pipe.jpg")
    assert [r for r, _, _ in folder.scan(str(root))] == sorted(r for r, _, _ in folder.scan(str(root)))
    assert "pipe.jpg" not in [r for r, _, _ in folder.scan(str(root))]
    with pytest.raises(ValueError, match="not a regular file"):
        decoding.read_file(root / "pipe.jpg")  # returns at once instead of waiting for a writer


# --------------------------------------------------------------------------- 12. zip members

def celeba_zip(root, members):
    root.mkdir(parents=True, exist_ok=True)
    write_partition_txt(root / "list_eval_partition.txt")
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members:
            zf.writestr(member, data)
    return root


def test_a_huge_zip_member_is_skipped_and_named(tmp_path, capsys):
    members = [(f"img_align_celeba/{name(i)}", jpeg_bytes(i)) for i in range(1, 31)]
    members[0] = (members[0][0], b"\0" * (decoding.MAX_IMAGE_BYTES + 1))  # compresses to ~100 kB
    root = celeba_zip(tmp_path / "celeba", members)
    images, info = imagedata.load_with_info(
        imagedata.DataOptions("celeba", data_dir=str(root), cache_dir=str(tmp_path / "cache")),
        "train", num_workers=1, progress=False)
    assert name(1) in capsys.readouterr().err  # skipped, named
    assert len(images) == 18 - 1  # the fixture's 18 training images, less the skipped one
    manifest = next((tmp_path / "cache").glob("*train*.json")).read_text()
    assert name(1) in manifest and "more than" in manifest


def test_duplicate_zip_members_are_refused(tmp_path):
    members = [(f"img_align_celeba/{name(i)}", jpeg_bytes(i)) for i in range(1, 31)]
    members.append((f"other/{name(3)}", jpeg_bytes(4)))
    root = celeba_zip(tmp_path / "celeba", members)
    with pytest.raises(UserError, match=rf"holds {name(3)} twice"):
        imagedata.load(imagedata.DataOptions("celeba", data_dir=str(root), cache_dir=str(tmp_path / "cache")),
                       "train", num_workers=1, progress=False)


# --------------------------------------------------------------------------- 14. the cache folder and file

def test_a_cache_dir_that_is_a_file_is_one_sentence(tmp_path):
    root = make_folder(tmp_path / "photos", 6)
    (tmp_path / "cachefile").write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        load(root, "train", tmp_path / "cachefile")


def test_a_cache_truncated_after_loading_cannot_kill_the_job(tmp_path, capsys):
    root = make_folder(tmp_path / "photos", 30)
    images, _ = load(root, "train", tmp_path / "cache")
    expected = images.copy()
    images, _ = load(root, "train", tmp_path / "cache")  # from the cache now
    npy = next((tmp_path / "cache").glob("*train*.npy"))
    with open(npy, "r+b") as f:
        f.truncate(200)  # a mapped array would now be SIGBUS on the next touch
    assert (images == expected).all() and int(images.sum()) == int(expected.sum())
    with pytest.raises(UserError, match="truncated or corrupt.*delete it"):  # the next load: one sentence
        load(root, "train", tmp_path / "cache")


# --------------------------------------------------------------------------- 11. SIGTERM during a cache build

def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_stop_while_the_pool_starts_is_the_stop_not_a_join_error(monkeypatch):
    """A signal can land while the pool starts its manager thread, which then cannot be joined:
    the stop must still be what surfaces (a traceback of RuntimeError was seen under SIGTERM)."""
    import concurrent.futures
    shutdowns = []

    def stopped(self, *args, **kwargs):
        raise KeyboardInterrupt

    def shutdown(self, wait=True, cancel_futures=False):
        shutdowns.append(wait)
        if wait:
            raise RuntimeError("cannot join thread before it is started")
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", stopped)
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "shutdown", shutdown)
    with pytest.raises(KeyboardInterrupt):
        list(decoding.decode_in_workers([("folder", "x", [], None, 8)] * 2, 2))
    assert shutdowns == [True, False]


def test_ctrl_c_while_the_pool_spawns_waits_until_every_worker_is_whole(monkeypatch):
    import concurrent.futures
    submitted = []

    def submit(self, fn, task):
        if not submitted:
            os.kill(os.getpid(), signal.SIGINT)  # lands while the first worker would be spawning
        submitted.append(task)
        done = concurrent.futures.Future()
        done.set_result(None)
        return done
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", submit)
    tasks = [("folder", "x", [], None, 8)] * 20
    with pytest.raises(KeyboardInterrupt):
        list(decoding.decode_in_workers(tasks, 2))
    assert len(submitted) == 8  # the whole first window (4 per worker), then the stop


def test_sigterm_during_a_cache_build_ends_the_workers_and_leaves_no_temporary(tmp_path):
    root = tmp_path / "photos"
    for i in range(1500):
        write_image(root / f"d{i % 10}" / f"im{i:04d}.png", i, (300, 300))
    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, str(ROOT / "load_data.py"), "--dataset", "folder", "--data-dir",
                             str(root), "--cache-dir", str(cache_dir), "--num-workers", "2", "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    workers = []
    while time.time() < deadline and proc.poll() is None:
        if list(cache_dir.glob("*.tmp")) and len(children_of(proc.pid)) >= 2:
            workers = children_of(proc.pid)
            break
        time.sleep(0.05)
    assert workers, "the build never started decoding"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "SIGTERM" in err
    assert not list(cache_dir.glob("*.tmp"))
    time.sleep(1.0)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}") and "zombie" not in
             Path(f"/proc/{p}/status").read_text().lower()]
    assert not alive, f"decoding workers {alive} outlived the build"
