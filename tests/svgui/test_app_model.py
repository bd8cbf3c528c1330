"""`svgui --model BAD`: the app starts with the bundled model and says why (issue 13 item 6)."""

import json
import warnings

import pytest
from PySide6.QtWidgets import QApplication
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.checkpoint import VoiceModel, save_model
from engine.config import ModelConfig
from engine.resources import bundled_model_path
from svgui.dialogs import messages
from svgui.main_window import MainWindow


def _crafted_model(env, name, edit):
    good = save_model(env / "good.safetensors",
                      VoiceModel.create(model_config=ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))))
    with safe_open(str(good), framework="pt") as handle:
        meta = dict(handle.metadata())
    meta["svgui"] = edit(json.loads(meta["svgui"]))
    save_file(load_file(str(good)), str(env / name), metadata=meta)
    return env / name


@pytest.mark.parametrize("name, edit, reason", [
    ("list.safetensors", lambda h: "[1, 2]", "a JSON list, not an object"),
    ("huge.safetensors", lambda h: json.dumps({**h, "model": {**h["model"], "dense_units": [20000, 64]}}),
     "dense_units = 20000"),
    ("missing.safetensors", None, "model file not found"),
])
def test_a_bad_model_option_starts_with_the_bundled_model_and_says_why(qtbot, env, monkeypatch, capsys,
                                                                        name, edit, reason):
    from svgui import app

    bad = _crafted_model(env, name, edit) if edit else env / name
    monkeypatch.setattr(QApplication, "exec", lambda self: 0)  # main() returns once the window is up
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets these for the process
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    assert app.main(["--model", str(bad)]) == 0
    err = capsys.readouterr().err
    assert f"warning: --model not loaded: {bad}" in err and reason in err
    shown = [m for m in messages.recorded if m.title == "Cannot load model"]
    assert len(shown) == 1 and reason in shown[0].text and "bundled model" in shown[0].text
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    window = windows[-1]
    qtbot.addWidget(window)
    assert window.model is not None and window.model.path == bundled_model_path()
    assert "using the bundled model" in window.statusBar().currentMessage()
    window.document.undo_stack.setClean()
    window.workers.stop_all()
