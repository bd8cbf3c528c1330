"""The main window as a new user meets it: the toolbar and its active tool, the threshold box, the
preview dock that leaves the main views their height, time rulers in seconds / m:ss, and no internal
references in what the window shows."""

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QDockWidget,
    QGroupBox,
    QLabel,
    QLineEdit,
    QTabBar,
    QToolButton,
    QWidget,
)

from engine.checkpoint import VoiceModel, save_model
from engine.config import ModelConfig
from svgui.main_window import MIN_VIEW_HEIGHT_PX, MainWindow
from svgui.widgets.time_axis import MINUTES_LABEL, SECONDS_LABEL, TimeAxisItem
from tests.synth import write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TIMEOUT_MS = 60_000
INTERNAL = ("SPEC", "§", "issue ")


@pytest.fixture
def window(qtbot, env):
    path = save_model(env / "tiny.safetensors", VoiceModel.create(model_config=SMALL, seed=1))
    win = MainWindow(model_path=path)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.document.undo_stack.setClean()
    win.workers.stop_all()


@pytest.fixture
def song(env):
    return write_song(env / "song.wav", 12.0, [(2.0, 5.0), (7.0, 10.0)], seed=4)


def open_and_wait(qtbot, window, path):
    with qtbot.waitSignals([window.fileShown, window.predictionsShown], timeout=TIMEOUT_MS):
        window.open_file(path)


def tool_button(window, action: QAction) -> QToolButton:
    return window.acts.toolbars["Tools"].widgetForAction(action)


def assert_tool_shown(window, tool: str, key: str) -> None:
    assert window.spectrogram.tool() == tool
    for other in window.spectrogram.TOOLS:
        action = window.acts[f"tool_{other}"]
        assert action.isChecked() == (other == tool)
        assert tool_button(window, action).isChecked() == (other == tool)
    assert window.status_tool.text() == f"Tool: {tool.capitalize()} ({key})"


def test_the_toolbars_hold_tools_transport_zoom_and_the_model(qtbot, window, song):
    bars = window.acts.toolbars
    assert list(bars) == ["Tools", "Transport", "Zoom", "Model"]  # left to right, as in Sonic Visualiser
    ids = {id(action): name for name, action in window.acts.actions.items()}
    contents = {name: [ids.get(id(a), "widget") for a in bar.actions()] for name, bar in bars.items()}
    assert contents == {"Tools": ["tool_navigate", "tool_select", "tool_draw", "tool_erase"],
                        "Transport": ["play", "loop", "start", "end"],
                        "Zoom": ["zoom_in", "zoom_out", "fit"],
                        "Model": ["predict", "widget"]}
    for bar in bars.values():
        for action in bar.actions():
            if action in window.acts.actions.values():
                assert not action.icon().isNull(), action.text()
    # the tool buttons show their key, every button's tip names its key (or why it is unavailable)
    assert [tool_button(window, window.acts[f"tool_{t}"]).text() for t in window.spectrogram.TOOLS] == [
        "Navigate (1)", "Select (2)", "Draw (3)", "Erase (4)"]
    assert window.acts["zoom_in"].toolTip() == "Zoom In (Up)"
    assert window.acts["predict"].iconText() == "Predict" and window.acts["predict"].toolTip().endswith("(Ctrl+R)")
    assert not window.acts["play"].isEnabled() and "audio" in window.acts["play"].toolTip().lower()  # no device
    # the toolbar's buttons do what the menus do
    open_and_wait(qtbot, window, song)
    whole_s = np.diff(window.spectrogram.visible_range())[0]
    bars["Zoom"].widgetForAction(window.acts["zoom_in"]).click()
    assert np.diff(window.spectrogram.visible_range())[0] == pytest.approx(whole_s / 1.5)
    bars["Zoom"].widgetForAction(window.acts["fit"]).click()
    assert np.diff(window.spectrogram.visible_range())[0] == pytest.approx(whole_s)


def test_the_toolbar_reflects_the_active_tool_however_it_changes(qtbot, window):
    assert_tool_shown(window, "navigate", "1")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    QTest.keyClick(window.spectrogram.canvas, Qt.Key.Key_3)          # key
    assert_tool_shown(window, "draw", "3")
    window.acts.menus["tools"].actions()[1].trigger()                # Tools menu ▸ Select
    assert_tool_shown(window, "select", "2")
    tool_button(window, window.acts["tool_erase"]).click()          # toolbar button
    assert_tool_shown(window, "erase", "4")
    window.spectrogram.set_tool("navigate")                          # a caller (e.g. a script)
    assert_tool_shown(window, "navigate", "1")


def test_the_threshold_box_and_the_line_edit_one_threshold(qtbot, window, song):
    open_and_wait(qtbot, window, song)
    box, document = window.threshold_box, window.document
    assert window.acts.toolbars["Model"].widgetForAction(
        next(a for a in window.acts.toolbars["Model"].actions() if a not in window.acts.actions.values())) is box
    assert box.value() == pytest.approx(document.threshold, abs=0.005)
    voiced_before = document.predicted_targets().sum()
    box.spin.setValue(0.95)
    assert document.threshold == pytest.approx(0.95)
    assert document.predicted_targets().sum() <= voiced_before
    box.spin.setValue(0.05)
    assert document.predicted_targets().sum() >= voiced_before
    window.probability.threshold_line.setValue(0.4321)  # dragging the line
    assert document.threshold == pytest.approx(0.4321) and box.value() == pytest.approx(0.43)
    assert document.threshold == pytest.approx(0.4321)  # shown rounded, not written back rounded


def views_keep_their_minimum(window) -> None:
    for name, height_px in MIN_VIEW_HEIGHT_PX.items():
        assert getattr(window, name).height() >= height_px, name


