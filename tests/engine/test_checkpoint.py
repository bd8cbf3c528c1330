"""Tests of the model file: round trip, float16, and rejection of everything that is not ours."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    VoiceModel,
    describe_model,
    load_model,
    load_training_state,
    read_header,
    save_model,
)
from engine.config import EvalConfig, FeatureConfig, ModelConfig
from engine.errors import ModelFileError
from engine.normalize import Normalization
from engine.predict import predict_linear
from engine.sampler import ExcerptSampler

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
METADATA = {"name": "test-net", "updates": 1234, "seed": 7, "data": "folder x",
            "validation": {"error": 0.1, "per_file": [{"name": "a", "error": 0.2}], "nested": {"deep": [1, 2]}},
            "augment": None, "train_files": ["a", "b"]}


def make_model(seed: int = 0) -> VoiceModel:
    rng = np.random.default_rng(seed)
    normalization = Normalization(rng.normal(-3, 1, 80).astype(np.float32),
                                  rng.uniform(0.5, 2, 80).astype(np.float32))
    model = VoiceModel.create(model_config=SMALL, normalization=normalization, seed=seed)
    model.threshold = 0.37
    model.eval_config = EvalConfig(median_frames=42, thresholds=(0.1, 0.37, 0.9))
    model.metadata = json.loads(json.dumps(METADATA))
    return model


@pytest.fixture
def model():
    return make_model()


@pytest.fixture
def model_path(tmp_path, model):
    return save_model(tmp_path / "net.safetensors", model)


def random_linear(frames: int = 300, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(1.0, 0.5, (frames, 513)).astype(np.float32)


def rewrite(source, target, *, header=None, tensors=None):
    """Copy a model file with its header dict and/or tensor dict edited by the given functions."""
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
    values = load_file(str(source))
    head = json.loads(meta["svgui"])
    if header is not None:
        head = header(head) or head
    if tensors is not None:
        values = tensors(values) or values
    meta["svgui"] = json.dumps(head)
    save_file(values, str(target), metadata=meta)
    return target


# --- round trip -------------------------------------------------------------------------------

def test_round_trip_keeps_everything(model, model_path):
    loaded = load_model(model_path)
    original = model.network.state_dict()
    restored = loaded.network.state_dict()
    assert set(original) == set(restored)
    for key in original:
        assert restored[key].dtype == torch.float32
        assert torch.equal(original[key], restored[key]), key
    assert loaded.model_config == SMALL
    assert loaded.features == FeatureConfig()
    assert loaded.eval_config == EvalConfig(median_frames=42, thresholds=(0.1, 0.37, 0.9))
    assert loaded.normalization == model.normalization
    assert loaded.threshold == 0.37
    assert loaded.metadata == METADATA
    assert loaded.metadata["validation"]["nested"]["deep"] == [1, 2]
    assert loaded.path == model_path
    assert loaded.name == "test-net"
    assert not loaded.network.training  # ready to predict


def test_round_trip_predicts_identically(model, model_path):
    linear = random_linear()
    assert np.array_equal(predict_linear(load_model(model_path), linear), predict_linear(model, linear))


def test_non_default_features_round_trip(tmp_path):
    features = FeatureConfig(n_mels=40, fmax_hz=6000.0)
    model = VoiceModel.create(model_config=SMALL, features=features)
    loaded = load_model(save_model(tmp_path / "m.safetensors", model))
    assert loaded.features == features
    assert loaded.network.n_mels == 40
    assert loaded.normalization.mean.shape == (40,)


def test_numpy_values_in_metadata_are_stored_as_plain_numbers(tmp_path, model):
    model.metadata = {"updates": np.int64(5), "error": np.float32(0.25), "pair": (1, 2)}
    loaded = load_model(save_model(tmp_path / "m.safetensors", model))
    assert loaded.metadata == {"updates": 5, "error": 0.25, "pair": [1, 2]}


def test_unstorable_metadata_is_refused(tmp_path, model):
    model.metadata = {"bad": object()}
    with pytest.raises(TypeError, match="cannot store object"):
        save_model(tmp_path / "m.safetensors", model)
    assert not (tmp_path / "m.safetensors").exists()


def test_half_stores_float16_and_predicts_within_1e3(tmp_path, model):
    full = save_model(tmp_path / "full.safetensors", model)
    half = save_model(tmp_path / "half.safetensors", model, half=True)
    with safe_open(str(half), framework="pt") as handle:
        dtypes = {k: handle.get_slice(k).get_dtype() for k in handle.keys()}
    assert {v for k, v in dtypes.items() if k.startswith("network.")} == {"F16"}
    assert dtypes["normalization.mean"] == "F32"  # statistics stay exact
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    for key, value in loaded.network.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, model.network.state_dict()[key].half().float())
    linear = random_linear(400)
    p_full, p_half = predict_linear(model, linear), predict_linear(loaded, linear)
    assert p_full.std() > 0.01  # not saturated: the comparison means something
    assert np.abs(p_full - p_half).max() <= 1e-3


def test_training_tensors_round_trip(tmp_path, model):
    sampler = ExcerptSampler(torch.arange(50), seed=3)
    sampler.next_batch(17)
    tensors = {**sampler.state(), "momentum.0": torch.randn(8, 1, 3, 3)}
    path = save_model(tmp_path / "ckpt.safetensors", model, training_tensors=tensors,
                      training_info={"update": 17, "elapsed_s": 1.5, "config": {"seed": 3}})
    state, info = load_training_state(path)
    assert info == {"update": 17, "elapsed_s": 1.5, "config": {"seed": 3}}
    assert set(state) == set(tensors)
    for key in tensors:
        assert torch.equal(state[key], tensors[key]), key
    resumed = ExcerptSampler(torch.arange(50), seed=0)
    resumed.load_state(state)
    assert torch.equal(resumed.next_batch(40), sampler.next_batch(40))
    # A checkpoint is also a model: it loads and its train.* tensors don't disturb the network.
    assert load_model(path).threshold == 0.37


def test_load_training_state_of_a_finished_model(model_path):
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        load_training_state(model_path)


def test_read_header(model_path):
    header = read_header(model_path)
    assert header["format"] == FORMAT_NAME and header["version"] == FORMAT_VERSION
    assert header["threshold"] == 0.37
    assert header["model"]["conv_channels"] == [8, 8, 16, 8]
    assert header["features"]["n_mels"] == 80
    assert header["metadata"]["validation"]["nested"] == {"deep": [1, 2]}
    assert "training" not in header


def test_describe_model_mentions_the_threshold(model_path):
    text = describe_model(model_path)
    assert "threshold: 0.3700" in text
    assert str(model_path) in text
    assert "updates: 1234" in text
    assert 'validation: {"error": 0.1' in text


def test_save_refuses_nan_weights(tmp_path, model):
    with torch.no_grad():
        model.network.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ModelFileError, match="NaN"):
        save_model(tmp_path / "m.safetensors", model)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_save_replaces_atomically(tmp_path, model):
    path = save_model(tmp_path / "m.safetensors", model)
    model.threshold = 0.8
    save_model(path, model)
    assert load_model(path).threshold == 0.8
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


# --- rejection ----------------------------------------------------------------------------------

class Payload:
    """Unpickling this creates a marker file: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_not_executed(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=protocol))
    with pytest.raises(ModelFileError, match="evil.safetensors"):
        load_model(path)
    with pytest.raises(ModelFileError):
        read_header(path)
    assert not marker.exists()
    if protocol >= 2:
        with pytest.raises(ModelFileError, match="pickled PyTorch file.*never unpickles"):
            load_model(path)
    # The payload is real: unpickling it does create the marker.
    with open(path, "rb") as handle:
        pickle.load(handle)["state_dict"].close()
    assert marker.exists()


