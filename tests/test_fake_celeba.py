"""tools/fake_celeba.py writes a dataset the CelebA loader reads like the real one."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from test_data import load_split

ROOT = Path(__file__).resolve().parents[1]


def test_fake_celeba_loads_through_the_celeba_path(tmp_path):
    out = tmp_path / "celeba"
    subprocess.run([sys.executable, str(ROOT / "tools" / "fake_celeba.py"), "--out", str(out),
                    "--images", "12", "--workers", "1"], check=True, capture_output=True)
    lines = (out / "list_eval_partition.txt").read_text().split("\n")
    assert lines[0] == "000001.jpg 0" and len([line for line in lines if line]) == 12
    images = load_split("celeba", "train", data_dir=str(out), cache_dir=str(tmp_path / "cache"),
                                  progress=False)
    assert images.shape == (12, 3, 64, 64) and images.dtype == np.uint8
    assert len({images[i].tobytes() for i in range(12)}) == 12  # a different image each
    assert images.std() > 20  # not blank
