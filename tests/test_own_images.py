"""A folder of one's own images, a trained model from Python, and a run one can watch."""
import json
import os
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imagedata
from imagedata import cache, folder
from system.errors import EXIT_USER_ERROR, UserError

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("jpg", "png", "webp")


def write_image(path, seed, size=(40, 56)):
    """A random RGB picture of ``size`` (height, width) in the format of the path's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_folder(root, n=30):
    """``n`` images, jpg/png/webp in turn, in the root and two levels of subfolders."""
    subfolders = ("", "trip", "trip/day2")
    for i in range(n):
        write_image(Path(root) / subfolders[i % 3] / f"im{i:03d}.{FORMATS[i % 3]}", i, (40 + i, 56))
    return Path(root)


def name_in_split(split, prefix="new", ext="png"):
    return next(f"{prefix}{i}.{ext}" for i in range(10_000) if folder.hashed_split(f"{prefix}{i}.{ext}") == split)


def load(root, split, cache_dir, **kw):
    options = imagedata.DataOptions("folder", data_dir=str(root), cache_dir=str(cache_dir), **kw)
    return imagedata.load_with_info(options, split, num_workers=1, progress=False)


# --------------------------------------------------------------------------- the folder dataset

def test_recursive_discovery_of_mixed_formats_skips_and_names_a_corrupt_file(tmp_path, capsys):
    root = make_folder(tmp_path / "photos", 30)
    bad = name_in_split("train", "broken", "jpg")
    (root / "trip" / bad).write_bytes(b"this is not a JPEG")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    write_image(root / ".hidden" / "x.png", 99)
    files = [rel for rel, _, _ in folder.scan(str(root))]
    assert len(files) == 31 and {f.rsplit(".", 1)[1] for f in files} == set(FORMATS)
    assert any(f.startswith("trip/day2/") for f in files) and "notes.txt" not in files
    sizes = {}
    for split in imagedata.SPLITS:
        images, info = load(root, split, tmp_path / "cache")
        assert images.dtype == np.uint8 and images.shape[1:] == (3, 64, 64)
        sizes[split] = len(images)
    assert sum(sizes.values()) == 30 and sizes["train"] >= 20
    manifest = json.loads(Path(cache.cache_paths(folder.cache_stem(str(root), "train", "square", 64, None),
                                                 tmp_path / "cache")[1]).read_text())
    assert [s["name"] for s in manifest["skipped"]] == [f"trip/{bad}"]
    assert f"trip/{bad}" in capsys.readouterr().err


def test_square_crop_is_the_largest_centred_square(tmp_path):
    pixels = np.zeros((40, 100, 3), np.uint8)
    pixels[:, 30:70] = 255  # the centred 40x40 square is white, the sides black
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = imagedata.decoding.load_image(tmp_path / "wide.png")
    assert image.shape == (3, 64, 64) and image.min() >= 250
    assert imagedata.decoding.load_image(tmp_path / "wide.png", crop=None).min() == 0
    with pytest.raises(UserError, match="missing.png"):
        imagedata.decoding.load_image(tmp_path / "missing.png")


def test_splits_stay_put_when_images_are_added(tmp_path):
    root = make_folder(tmp_path / "photos", 40)
    before = {s: folder.split_members(folder.scan(str(root)), s) for s in imagedata.SPLITS}
    for i in range(40, 80):
        write_image(root / "more" / f"extra{i}.jpg", i)
    after = {s: dict(folder.split_members(folder.scan(str(root)), s)) for s in imagedata.SPLITS}
    for split, members in before.items():
        assert all(name in after[split] for name, _ in members)
    assert sum(map(len, after.values())) == 80
    # a split file decides instead, and lists only files that exist
    split_file = tmp_path / "splits.txt"
    split_file.write_text("im000.jpg val\n# comment\n\ntrip/im001.png test\n./trip/day2/im002.webp train\n")
    assert load(root, "val", tmp_path / "cache", split_file=str(split_file))[0].shape == (1, 3, 64, 64)
    assert len(load(root, "train", tmp_path / "cache", split_file=str(split_file))[0]) == 1
    split_file.write_text("gone.jpg train\n")
    with pytest.raises(UserError, match="gone.jpg"):
        load(root, "train", tmp_path / "cache", split_file=str(split_file))
    split_file.write_text("im000.jpg training\n")
    with pytest.raises(UserError, match="line 1"):
        load(root, "train", tmp_path / "cache", split_file=str(split_file))


def test_the_cache_is_rebuilt_when_the_folder_changes(tmp_path):
    root = make_folder(tmp_path / "photos", 12)
    cache_dir = tmp_path / "cache"
    first, info = load(root, "train", cache_dir)
    assert info["built"]
    first = np.array(first)
    assert not load(root, "train", cache_dir)[1]["built"]
    added = write_image(root / "trip" / name_in_split("train"), 100)  # add
    images, info = load(root, "train", cache_dir)
    assert info["built"] and len(images) == len(first) + 1
    assert not load(root, "train", cache_dir)[1]["built"]
    added.unlink()  # remove
    images, info = load(root, "train", cache_dir)
    assert info["built"] and len(images) == len(first)
    np.testing.assert_array_equal(images, first)
    victim = sorted(root.rglob("im*"))[0]  # modify: new pixels, same name
    stat = victim.stat()
    write_image(victim, 1000, (40, 56))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    images, info = load(root, "train", cache_dir)
    assert info["built"] and len(images) == len(first)
    assert not np.array_equal(images, first)
    with pytest.raises(UserError, match="--data-dir"):
        imagedata.load(imagedata.DataOptions("folder", cache_dir=str(cache_dir)), "train")


# --------------------------------------------------------------------------- a tiny trained run

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch of a tiny model on a folder of 30 images, with sample grids and (if installed) TensorBoard."""
    from training import TrainConfig, train
    from training.monitor import Monitor

    base = tmp_path_factory.mktemp("own")
    root = make_folder(base / "photos", 30)
    try:
        import tensorboardX  # noqa: F401
        tensorboard = base / "tb"
    except ImportError:
        tensorboard = None
    config = TrainConfig.for_dataset("folder", data_dir=str(root), cache_dir=str(base / "cache"), crop="square",
                                     channels=(4, 4, 4), latent_dim=4, epochs=1, batch_size=8, val_images=4,
                                     log_every=2)
    summary = train(config, weights_dir=base / "weights", progress=False, log=lambda *_: None,
                    monitor=Monitor(sample_every=2, tensorboard=tensorboard))
    return {"base": base, "photos": root, "weights": base / "weights", "tensorboard": tensorboard,
            "summary": summary}