def open_preview(qtbot, window) -> QDockWidget:
    window.acts["augment_preview"].trigger()
    dock = window.augment_dock
    qtbot.waitUntil(lambda: dock.isVisible() and dock.width() > 100, timeout=5000)
    qtbot.wait(50)  # the deferred resize of the dock
    return dock


def test_the_main_views_keep_their_minimum_height_with_the_preview_open_at_1280x800(qtbot, window, song):
    open_and_wait(qtbot, window, song)
    dock = open_preview(qtbot, window)
    assert window.size().width() == 1280 and window.size().height() == 800  # nothing pushed the window taller
    views_keep_their_minimum(window)
    # no room below: beside the views, as a tab of the tallest side dock, laid out top to bottom, all visible
    area = window.dockWidgetArea(dock)
    assert area in (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
    assert window.tabifiedDockWidgets(dock)
    assert window.augment_preview.orientation() == Qt.Orientation.Vertical
    viewport = window._augment_scroll.viewport()
    assert window.augment_preview.height() <= viewport.height() and window.augment_preview.width() <= viewport.width()
    assert window.spectrogram.width() >= 400  # the views keep a usable width too
    # closing and reopening it lands in the same place; the views still keep their height
    window.acts["augment_preview"].trigger()
    assert not dock.isVisible()
    open_preview(qtbot, window)
    views_keep_their_minimum(window)


def test_a_tall_window_opens_the_preview_below_the_views(qtbot, window):
    window.resize(1920, 1080)
    qtbot.waitUntil(lambda: window.height() == 1080, timeout=5000)
    dock = open_preview(qtbot, window)
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert window.augment_preview.orientation() == Qt.Orientation.Horizontal
    views_keep_their_minimum(window)
    assert window.augment_preview.height() <= window._augment_scroll.viewport().height()  # no scrolling


def test_time_axes_read_seconds_then_minutes():
    axis = TimeAxisItem("bottom")
    axis.setRange(0.0, 30.0)
    assert axis.labelText == SECONDS_LABEL == "time (s)"
    assert axis.tickStrings([0.0, 5.0, 10.0], 1.0, 5.0) == ["0", "5", "10"]
    assert axis.tickStrings([1.5, 1.6], 1.0, 0.1) == ["1.5", "1.6"]
    axis.setRange(0.0, 200.0)  # once the view reaches a minute, every tick is m:ss
    assert axis.labelText == MINUTES_LABEL == "time (m:ss)"
    assert axis.tickStrings([0.0, 30.0, 60.0, 150.0], 1.0, 30.0) == ["0:00", "0:30", "1:00", "2:30"]
    axis.setRange(55.0, 65.0)
    assert axis.tickStrings([58.0, 59.5, 61.0], 1.0, 0.5) == ["0:58.0", "0:59.5", "1:01.0"]
    axis.setRange(2.0, 4.0)
    assert axis.labelText == SECONDS_LABEL
    assert TimeAxisItem("bottom", label=False).labelText == ""


def test_every_time_axis_of_the_window_is_a_time_ruler(window, qtbot, song):
    open_and_wait(qtbot, window, song)
    for plot in (window.spectrogram.plot, window.probability.plot):
        axis = plot.getAxis("bottom")
        assert isinstance(axis, TimeAxisItem) and axis.labelText == SECONDS_LABEL
    assert isinstance(window.waveform.plot.getAxis("bottom"), pg.AxisItem)  # hidden: the overview has no ruler
    assert not window.waveform.plot.getAxis("bottom").isVisible()


def axis_labels(layout: pg.GraphicsLayout) -> list[str]:
    labels = []
    for item in list(layout.items):
        if isinstance(item, pg.GraphicsLayout):
            labels += axis_labels(item)
        elif isinstance(item, pg.PlotItem):
            labels += [item.getAxis(side).labelText for side in ("left", "bottom", "right", "top")]
    return labels


def visible_texts(root: QWidget) -> list[str]:
    """What a user can read: texts, titles, tool tips, items, tabs, axis labels, actions."""
    texts = [root.windowTitle()]
    for widget in [root, *root.findChildren(QWidget)]:
        texts += [widget.toolTip(), widget.statusTip(), widget.accessibleName()]
        if isinstance(widget, (QLabel, QAbstractButton, QLineEdit)):
            texts.append(widget.text())
        if isinstance(widget, QLineEdit):
            texts.append(widget.placeholderText())
        if isinstance(widget, QGroupBox):
            texts.append(widget.title())
        if isinstance(widget, QComboBox):
            texts += [widget.itemText(i) for i in range(widget.count())]
        if isinstance(widget, QTabBar):
            texts += [widget.tabText(i) for i in range(widget.count())]
        if isinstance(widget, QDockWidget):
            texts.append(widget.windowTitle())
        if isinstance(widget, pg.GraphicsLayoutWidget):
            texts += axis_labels(widget.ci)
    for action in root.findChildren(QAction):
        texts += [action.text(), action.toolTip(), action.statusTip(), action.iconText()]
    return texts


def test_no_internal_references_in_what_the_windows_show(qtbot, window, song):
    open_and_wait(qtbot, window, song)
    open_preview(qtbot, window)
    roots = [window, window.show_training_dialog(), window.show_batch_predict_dialog(),
             window.show_evaluate_dialog(), window.show_models_dialog()]
    texts = [text for root in roots for text in visible_texts(root)]
    assert len(texts) > 300  # the walk reached the windows' contents
    assert any("the paper's settings" in text for text in texts)
    leaks = [text for text in texts if any(word in text for word in INTERNAL)]
    assert not leaks
    for dialog in roots[1:]:  # and each closes (an attribute named like a QDialog method once crashed this)
        dialog.close()
        assert not dialog.isVisible()