def test_torch_save_file_is_rejected_unexecuted(tmp_path, model):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"state_dict": model.network.state_dict(), "extra": Payload(marker)}, path)
    with pytest.raises(ModelFileError, match="pickled PyTorch file"):
        load_model(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what a careless loader would do
    assert marker.exists()


def test_plain_torch_state_dict_is_rejected(tmp_path, model):
    path = tmp_path / "weights.pth"
    torch.save(model.network.state_dict(), path)
    with pytest.raises(ModelFileError, match="never unpickles"):
        load_model(path)


def test_zip_file_is_rejected(tmp_path):
    path = tmp_path / "archive.safetensors"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="archive.safetensors"):
        load_model(path)


def test_random_bytes_are_rejected(tmp_path):
    path = tmp_path / "noise.safetensors"
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert not data.startswith((b"\x80", b"PK"))
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match="noise.safetensors: not an svgui model file"):
        load_model(path)


def test_truncated_model_file_is_rejected(tmp_path, model_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(model_path.read_bytes()[:2000])
    with pytest.raises(ModelFileError, match="cut.safetensors"):
        load_model(path)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_model(path)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nothing.safetensors")


def test_folder_is_rejected(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path)


@pytest.mark.parametrize("metadata", [None, {"format": "pt", "author": "someone"}])
def test_foreign_safetensors_file_is_rejected(tmp_path, metadata):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.ones(3, 3)}, str(path), metadata=metadata)
    with pytest.raises(ModelFileError, match="not an svgui model \\(no svgui header\\)"):
        load_model(path)