def test_a_grid_of_samples_is_written_every_epoch(run):
    samples = run["weights"] / "samples"
    assert (samples / "epoch_001.png").is_file()
    assert (samples / "step_000002.png").is_file()  # --sample-every 2
    with Image.open(samples / "epoch_001.png") as im:
        assert im.size[0] > 8 * 64 and im.size[1] > 4 * 64


def readme_python_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using a trained model from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_snippet_runs(run, tmp_path, monkeypatch):
    code = readme_python_snippet()
    assert "load_run" in code and "encode" in code and "interpolate_latents" in code
    (tmp_path / "weights").symlink_to(run["weights"], target_is_directory=True)
    write_image(tmp_path / "photos" / "a.jpg", 1, (80, 60))
    write_image(tmp_path / "photos" / "b.png", 2, (60, 90))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["x"].shape == (2, 3, 64, 64) and scope["x"].dtype == np.uint8
    assert scope["x_hat"].shape == (2, 3, 64, 64) and 0 <= scope["x_hat"].min() <= scope["x_hat"].max() <= 1
    assert scope["samples"].shape == (16, 3, 64, 64)
    assert scope["between"].shape == (10, 3, 64, 64)


def test_evaluate_and_interpolate_on_own_images(run, tmp_path, capsys):
    import evaluate
    import interpolate

    common = ["--weights-dir", str(run["weights"]), "--out-dir", str(tmp_path)]
    assert evaluate.main(common + ["--dataset", "folder", "--data-dir", str(run["photos"]), "--split", "train",
                                   "--cache-dir", str(run["base"] / "cache"), "--num-images", "4",
                                   "--num-samples", "4", "--rank-images", "8", "--traverse-dims", "2",
                                   "--traverse-steps", "3"]) == 0
    assert (tmp_path / evaluate.RECONSTRUCTION_FILE).is_file()
    a, b = sorted(run["photos"].rglob("*.png"))[:2]
    assert interpolate.main(common + ["--pair", str(a), str(b), "--steps", "3"]) == 0
    assert (tmp_path / interpolate.INTERPOLATION_FILE).is_file()
    capsys.readouterr()
    assert interpolate.main(common + ["--pair", str(a), str(tmp_path / "nope.jpg")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope.jpg" in err and "\n" not in err


# --------------------------------------------------------------------------- TensorBoard

def read_events(folder):
    """Every Event in the TFRecord event files of ``folder`` (length, crc, data, crc per record)."""
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            events.append(event_pb2.Event.FromString(data[i + 12:i + 12 + length]))
            i += 12 + length + 4
    return events


def test_tensorboard_events_are_readable(run):
    pytest.importorskip("tensorboardX")
    events = read_events(run["tensorboard"])
    scalars, images = {}, []
    for event in events:
        for value in event.summary.value:
            if value.HasField("image"):
                images.append((event.step, value.tag, value.image.width, value.image.height))
            else:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    for tag in ("train/loss", "train/recon", "train/kl", "train/grad_norm", "train/images_per_s", "epoch/val_loss"):
        assert tag in scalars, tag
    history = json.loads((run["weights"] / "history.json").read_text())
    assert [s for s, _ in scalars["train/loss"]] == [r["step"] for r in history["steps"]]
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [r["loss"] for r in history["steps"]],
                               rtol=1e-6)
    assert images and all(tag == "samples" and w >= 8 * 64 for _, tag, w, _ in images)


def test_tensorboard_missing_is_one_sentence(tmp_path, monkeypatch, capsys):
    import train

    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX raises ImportError
    code = train.main(["--dataset", "shapes", "--max-steps", "1", "--no-progress", "--tensorboard",
                       str(tmp_path / "tb"), "--weights-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR
    assert err.count("\n") == 0 and "tensorboardX" in err and 'pip install -e ".[tensorboard]"' in err
    assert not (tmp_path / "w").exists()


def test_a_folder_takes_its_own_crop_not_the_checkpoints(tmp_path):
    import cli
    import evaluate
    import train

    recorded = imagedata.DataOptions("celeba", data_dir="/x", crop=148, limit=50)
    args = evaluate.build_parser().parse_args(["--dataset", "folder", "--data-dir", str(tmp_path)])
    options = cli.data_options(args, recorded)
    assert options.crop == "square" and options.limit is None and options.data_dir == str(tmp_path)
    config = train.config_from_args(train.build_parser().parse_args(["--dataset", "folder", "--data-dir", "d"]))
    assert config.data.crop == "square" and config.as_dict()["data"]["split_file"] is None
    assert train.config_from_args(train.build_parser().parse_args([])).data.crop == 148
