"""The action table: every key once, the menus and the shortcuts window built from it."""

from __future__ import annotations

from collections import Counter

import pytest
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMainWindow

from svgui.actions import Act, ActionBuilder, Menu, key_sequences, menu_table, walk
from svgui.dialogs.shortcuts_dialog import ShortcutsDialog, shortcut_text
from svgui.main_window import MainWindow
from svgui.widgets.precision_combo import LABELS, available_precisions

TABLE = menu_table(tuple(LABELS))  # every precision, also fp16


def test_every_shortcut_of_the_table_is_unique(qapp):  # (the standard keys need the application)
    keys = Counter(seq.toString() for act in walk(TABLE) for seq in key_sequences(act.keys))
    assert keys and not [k for k, n in keys.items() if n > 1]
    ids = Counter(act.id for act in walk(TABLE))
    assert not [i for i, n in ids.items() if n > 1]


@pytest.fixture
def window(qtbot, env):
    win = MainWindow()
    qtbot.addWidget(win)
    yield win
    win.workers.stop_all()


def test_the_shortcuts_window_shows_exactly_the_tables_keys(qtbot, window):
    table = menu_table(available_precisions())  # as the window builds it
    dialog = ShortcutsDialog(list(window.acts.actions.values()), window)
    qtbot.addWidget(dialog)
    rows = dialog.visible_rows()
    expected = [", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in key_sequences(act.keys))
                for act in walk(table)]
    assert [r[2] for r in rows] == expected
    assert [r[1] for r in rows] == [act.text.replace("&", "") for act in walk(table)]
    assert [shortcut_text(window.acts[act.id]) for act in walk(table)] == expected  # the menus have the same keys


def test_menus_follow_the_table_and_provided_actions_get_the_tables_keys(window):
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == [m.title for m in TABLE]
    assert window.acts.menu_of["undo"] == "Edit" and window.acts.menu_of["cmap_gray"] == "Colour Map"
    assert [s.toString() for s in window.acts["augment_preview"].shortcuts()] == ["Ctrl+Shift+P"]
    assert window.acts["undo"].shortcuts() == QKeySequence.keyBindings(QKeySequence.StandardKey.Undo)
    assert not window.acts.menus["speed"].isEnabled()  # no audio device in the tests
    assert window.acts["tool_navigate"].isChecked() and window.acts["layer_truth"].isChecked()


def test_handlers_get_their_arguments_and_the_checked_state(qtbot):
    calls = []

    class Host(QMainWindow):
        def run(self, *args):
            calls.append(args)

    host = Host()
    qtbot.addWidget(host)
    table = (Menu("m", "&M", (
        Act("plain", "&Plain", "run", ("Ctrl+1",), args=(7,), toolbar="Main"),
        None,
        Act("toggle", "&Toggle", "run", args=("t",), checkable=True),
        Menu("sub", "&Sub", tuple(Act(f"g{i}", f"G{i}", "run", args=(i,), checkable=True, group="g",
                                      checked=i == 0) for i in range(3))),
        Act("needy", "&Needy", "run", needs="sound"),
    )),)
    builder = ActionBuilder(host, unavailable={"sound": "no sound card"}, checked={"toggle": True})
    builder.build(table)
    builder["plain"].trigger()
    builder["toggle"].trigger()       # checked at start (the override): now off
    builder["g2"].trigger()           # the group calls the newly checked one only
    assert calls == [(7,), ("t", False), (2,)]
    assert builder.toolbars["Main"].actions() == [builder["plain"]]
    # a toolbar button's tip names its key
    assert builder["plain"].toolTip() == "Plain (Ctrl+1)" and builder.menu_of["g1"] == "Sub"
    assert not builder["needy"].isEnabled() and builder["needy"].toolTip() == "no sound card"
