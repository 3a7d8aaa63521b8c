"""Issue 15, "nothing lost, nothing stale": a changed dataset, a reused or shared weights folder,
signals, kills inside a checkpoint save, bad flags, full or read-only disks and corrupt run files."""
import json
import os
import shutil

import pytest

import imagedata
from system.errors import UserError

from test_data import jpeg_bytes, name, write_images, write_partition_txt


# --------------------------------------------------------------------------- 1. stale caches

@pytest.fixture
def celeba_copy(tmp_path):
    root = tmp_path / "celeba"
    write_images(root / "img_align_celeba")
    write_partition_txt(root / "list_eval_partition.txt")
    return root


def load_train(root, cache):
    return imagedata.load_split("celeba", "train", data_dir=str(root), cache_dir=str(cache), progress=False,
                                num_workers=1)


def bump_mtime(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def remove_one(root):
    os.remove(root / "img_align_celeba" / name(28))  # a training image
    lines = (root / "list_eval_partition.txt").read_text().splitlines()
    (root / "list_eval_partition.txt").write_text("\n".join(l for l in lines if name(28) not in l) + "\n")


def add_one(root):
    (root / "img_align_celeba" / name(31)).write_bytes(jpeg_bytes(31))
    with open(root / "list_eval_partition.txt", "a") as f:
        f.write(f"{name(31)} 0\n")


def replace_contents(root):
    path = root / "img_align_celeba" / name(1)
    path.write_bytes(jpeg_bytes(2))
    bump_mtime(path)


def move_split(root):
    text = (root / "list_eval_partition.txt").read_text()
    (root / "list_eval_partition.txt").write_text(text.replace(f"{name(1)} 0", f"{name(1)} 2"))


@pytest.mark.parametrize("change", [remove_one, add_one, replace_contents, move_split])
def test_a_changed_dataset_rebuilds_its_cache(celeba_copy, tmp_path, capsys, change):
    before = load_train(celeba_copy, tmp_path / "cache").copy()
    capsys.readouterr()
    change(celeba_copy)
    after = load_train(celeba_copy, tmp_path / "cache")
    assert "rebuilding" in capsys.readouterr().err
    assert after.shape != before.shape or not (after == before).all()
    again = load_train(celeba_copy, tmp_path / "cache")  # and then the new cache is reused
    assert "rebuilding" not in capsys.readouterr().err and (again == after).all()


def test_a_changed_zip_rebuilds_its_cache(tmp_path, capsys):
    import zipfile
    root = tmp_path / "celeba"
    root.mkdir()
    write_partition_txt(root / "list_eval_partition.txt")
    for first in (1, 2):
        with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as zf:
            for i in range(1, 31):
                zf.writestr(f"img_align_celeba/{name(i)}", jpeg_bytes(first if i == 1 else i))
        bump_mtime(root / "img_align_celeba.zip")
        images = load_train(root, tmp_path / "cache")
    assert "rebuilding" in capsys.readouterr().err
    assert (images[0] == images[1]).all()  # image 1 now holds image 2's pixels
