"""Every command of the main window in one declarative table, with the shortcuts of UX.md.

The menus (and toolbars) are built from ``menu_table()``, and Help ▸ Keyboard Shortcuts lists
the actions built from it, so a key is written down in exactly one place. A handler is a dotted
attribute path on the window (``"files.save"``, ``"spectrogram.zoom"``) called with ``args``; a
checkable action's handler also gets the new state, and one in an exclusive ``group`` is called
(without the state) when it becomes the checked one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import reduce

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar

from svgui.widgets.icons import get_icon
from svgui.widgets.precision_combo import LABELS as PRECISION_LABELS
from svgui.widgets.precision_combo import TOOLTIP as PRECISION_TOOLTIP
from svgui.widgets.spectrogram_view import COLORMAPS, SpectrogramView

Keys = tuple[str, ...] | QKeySequence.StandardKey
S = QKeySequence.StandardKey


@dataclass(frozen=True)
class Act:
    id: str
    text: str
    handler: str | None = None      # dotted attribute of the window; None: a provided action
    keys: Keys = ()
    args: tuple = ()
    tip: str = ""                   # default: the text without '&' and '…'
    checkable: bool = False
    checked: bool = False           # initial state (the window may override it, e.g. from the settings)
    group: str | None = None        # exclusive group
    needs: str | None = None        # disabled, with the reason as tool tip, when this is unavailable
    provided: bool = False          # the window makes the QAction (undo stack, dock toggle); the table adds keys
    toolbar: str | None = None      # one of TOOLBARS: the action also gets a button there
    icon: str = ""                  # svgui.widgets.icons name: "SP_…" (Qt's standard pixmaps) or resources/icons/*.svg
    short: str = ""                 # the toolbar button's text, when the menu text is too long for it


@dataclass(frozen=True)
class Menu:
    id: str
    title: str
    items: tuple[Act | Menu | None, ...]   # None: a separator
    needs: str | None = None
    tips_visible: bool = False


LAYERS = (("truth", "Ground Truth"), ("predicted", "Predicted Regions"), ("errors", "Error Shading"),
          ("cursor", "Playback Cursor"))
SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
# The toolbars, left to right (as in Sonic Visualiser: tools, transport, zoom, then the model), and
# how their buttons look: the tools and the model's show their text (and the tools their key).
TOOLBARS = ("Tools", "Transport", "Zoom", "Model")
_TEXT_BESIDE_ICON = ("Tools", "Model")
_KEY_IN_TEXT = ("Tools",)


def menu_table(precisions: Sequence[str]) -> tuple[Menu, ...]:
    """The menu bar; ``precisions`` are those this machine offers (fp16 only with a GPU)."""
    file = Menu("file", "&File", (
        Act("open", "&Open…", "files.open_dialog", S.Open),
        Act("open_folder", "Open &Folder…", "files.open_folder_dialog", ("Ctrl+Shift+O",)),
        Menu("recent", "Open &Recent", ()),  # filled by the file controller
        None,
        Act("save", "&Save Annotations", "files.save", S.Save),
        Act("save_as", "Save Annotations &As…", "files.save_as", S.SaveAs),
        Act("import_labels", "&Import Labels…", "files.import_labels_dialog", ("Ctrl+L",)),
        Act("export", "&Export Predictions…", "files.export_dialog", ("Ctrl+Shift+E",)),
        None,
        Act("quit", "&Quit", "close", S.Quit),
    ))
    edit = Menu("edit", "&Edit", (
        Act("undo", "&Undo", keys=S.Undo, provided=True),
        Act("redo", "&Redo", keys=S.Redo, provided=True),
        None,
        Act("add_region", "Add Region from &Selection", "spectrogram.add_region_from_selection", ("Ctrl+B",)),
        Act("delete", "&Delete Selected Region", "spectrogram.delete_selected_region", ("Del", "Backspace")),
        Act("split", "S&plit Region at Cursor", "split_at_cursor", ("Ctrl+K",)),
        Act("merge", "&Merge with Next Region", "merge_with_next", ("Ctrl+J",)),
        Act("accept", "&Accept Predictions as Annotations", "document.accept_predictions", ("Ctrl+Shift+A",)),
    ))
    view = Menu("view", "&View", (
        Act("zoom_in", "Zoom &In", "spectrogram.zoom", ("Up", "Ctrl+="), args=(1.5,), toolbar="Zoom",
            icon="zoom-in"),
        Act("zoom_out", "Zoom &Out", "spectrogram.zoom", ("Down", "Ctrl+-"), args=(1 / 1.5,), toolbar="Zoom",
            icon="zoom-out"),
        Act("fit", "&Fit Whole File", "spectrogram.fit", ("F",), toolbar="Zoom", icon="zoom-fit"),
        Act("zoom_selection", "Zoom to &Selection", "zoom_to_selection", ("Ctrl+E",)),
        Act("scroll_left", "Scroll &Left", "spectrogram.scroll", ("Left",), args=(-0.25,)),
        Act("scroll_right", "Scroll &Right", "spectrogram.scroll", ("Right",), args=(0.25,)),
        None,
        *(Act(f"layer_{layer}", f"Show {text}", "spectrogram.set_layer_visible", (f"Alt+{i}",), args=(layer,),
              checkable=True, checked=True) for i, (layer, text) in enumerate(LAYERS, start=1)),
        Act("layer_curve", "Show Probability Curve", "probability.setVisible", ("Alt+5",), checkable=True,
            checked=True),
        Act("augment_preview", "Augmentation preview", keys=("Ctrl+Shift+P",), provided=True),
        Menu("colormap", "&Colour Map", tuple(
            Act(f"cmap_{name}", name, "set_colormap", args=(name,), checkable=True, group="colormap")
            for name in COLORMAPS)),
    ))
    tools = Menu("tools", "&Tools", tuple(
        Act(f"tool_{tool}", tool.capitalize(), "spectrogram.set_tool", (str(i),), args=(tool,), checkable=True,
            checked=i == 1, group="tool", toolbar="Tools", icon=tool)  # resources/icons/TOOL.svg
        for i, tool in enumerate(SpectrogramView.TOOLS, start=1)))
    playback = Menu("playback", "&Playback", (
        Act("play", "&Play / Stop", "toggle_play", ("Space",), needs="playback", toolbar="Transport",
            icon="SP_MediaPlay"),
        Act("play_selection", "Play &Selection", "play_selection", ("S",), args=(False,), needs="playback"),
        Act("loop", "&Loop Selection", "play_selection", ("L",), args=(True,), needs="playback",
            toolbar="Transport", icon="loop"),
        # here rather than under View, as in Sonic Visualiser's Playback and Audacity's Transport menus
        Act("start", "Go to &Start", "go_to", ("Home",), args=(0.0,), toolbar="Transport",
            icon="SP_MediaSkipBackward"),
        Act("end", "Go to &End", "go_to_end", ("End",), toolbar="Transport", icon="SP_MediaSkipForward"),
        None,
        Menu("speed", "Sp&eed", tuple(
            Act(f"speed_{rate}", f"{rate:g}×", "player.set_speed", args=(rate,), checkable=True,
                checked=rate == 1.0, group="speed", needs="playback") for rate in SPEEDS), needs="playback"),
    ))
    model = Menu("model", "&Model", (
        Act("load_model", "&Load Model…", "predictions.load_model_dialog"),
        Act("bundled_model", "Use &Bundled Model", "predictions.use_bundled_model"),
        Act("predict", "&Predict Open File", "predictions.predict", ("Ctrl+R",), toolbar="Model", icon="predict",
            short="Predict"),
        Act("tta", "Test-Time &Augmentation", "predictions.set_tta", checkable=True),
        Menu("precision", "Pre&cision", tuple(
            Act(f"precision_{name}", PRECISION_LABELS[name], "predictions.set_precision", args=(name,),
                tip=PRECISION_TOOLTIP, checkable=True, group="precision") for name in precisions),
             tips_visible=True),
        Act("reset_threshold", "&Reset Threshold to the Model's", "predictions.reset_threshold"),
        None,
        Act("train", "&Train…", "show_training_dialog", ("Ctrl+T",)),
        Act("improve", "&Improve Model with My Annotations…", "show_improve_dialog",
            tip="Fine-tune the active model on the files you corrected (edited or reviewed), compared on a few "
                "held-out ones"),
        Act("predict_folders", "Predict &Folders…", "show_batch_predict_dialog", ("Ctrl+Shift+R",)),
        Act("evaluate", "&Evaluate on Labelled Folder…", "show_evaluate_dialog"),
        Act("models", "&Models…", "show_models_dialog", ("Ctrl+M",)),
    ))
    review = Menu("review", "&Review", (
        Act("review_next", "&Next Span to Review", "review.step", ("N",), args=(1,)),
        Act("review_previous", "&Previous Span to Review", "review.step", ("Shift+N",), args=(-1,)),
        Act("review_mark", "&Mark Span Reviewed", "review.mark_reviewed", ("M",),
            tip="Record the chosen review span as reviewed (in svgui-annotation.json beside the audio)"),
        Act("review_mark_file", "Mark &File Reviewed", "review.mark_file_reviewed",
            tip="Record the whole open file as reviewed, whatever its spans"),
        None,
        Act("review_panel", "Review spans", provided=True),  # the dock's own toggle, named by its title
    ))
    help_ = Menu("help", "&Help", (Act("shortcuts", "&Keyboard Shortcuts", "show_shortcuts", S.HelpContents),))
    return file, edit, view, tools, playback, review, model, help_


def walk(items: Sequence[Act | Menu | None]) -> Iterator[Act]:
    """Every action of a table, in menu order."""
    for item in items:
        if isinstance(item, Menu):
            yield from walk(item.items)
        elif item is not None:
            yield item


def key_sequences(keys: Keys) -> list[QKeySequence]:
    if isinstance(keys, QKeySequence.StandardKey):
        return QKeySequence.keyBindings(keys)
    return [QKeySequence(k) for k in keys]


def plain(text: str) -> str:
    return text.replace("&", "")


class ActionBuilder:
    """Builds a table's menus on a window and remembers actions (by id, in menu order) and menus by id."""

    def __init__(self, window: QMainWindow, *, provide: Callable[[str], QAction] | None = None,
                 unavailable: dict[str, str] | None = None, checked: dict[str, bool] | None = None):
        self.window = window
        self._provide = provide
        self._unavailable = {k: v for k, v in (unavailable or {}).items() if v}  # need -> the reason
        self._checked = checked or {}
        self.actions: dict[str, QAction] = {}
        self.menu_of: dict[str, str] = {}       # action id -> the plain title of its menu
        self.menus: dict[str, QMenu] = {}
        self.toolbars: dict[str, QToolBar] = {}
        self._groups: dict[str, QActionGroup] = {}

    def build(self, table: Sequence[Menu]) -> None:
        used = {act.toolbar for menu in table for act in walk(menu.items)}
        for name in TOOLBARS:  # made first, so they stand in this order whatever the menus' order
            if name in used:
                self._toolbar(name)
        for menu in table:
            self._fill(self.window.menuBar().addMenu(menu.title), menu)

    def _fill(self, qmenu: QMenu, menu: Menu) -> None:
        self.menus[menu.id] = qmenu
        qmenu.setToolTipsVisible(menu.tips_visible)
        if menu.needs in self._unavailable:
            qmenu.setEnabled(False)
        for item in menu.items:
            if item is None:
                qmenu.addSeparator()
            elif isinstance(item, Menu):
                self._fill(qmenu.addMenu(item.title), item)
            else:
                self._add(qmenu, item)

    def _add(self, qmenu: QMenu, spec: Act) -> QAction:
        if spec.provided:
            action = self._provide(spec.id)
        else:
            action = QAction(spec.text, self.window)
            reason = self._unavailable.get(spec.needs)
            action.setToolTip(reason or spec.tip or plain(spec.text).rstrip("…"))
            action.setStatusTip(action.toolTip())
            action.setCheckable(spec.checkable)
            action.setChecked(self._checked.get(spec.id, spec.checked))
            if reason and spec.group is None:
                action.setEnabled(False)
            if spec.group is not None:
                self._groups.setdefault(spec.group, QActionGroup(self.window)).addAction(action)
            self._connect(action, spec)
        action.setShortcuts(key_sequences(spec.keys))
        if spec.icon:
            action.setIcon(get_icon(spec.icon))
        qmenu.addAction(action)
        self.window.addAction(action)  # shortcuts work even when the menu bar is hidden
        if spec.toolbar is not None:
            self._on_toolbar(action, spec)
        self.actions[spec.id] = action
        self.menu_of[spec.id] = plain(qmenu.title())
        return action

    def _connect(self, action: QAction, spec: Act) -> None:
        handler = reduce(getattr, spec.handler.split("."), self.window)
        args = spec.args
        if spec.group is not None:
            action.toggled.connect(lambda on: on and handler(*args))
        elif spec.checkable:
            action.toggled.connect(lambda on: handler(*args, on))
        else:
            action.triggered.connect(lambda: handler(*args))

    def _on_toolbar(self, action: QAction, spec: Act) -> None:
        """A button for ``action``; its tool tip and (on the tools' bar) its text name the key."""
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if not spec.provided and action.isEnabled() and keys:  # a disabled action's tip gives the reason
            action.setToolTip(f"{action.toolTip()} ({keys})")
        text = spec.short or plain(spec.text).rstrip("…")
        action.setIconText(f"{text} ({keys})" if keys and spec.toolbar in _KEY_IN_TEXT else text)
        self._toolbar(spec.toolbar).addAction(action)

    def _toolbar(self, name: str) -> QToolBar:
        if name not in self.toolbars:
            bar = self.toolbars[name] = self.window.addToolBar(name)
            bar.setObjectName(f"toolbar-{name.lower()}")  # saveState needs a name
            bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon if name in _TEXT_BESIDE_ICON
                                   else Qt.ToolButtonStyle.ToolButtonIconOnly)
        return self.toolbars[name]

    def __getitem__(self, name: str) -> QAction:
        return self.actions[name]
