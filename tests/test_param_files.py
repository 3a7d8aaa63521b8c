"""Parameter files: the safetensors reader and writer, hostile files, dtypes, names, and the legacy .npz."""
import json
import struct

import jax
import numpy as np
import pytest

from model import Architecture, init_params, load_params, save_params, tensor_file
from model.param_file import read_params
from system.errors import UserError

SMALL = Architecture(channels=(4, 6, 8), latent_dim=5, image_size=16)


def raw_file(path, header: dict, data: bytes = b"", length=None):
    """A file laid out as safetensors with any header (lies included)."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def small_params():
    return {k: np.asarray(v) for k, v in init_params(jax.random.PRNGKey(0), SMALL).items()}


def test_round_trip_keeps_every_array_dtype_and_the_metadata(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array(7, np.int32),
              "c": np.linspace(0, 1, 5), "d": np.zeros((0, 3), np.float16), "e": np.array([True, False])}
    tensor_file.write(tmp_path / "t.safetensors", arrays, {"k": "v"})
    back, metadata = tensor_file.read(tmp_path / "t.safetensors")
    assert metadata == {"k": "v"} and set(back) == set(arrays)
    for k in arrays:
        assert back[k].dtype == arrays[k].dtype and back[k].shape == arrays[k].shape
        np.testing.assert_array_equal(back[k], arrays[k])
    header_length = struct.unpack("<Q", (tmp_path / "t.safetensors").read_bytes()[:8])[0]
    assert header_length % 8 == 0  # tensors start aligned, as the reference implementation writes


def test_bfloat16_reads_as_exact_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)  # exactly representable in bfloat16
    data = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    raw_file(tmp_path / "b.safetensors", {"x": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}, data)
    np.testing.assert_array_equal(tensor_file.read(tmp_path / "b.safetensors")[0]["x"], values)


@pytest.mark.parametrize("header,data,length,needle", [
    ({}, b"", 10 ** 9, "claims 1,000,000,000 bytes"),                           # a header longer than the file
    ({}, b"", tensor_file.MAX_HEADER + 1, "over the"),                          # a huge header
    ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None, "outside"),  # past the end
    ({"x": {"dtype": "F32", "shape": [10 ** 12], "data_offsets": [0, 4]}}, b"\0" * 4, None, "spans"),  # shape lies
    ({"x": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, b"\0" * 4, None, "outside"),
    ({"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None, "unknown dtype"),
    ({"x": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}}, b"\0" * 4, None, "shape"),
    ({"x": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None, "data_offsets"),
    ([1, 2], b"", None, "not a JSON object"),
    ({"__metadata__": {"a": 1}}, b"", None, "map of strings"),
])
def test_a_hostile_header_is_refused_before_any_tensor_is_read(tmp_path, header, data, length, needle):
    path = raw_file(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(tensor_file.TensorFileError, match=needle):
        tensor_file.read(path)
    with pytest.raises(UserError) as err:
        read_params(path)
    assert "\n" not in str(err.value) and str(err.value).endswith(".")


def test_duplicate_names_and_non_json_headers_are_refused(tmp_path):
    text = b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    (tmp_path / "dup.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * 4)
    with pytest.raises(tensor_file.TensorFileError, match="twice"):
        tensor_file.read(tmp_path / "dup.safetensors")
    (tmp_path / "jpeg.safetensors").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    with pytest.raises(UserError, match="neither a safetensors nor a .npz"):
        read_params(tmp_path / "jpeg.safetensors")


@pytest.mark.parametrize("text", ['{\n  "epoch": 3, "step": 960}\n', "# a README\n\nwith words\n"])
def test_a_text_file_given_as_parameters_is_called_text(tmp_path, text):
    (tmp_path / "notes.safetensors").write_text(text)
    with pytest.raises(UserError, match="it begins with the text") as err:
        read_params(tmp_path / "notes.safetensors")
    assert "\n" not in str(err.value)


def test_params_round_trip_with_config_and_architecture_from_the_shapes(tmp_path):
    params = small_params()
    save_params(tmp_path / "model.safetensors", params, {"model": SMALL.as_dict(), "x": 1})
    loaded, config = load_params(tmp_path / "model.safetensors")
    assert config == {"model": SMALL.as_dict(), "x": 1}
    for k in params:
        np.testing.assert_array_equal(loaded[k], params[k])
    tensor_file.write(tmp_path / "bare.safetensors", params)  # a state_dict with no metadata at all
    loaded, config = load_params(tmp_path / "bare.safetensors")
    assert config == {} and Architecture.of(loaded) == SMALL


@pytest.mark.parametrize("dtype,name", [(np.float16, "float16"), (np.float64, "float64")])
def test_other_float_dtypes_are_converted_with_a_line_saying_so(tmp_path, capsys, dtype, name):
    params = {k: v.astype(dtype) for k, v in small_params().items()}
    tensor_file.write(tmp_path / "m.safetensors", params)
    loaded, _ = load_params(tmp_path / "m.safetensors")
    assert all(v.dtype == np.float32 for v in loaded.values())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "converted to float32" in err


def test_wrong_names_shapes_and_dtypes_are_one_sentence(tmp_path):
    params = small_params()
    cases = {
        "missing": {k: v for k, v in params.items() if k != "decoder.fc.bias"},
        "extra": dict(params, **{"decoder.extra.weight": np.zeros(3, np.float32)}),
        "shape": dict(params, **{"decoder.fc.bias": np.zeros(7, np.float32)}),
        "integer": dict(params, **{"decoder.fc.bias": params["decoder.fc.bias"].astype(np.int32)}),
        "renamed": {k.replace("encoder.", "enc."): v for k, v in params.items()},
        "wrapped": {f"module.{k}": v for k, v in params.items()},
        "compiled": {f"_orig_mod.{k}": v for k, v in params.items()},
        "diverged": dict(params, **{"encoder.conv2.bias": params["encoder.conv2.bias"] * np.nan}),
        "infinite": dict(params, **{"decoder.fc.weight": params["decoder.fc.weight"] * np.inf}),
    }
    needles = {"missing": "no parameter 'decoder.fc.bias'", "extra": "'decoder.extra.weight'",
               "shape": "another architecture", "integer": "not floating point", "renamed": "not those of this model",
               "wrapped": "under the prefix 'module.'", "compiled": "under the prefix '_orig_mod.'",
               "diverged": "'encoder.conv2.bias' .* NaN or infinite", "infinite": "'decoder.fc.weight' .* NaN or infinite"}
    for case, arrays in cases.items():
        tensor_file.write(tmp_path / f"{case}.safetensors", arrays)
        with pytest.raises(UserError, match=needles[case]) as err:
            load_params(tmp_path / f"{case}.safetensors")
        assert "\n" not in str(err.value), case


def test_legacy_npz_still_loads_and_is_never_unpickled(tmp_path):
    params = small_params()
    save_params(tmp_path / "params.npz", params, {"model": SMALL.as_dict()})
    loaded, config = load_params(tmp_path / "params.npz")
    assert config["model"] == SMALL.as_dict() and set(loaded) == set(params)
    np.savez(tmp_path / "evil.npz", x=np.array([object()], dtype=object))
    with pytest.raises(UserError, match="not a readable parameter file"):
        load_params(tmp_path / "evil.npz")


def test_a_newer_file_version_is_refused(tmp_path):
    tensor_file.write(tmp_path / "new.safetensors", small_params(), {"bvaex": "params", "version": "99"})
    with pytest.raises(UserError, match="newer bvaex"):
        load_params(tmp_path / "new.safetensors")


def test_the_reference_safetensors_package_reads_ours_and_we_read_its(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    params = small_params()
    save_params(tmp_path / "ours.safetensors", params, {"model": SMALL.as_dict()})
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert set(theirs) == set(params) and all(np.array_equal(theirs[k], params[k]) for k in params)
    st.save_file(params, str(tmp_path / "theirs.safetensors"))
    loaded, _ = load_params(tmp_path / "theirs.safetensors")
    assert all(np.array_equal(loaded[k], params[k]) for k in params)


def test_a_checkpoint_of_the_npz_era_still_resumes(tmp_path):
    """params.npz and optimizer.npz, as checkpoints were written before safetensors."""
    import train
    from training import RunDir
    from training.checkpoints import read_optimizer
    flags = ["--dataset", "shapes", "--limit", "64", "--batch-size", "32", "--val-images", "0", "--channels", "4",
             "4", "4", "--latent-dim", "4", "--no-progress", "--weights-dir", str(tmp_path / "w")]
    assert train.main(flags + ["--epochs", "1"]) == 0
    folder = tmp_path / "w" / "epoch_1"
    arrays, metadata = tensor_file.read(folder / RunDir.PARAMS_FILE)
    legacy = json.loads(metadata["config"])
    legacy = {"model": legacy["model"], "data": legacy["data"], "train": {**legacy["run"], **legacy["hparams"]}}
    save_params(folder / "params.npz", arrays, legacy)  # the unversioned record of that era
    np.savez(folder / "optimizer.npz", **read_optimizer(folder / RunDir.OPTIMIZER_FILE))
    (folder / RunDir.PARAMS_FILE).unlink()
    (folder / RunDir.OPTIMIZER_FILE).unlink()
    assert RunDir.params_file(folder).name == "params.npz" and RunDir.is_complete(folder)
    assert train.main(flags + ["--epochs", "2", "--resume"]) == 0
    assert (tmp_path / "w" / "epoch_2" / RunDir.PARAMS_FILE).is_file()
