"""QSettings helpers: a private INI file per test, recent files, colour map, window layout."""

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow

from svgui import settings as st


@pytest.fixture
def settings(tmp_path, monkeypatch) -> QSettings:
    monkeypatch.setenv(st.SETTINGS_DIR_ENV, str(tmp_path / "settings"))
    return st.make_settings()


def test_settings_file_lives_in_the_directory_from_the_environment(settings, tmp_path):
    assert settings.format() == QSettings.Format.IniFormat
    settings.setValue("x", 1)
    settings.sync()
    assert Path(settings.fileName()).parent == tmp_path / "settings"
    assert Path(settings.fileName()).is_file()


def test_without_the_environment_variable_the_user_location_is_used(monkeypatch, qapp):
    monkeypatch.delenv(st.SETTINGS_DIR_ENV, raising=False)
    s = st.make_settings()
    assert s.format() == QSettings.Format.IniFormat
    assert s.organizationName() == "svgui" and s.applicationName() == "svgui"


def test_recent_files_most_recent_first_deduplicated_and_limited(settings, tmp_path):
    assert st.recent_files(settings) == []
    paths = [tmp_path / f"song{i}.wav" for i in range(5)]
    for p in paths:
        st.add_recent_file(settings, p, limit=3)
    assert st.recent_files(settings) == [str(p) for p in paths[:1:-1]]  # 4, 3, 2
    st.add_recent_file(settings, paths[3], limit=3)  # again: moves to the front, no duplicate
    assert st.recent_files(settings) == [str(paths[3]), str(paths[4]), str(paths[2])]
    st.add_recent_file(settings, tmp_path / "sub" / ".." / "song2.wav", limit=3)  # same file, other spelling
    assert st.recent_files(settings) == [str(paths[2]), str(paths[3]), str(paths[4])]
    st.remove_recent_file(settings, paths[3])
    assert st.recent_files(settings) == [str(paths[2]), str(paths[4])]


def test_recent_files_survive_a_new_settings_object(settings, tmp_path):
    st.add_recent_file(settings, tmp_path / "only.wav")  # a one-element list is stored as a plain string
    settings.sync()
    again = st.make_settings()
    assert st.recent_files(again) == [str(tmp_path / "only.wav")]
    st.clear_recent_files(again)
    again.sync()
    assert st.recent_files(st.make_settings()) == []


def test_colormap_model_and_folder_round_trip(settings, tmp_path):
    assert st.colormap(settings) == st.DEFAULT_COLORMAP
    st.set_colormap(settings, "magma")
    assert st.active_model_path(settings) is None
    st.set_active_model_path(settings, tmp_path / "model.svgui")
    assert st.last_folder(settings) == str(Path.home())  # nothing yet
    audio = tmp_path / "song.wav"
    audio.write_bytes(b"")
    st.set_last_folder(settings, audio)  # a file: its folder is remembered
    settings.sync()
    again = st.make_settings()
    assert st.colormap(again) == "magma"
    assert st.active_model_path(again) == str(tmp_path / "model.svgui")
    assert st.last_folder(again) == str(tmp_path)
    st.set_active_model_path(again, None)
    assert st.active_model_path(again) is None


def test_last_folder_that_no_longer_exists_falls_back(settings, tmp_path):
    st.set_last_folder(settings, tmp_path / "gone")
    assert st.last_folder(settings, default="/fallback") == "/fallback"


def test_window_geometry_and_dock_layout_round_trip(settings, qtbot):
    def make_window():
        window = QMainWindow()
        window.setCentralWidget(QLabel("centre"))
        dock = QDockWidget("Files", window)
        dock.setObjectName("files_dock")  # saveState needs object names
        dock.setWidget(QLabel("files"))
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        qtbot.addWidget(window)
        return window, dock

    window, dock = make_window()
    window.resize(700, 450)
    window.show()
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()
    st.save_window_state(settings, window)
    settings.sync()

    restored, restored_dock = make_window()
    assert st.restore_window_state(st.make_settings(), restored)
    restored.show()
    assert restored.size() == window.size()
    assert restored.dockWidgetArea(restored_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert restored_dock.isHidden()


def test_restore_without_saved_state_changes_nothing(settings, qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    window.resize(300, 200)
    assert not st.restore_window_state(settings, window)
    assert (window.width(), window.height()) == (300, 200)


def test_training_folder_and_speed_per_device_type_survive_a_reopen(settings, tmp_path):
    assert st.training_folder(settings) == "" and st.seconds_per_update(settings, "cpu") is None
    st.set_training_folder(settings, tmp_path / "models")
    st.set_seconds_per_update(settings, "cpu", 0.25)
    settings.setValue("training/seconds_per_update/cuda", "not a number")  # a hand-edited file
    settings.sync()
    reopened = st.make_settings()
    assert st.training_folder(reopened) == str(tmp_path / "models")
    assert st.seconds_per_update(reopened, "cpu") == 0.25
    assert st.seconds_per_update(reopened, "cuda") is None and st.seconds_per_update(reopened, "mps") is None