def test_foreign_format_name_is_rejected(tmp_path, model_path):
    path = rewrite(model_path, tmp_path / "x.safetensors", header=lambda h: {**h, "format": "other-tool"})
    with pytest.raises(ModelFileError, match="format 'other-tool'"):
        load_model(path)


def test_damaged_header_json_is_rejected(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.ones(1)}, str(path), metadata={"svgui": "{not json"})
    with pytest.raises(ModelFileError, match="damaged model header"):
        load_model(path)


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_wrong_format_version_is_rejected(tmp_path, model_path, version):
    path = rewrite(model_path, tmp_path / "x.safetensors", header=lambda h: {**h, "version": version})
    with pytest.raises(ModelFileError, match=f"version {version} is not supported"):
        load_model(path)


def test_weight_with_wrong_shape_is_rejected(tmp_path, model_path):
    def shrink(t):
        t["network.fc2.weight"] = t["network.fc2.weight"][:, :-1].contiguous()
    path = rewrite(model_path, tmp_path / "x.safetensors", tensors=shrink)
    with pytest.raises(ModelFileError, match=r"fc2.weight has shape \(16, 31\), expected \(16, 32\)"):
        load_model(path)


def test_header_config_not_matching_the_weights_is_rejected(tmp_path, model_path):
    def widen(h):
        h["model"]["dense_units"] = [64, 16]
    path = rewrite(model_path, tmp_path / "x.safetensors", header=widen)
    with pytest.raises(ModelFileError, match=r"fc1\.(weight|bias) has shape .*expected \(64"):
        load_model(path)


def test_missing_and_extra_weights_are_rejected(tmp_path, model_path):
    def drop(t):
        del t["network.conv3.bias"]
    path = rewrite(model_path, tmp_path / "x.safetensors", tensors=drop)
    with pytest.raises(ModelFileError, match="conv3.bias"):
        load_model(path)

    def add(t):
        t["network.conv5.weight"] = torch.zeros(2)
    path = rewrite(model_path, tmp_path / "y.safetensors", tensors=add)
    with pytest.raises(ModelFileError, match="conv5.weight"):
        load_model(path)


def test_missing_normalization_is_rejected(tmp_path, model_path):
    def drop(t):
        del t["normalization.std"]
    path = rewrite(model_path, tmp_path / "x.safetensors", tensors=drop)
    with pytest.raises(ModelFileError, match="lacks 'normalization.std'"):
        load_model(path)


