"""Readable message boxes: errors without tracebacks in the text, and the two questions the
window asks (save changes? recover autosave?).

Test hook: when ``NO_MODAL`` is True or the environment has ``SVGUI_NO_MODAL=1``, nothing is
shown; each message is appended to ``recorded`` and the questions return ``answers[kind]``
(defaults: keep working without saving, do not recover), so tests never block on a dialog.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from engine.errors import EngineError

NO_MODAL = False
NO_MODAL_ENV = "SVGUI_NO_MODAL"

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


@dataclass(frozen=True)
class RecordedMessage:
    kind: str  # "error", "save_changes" or "recover_autosave"
    title: str
    text: str
    details: str = ""
    informative: str = ""


recorded: list[RecordedMessage] = []
answers: dict[str, object] = {"save_changes": DISCARD, "recover_autosave": False}


def no_modal() -> bool:
    """Whether dialogs are recorded instead of shown (tests)."""
    return NO_MODAL or os.environ.get(NO_MODAL_ENV, "") not in ("", "0")


def error_parts(exc_or_text: BaseException | str) -> tuple[str, str, str]:
    """(main text, informative text, details) for an error.

    The main text is ``str(exc)`` (the engine's messages name the file and the problem); a
    traceback (``exc.traceback_text`` set by workers, or the exception's own) only goes to the
    details. An unexpected exception type gets a hint that it is a bug.
    """
    if isinstance(exc_or_text, str):
        return exc_or_text, "", ""
    exc = exc_or_text
    text = str(exc).strip() or type(exc).__name__
    details = getattr(exc, "traceback_text", "") or ""
    if not details and exc.__traceback__ is not None:
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    informative = ""
    if not isinstance(exc, (EngineError, OSError)):
        informative = (f"This is an unexpected error ({type(exc).__name__}), probably a bug in svgui. "
                       "The details help to report it.")
    return text, informative, details


def show_error(parent: QWidget | None, title: str, exc_or_text: BaseException | str) -> QMessageBox | None:
    """Show an error without blocking (window-modal ``open()``); returns the box (None in tests)."""
    text, informative, details = error_parts(exc_or_text)
    if no_modal():
        recorded.append(RecordedMessage("error", title, text, details, informative))
        return None
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # file names may contain '<'
    if informative:
        box.setInformativeText(informative)
    if details:
        box.setDetailedText(details)  # Qt adds the "Show Details..." button
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def ask_save_changes(parent: QWidget | None, name: str) -> str:
    """'save', 'discard' or 'cancel' for the unsaved annotations of ``name``."""
    text = f"The annotations of {name} have unsaved changes."
    informative = "Save them before closing? Unsaved edits are lost if you don't save."
    if no_modal():
        recorded.append(RecordedMessage("save_changes", "Unsaved changes", text, informative=informative))
        return str(answers.get("save_changes", DISCARD))
    box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes", text, parent=parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setInformativeText(informative)
    box.setStandardButtons(QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                           | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    reply = box.exec()
    return {QMessageBox.StandardButton.Save: SAVE,
            QMessageBox.StandardButton.Discard: DISCARD}.get(QMessageBox.StandardButton(reply), CANCEL)


def ask_recover_autosave(parent: QWidget | None, path: str | os.PathLike, label_name: str | None = None) -> bool:
    """Whether to load the autosaved annotations found at ``path`` (left after a crash) for ``label_name``."""
    path = Path(path)
    name = label_name or path.name.split(".svgui-autosave")[0]
    text = f"Unsaved annotations from an earlier session were found for {name}."
    informative = (f"Recover them? They are loaded as an edit you can undo.\nAutosave file: {path}")
    return ask_yes_no(parent, "recover_autosave", "Recover annotations", text, informative, yes="Recover",
                      no="Ignore", default_answer=False)


def ask_yes_no(parent: QWidget | None, kind: str, title: str, text: str, informative: str, *, yes: str, no: str,
               default_answer: bool, yes_is_default: bool = True) -> bool:
    """A question with two buttons, ``yes`` the default button unless ``yes_is_default`` is False
    (destructive answers); under NO_MODAL it is recorded and ``answers[kind]`` (else
    ``default_answer``) is returned."""
    if no_modal():
        recorded.append(RecordedMessage(kind, title, text, informative=informative))
        return bool(answers.get(kind, default_answer))
    box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setInformativeText(informative)
    accept = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    reject = box.addButton(no, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(accept if yes_is_default else reject)
    box.setEscapeButton(reject)
    box.exec()
    return box.clickedButton() is accept
