"""What users read: one-line warnings without our source lines, 'n/a' for undefined figures."""

import contextlib
import io
import os
import pickle
import struct
import subprocess
import sys
import warnings

import pytest

import engine.train
from engine.cli import main
from engine.config import ModelConfig
from tests.cli_helpers import with_widths
from tests.synth import write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


def test_cli_warnings_are_one_line_without_source_code(tmp_path):
    song = write_song(tmp_path / "data" / "song.wav", 3.0, [(1.0, 2.0)], label_suffix=None)
    song.with_suffix(".lab").write_text("")  # empty labels: a warning, then no-voice ground truth
    env = {**os.environ, "PYTHONWARNINGS": ""}
    result = subprocess.run([sys.executable, "-m", "engine.cli", "evaluate", "--data", str(song.parent)],
                            capture_output=True, text=True, timeout=180, env=env)
    warnings = [line for line in result.stderr.splitlines() if "no labels in the file" in line]
    assert warnings == [f"warning: {song.with_suffix('.lab')}: no labels in the file, so it all counts as no voice"]
    assert "warnings.warn" not in result.stderr and "labels.py" not in result.stderr


def test_training_on_one_class_data_says_recall_n_a(tmp_path):
    for i in range(2):  # no voice anywhere: recall is undefined
        write_song(tmp_path / "train" / f"song{i}.wav", 4.0, [], seed=i)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.setattr("engine.train.train", with_widths(engine.train.train, SMALL))
        code = main(["train", "--train", str(tmp_path / "train"), "--out", str(tmp_path / "m.safetensors"),
                     "--updates", "4", "--validate-every", "2", "--device", "cpu"])
    text = out.getvalue() + err.getvalue()
    assert code == 0, text
    figures = [line for line in text.splitlines() if "recall" in line]
    assert figures and all("recall n/a" in line for line in figures), figures
    assert "nan" not in text


def test_a_safetensors_header_length_starting_with_0x80_is_not_called_a_pickle(tmp_path):
    from engine.checkpoint import read_header
    from engine.errors import ModelFileError

    damaged = tmp_path / "damaged.safetensors"
    header = b'{"a": [1, 2' + b" " * (0x80 - 11)  # 128 bytes of broken JSON: the length's first byte is 0x80
    damaged.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(ModelFileError, match="a damaged safetensors file") as info:
        read_header(damaged)
    assert "pickle" not in str(info.value)
    pickled = tmp_path / "pickled.safetensors"
    pickled.write_bytes(pickle.dumps({"weights": [1.0]}, protocol=2))
    with pytest.raises(ModelFileError, match="a pickled PyTorch file"):
        read_header(pickled)


def test_plain_warnings_leave_recording_warnings_alone(monkeypatch, capsys):
    from engine.warning_format import use_plain_warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        use_plain_warnings()
        warnings.warn("recorded, not printed", stacklevel=1)
    assert [str(w.message) for w in caught] == ["recorded, not printed"]
    assert capsys.readouterr().err == ""
    code = "import warnings; from engine.warning_format import use_plain_warnings as u; u(); warnings.warn('printed')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stderr == "warning: printed\n"