def test_bad_normalization_is_rejected(tmp_path, model_path):
    def zero_std(t):
        t["normalization.std"] = torch.zeros(80)
    path = rewrite(model_path, tmp_path / "x.safetensors", tensors=zero_std)
    with pytest.raises(ModelFileError, match="std > 0"):
        load_model(path)

    def short(t):
        t["normalization.mean"] = t["normalization.mean"][:40].contiguous()
        t["normalization.std"] = t["normalization.std"][:40].contiguous()
    path = rewrite(model_path, tmp_path / "y.safetensors", tensors=short)
    with pytest.raises(ModelFileError, match="normalization has 40 bands, features have 80"):
        load_model(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_rejected(tmp_path, model_path, value):
    def poison(t):
        t["network.conv2.weight"][0, 0, 1, 1] = value
    path = rewrite(model_path, tmp_path / "x.safetensors", tensors=poison)
    with pytest.raises(ModelFileError, match="conv2.weight contains NaN or infinity"):
        load_model(path)


@pytest.mark.parametrize("section", ["model", "features", "eval"])
def test_unknown_config_keys_are_rejected(tmp_path, model_path, section):
    def add_key(h):
        h[section]["warp_drive"] = 9
    path = rewrite(model_path, tmp_path / "x.safetensors", header=add_key)
    with pytest.raises(ModelFileError, match="invalid model settings.*unknown .* field\\(s\\): warp_drive"):
        load_model(path)


def test_invalid_config_values_are_rejected(tmp_path, model_path):
    def bad(h):
        h["model"]["dropout"] = 1.5
    path = rewrite(model_path, tmp_path / "x.safetensors", header=bad)
    with pytest.raises(ModelFileError, match="dropout must be in"):
        load_model(path)

    def wrong_type(h):
        h["features"]["n_mels"] = "eighty"
    path = rewrite(model_path, tmp_path / "y.safetensors", header=wrong_type)
    with pytest.raises(ModelFileError, match="n_mels must be a whole number, got 'eighty'"):
        load_model(path)


def test_missing_config_section_is_rejected(tmp_path, model_path):
    def drop(h):
        del h["model"]
    path = rewrite(model_path, tmp_path / "x.safetensors", header=drop)
    with pytest.raises(ModelFileError, match="lacks 'model'"):
        load_model(path)


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan")])
def test_threshold_outside_unit_interval_is_rejected(tmp_path, model_path, threshold):
    path = rewrite(model_path, tmp_path / "x.safetensors", header=lambda h: {**h, "threshold": threshold})
    with pytest.raises(ModelFileError, match=r"threshold .* is outside \[0, 1\]"):
        load_model(path)


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_at_the_ends_is_accepted(tmp_path, model_path, threshold):
    path = rewrite(model_path, tmp_path / "x.safetensors", header=lambda h: {**h, "threshold": threshold})
    assert load_model(path).threshold == threshold


def test_non_numeric_threshold_is_rejected(tmp_path, model_path):
    path = rewrite(model_path, tmp_path / "x.safetensors", header=lambda h: {**h, "threshold": "high"})
    with pytest.raises(ModelFileError, match="invalid model settings"):
        load_model(path)


def test_rejected_files_are_left_alone(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(b"\x01" * 100)
    before = path.read_bytes()
    with pytest.raises(ModelFileError):
        load_model(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["noise.safetensors"]


def test_every_header_length_loads(tmp_path, model):
    path = tmp_path / "m.safetensors"
    for pad in range(300):  # grow the header one byte at a time until its length ends in 0x80
        model.metadata = {"note": "x" * pad}
        save_model(path, model)
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no header length ending in 0x80 reached")
    assert load_model(path).metadata == {"note": "x" * pad}


# --- crafted headers: one clear error, before anything is built or allocated -----------------

def rewrite_raw(source, target, text):
    """Copy a model file with its svgui header replaced by ``text`` (any JSON, or not JSON)."""
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
    meta["svgui"] = text
    save_file(load_file(str(source)), str(target), metadata=meta)
    return target


@pytest.mark.parametrize("text, kind", [("[1, 2]", "list"), ('"model"', "string"), ("42", "number"),
                                        ("null", "null")])
def test_header_that_is_not_a_json_object_is_refused(tmp_path, model_path, text, kind):
    path = rewrite_raw(model_path, tmp_path / "x.safetensors", text)
    for reader in (read_header, load_model, describe_model):
        with pytest.raises(ModelFileError, match=f"a JSON {kind}, not an object"):
            reader(path)


@pytest.mark.parametrize("section", ["features", "model", "eval", "metadata", "training"])
@pytest.mark.parametrize("value", [[1, 2], "text", 3])
def test_sections_that_are_not_objects_are_refused(tmp_path, model_path, section, value):
    path = rewrite(model_path, tmp_path / "x.safetensors", header=lambda h: {**h, section: value})
    with pytest.raises(ModelFileError, match=f"'{section}' is a JSON"):
        load_model(path)


def test_deeply_nested_header_is_refused(tmp_path, model_path):
    path = rewrite_raw(model_path, tmp_path / "x.safetensors", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match="damaged model header"):
        read_header(path)


@pytest.fixture
def nothing_is_built(monkeypatch):
    """Fail the test if the loader builds a network or reads a tensor of the file."""
    def refuse(*args, **kwargs):
        raise AssertionError("the loader allocated before refusing the file")
    monkeypatch.setattr("engine.checkpoint.SingingVoiceCNN", refuse)
    monkeypatch.setattr("engine.checkpoint._load_tensors", refuse)


@pytest.mark.parametrize("section, key, value, message", [
    ("model", "dense_units", [20000, 64], "dense_units = 20000 is outside"),
    ("model", "conv_channels", [64, 32, 100000, 64], "conv_channels = 100000 is outside"),
    ("model", "dense_units", [8000, 8000], "weights, more than the supported"),  # each within bounds, too many weights in all
    ("model", "kernel_size", 99, "kernel_size = 99"),
    ("model", "excerpt_frames", 1_000_001, "excerpt_frames = 1000001"),
    ("features", "n_mels", 100_000, "n_mels = 100000"),
    ("features", "hop_length", 1, "hop_length = 1"),
    ("eval", "median_frames", 1_000_000_000, "median_frames = 1000000000 is outside"),
    ("eval", "thresholds", [0.5] * 20_000, "thresholds = 20000"),
])
def test_settings_beyond_the_limits_are_refused_before_allocating(tmp_path, model_path, nothing_is_built,
                                                                   section, key, value, message):
    path = rewrite(model_path, tmp_path / "x.safetensors",
                   header=lambda h: {**h, section: {**h[section], key: value}})
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_float_median_frames_is_refused(tmp_path, model_path):
    path = rewrite(model_path, tmp_path / "x.safetensors",
                   header=lambda h: {**h, "eval": {**h["eval"], "median_frames": 1e9}})
    with pytest.raises(ModelFileError, match="median_frames must be a whole number"):
        load_model(path)


def test_wrong_tensor_shapes_are_refused_before_reading_them(tmp_path, model_path, monkeypatch):
    def grow(t):
        t["network.fc1.weight"] = torch.zeros(33, t["network.fc1.weight"].shape[1])
    path = rewrite(model_path, tmp_path / "x.safetensors", tensors=grow)
    monkeypatch.setattr("engine.checkpoint._load_tensors", lambda *a, **k: pytest.fail("tensors were read"))
    with pytest.raises(ModelFileError, match=r"weight fc1.weight has shape \(33, "):
        load_model(path)


def test_integer_weights_are_refused(tmp_path, model_path):
    def to_int(t):
        t["network.fc3.bias"] = t["network.fc3.bias"].to(torch.int64)
    path = rewrite(model_path, tmp_path / "x.safetensors", tensors=to_int)
    with pytest.raises(ModelFileError, match="expected a float type"):
        load_model(path)


@pytest.mark.parametrize("training, message", [
    ({"update": "many", "elapsed_s": 1.0, "config": {}}, "training update"),
    ({"update": 3, "elapsed_s": -1, "config": {}}, "training elapsed_s"),
    ({"update": 3, "elapsed_s": 1.0, "config": [1]}, "config or augment"),
])
def test_damaged_training_info_is_refused(tmp_path, model_path, training, message):
    path = rewrite(model_path, tmp_path / "x.safetensors", header=lambda h: {**h, "training": training})
    with pytest.raises(ModelFileError, match=message):
        load_training_state(path)


# --- writing: through the atomic writer, full disks, file modes ------------------------------

def test_full_disk_while_saving_is_a_clean_error_and_keeps_the_old_file(tmp_path, model, monkeypatch):
    import errno

    from engine.errors import OutputWriteError
    path = save_model(tmp_path / "m.safetensors", model)
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("engine.fileio.os.fsync", no_space)
    model.threshold = 0.9
    with pytest.raises(OutputWriteError, match="No space left on device") as caught:
        save_model(path, model)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left


def test_full_disk_during_the_write_itself(tmp_path, model, monkeypatch):
    import errno
    import io

    from engine.errors import OutputWriteError

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("engine.fileio.os.fdopen", lambda fd, mode, **kw: FullDisk(fd, "wb"))
    with pytest.raises(OutputWriteError, match="No space left"):
        save_model(tmp_path / "m.safetensors", model)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_model_files_get_the_mode_the_umask_gives(tmp_path, model, umask, mode):
    old = os.umask(umask)
    try:
        path = save_model(tmp_path / "m.safetensors", model)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_replacing_a_model_keeps_its_mode(tmp_path, model, mode):
    path = save_model(tmp_path / "m.safetensors", model)
    path.chmod(mode)
    old = os.umask(0o077)
    try:
        save_model(path, model)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
