"""Export the open file's predictions (regions, probability curve or raw frames) in one format.

``export_document_predictions`` does the work and needs no dialog; ``ExportDialog`` lets the
user pick the format and the file. Every export records the model and the threshold: inside the
file where the format has a place for it (npz, JAMS), else in a JSON sidecar (song.pred.lab.json). The
suggested name is the prediction's (song.pred.lab), and replacing a file that is not a prediction asks first.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from engine.export import (
    FORMATS,
    ExportInfo,
    is_our_sidecar,
    is_prediction_file,
    output_path,
    sidecar_path,
    write_prediction,
    write_sidecar,
)
from svgui.dialogs.messages import ask_yes_no, show_error
from svgui.document import Document

FORMAT_NAMES: dict[str, str] = {  # shown with the suffix: "Audacity labels (.txt)"
    "audacity": "Audacity labels",
    "lab": "Jamendo labels, sing / nosing",
    "csv": "Sonic Visualiser regions",
    "curve": "Sonic Visualiser curve: smoothed probability",
    "frames": "Frame probabilities, 70 per second",
    "npz": "NumPy archive: probabilities and regions",
    "jams": "JAMS annotation, segment_open",
    "textgrid": "Praat TextGrid",
}
FORMAT_DESCRIPTIONS: dict[str, str] = {
    "audacity": "start, end and label per voice region, tab-separated; File \u25b8 Import \u25b8 Labels in Audacity.",
    "lab": "Covers the whole file with alternating sing / nosing lines, like the Jamendo ground truth.",
    "csv": "time, mean probability, duration, label per region; import as a region layer in Sonic Visualiser.",
    "curve": "time, smoothed probability per frame; import as a time-value layer in Sonic Visualiser.",
    "frames": "frame, time and raw (unsmoothed) probability per frame, with a header row.",
    "npz": "Raw probabilities, regions, duration, model and threshold; load with numpy.load.",
    "jams": "One segment_open annotation, value \u201cvoice\u201d, confidence = mean probability.",
    "textgrid": "One interval tier \u201cvoice\u201d covering the file, empty text between regions.",
}
METADATA_FORMATS = frozenset({"npz", "jams"})  # formats that store model and threshold themselves


def _strip_export_suffix(name: str) -> str:
    """'song.curve.csv' -> 'song', 'song.pred.lab' -> 'song.pred' for any of our suffixes (longest
    first), else drop one suffix."""
    for suffix in sorted(FORMATS.values(), key=len, reverse=True):
        if name.lower().endswith(suffix.lower()) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return Path(name).stem


def default_export_path(document: Document, fmt: str) -> Path:
    """The prediction's name next to the audio (song.wav -> song.pred.lab), never the labels' song.lab."""
    audio = document.audio_path or Path.home() / "untitled"
    return output_path(audio.parent, audio, fmt)


def export_info(document: Document, *, tta: bool = False, model_sha256: str = "") -> ExportInfo:
    """What produced the document's predictions, as written with every export."""
    return ExportInfo(model_name=document.model_name or "unknown model", threshold=float(document.threshold),
                      frames_per_second=float(document.frames_per_second),
                      median_frames=int(document.eval_config.median_frames), tta=tta, model_sha256=model_sha256)


def export_document_predictions(document: Document, path: str | os.PathLike, fmt: str, *,
                                tta: bool = False, model_sha256: str = "") -> Path:
    """Write the document's predictions to ``path`` in format ``fmt`` (a key of engine.export.FORMATS).

    Regions are ``document.predicted_intervals()`` (smoothed probability > threshold). Formats
    without a metadata slot get a sidecar ``<path>.json`` recording model and threshold.
    Raises EngineError when there is nothing to export or the file cannot be written.
    """
    if fmt not in FORMATS:
        raise EngineError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    name = document.audio_path.name if document.audio_path is not None else "the open file"
    if document.probabilities is None:
        raise EngineError(f"There are no predictions to export for {name}: run the model on it first.")
    info = export_info(document, tta=tta, model_sha256=model_sha256)
    path = write_prediction(path, fmt, intervals=document.predicted_intervals(),
                            probabilities=document.probabilities, duration_s=document.duration_s, info=info,
                            name=document.audio_path.name if document.audio_path is not None else "")
    if fmt not in METADATA_FORMATS:
        write_sidecar(path, info, format=fmt,
                      source=None if document.audio_path is None else str(document.audio_path))
    return Path(path)


class ExportDialog(QDialog):
    """Pick a format and a file, then export; stays open (with a message) when writing fails."""

    exported = Signal(object)  # Path of the written file

    def __init__(self, document: Document, parent: QWidget | None = None, *, fmt: str = "audacity"):
        super().__init__(parent)
        self.document = document
        self.exported_path: Path | None = None
        self.setWindowTitle("Export Predictions")

        self._format = QComboBox()
        for key, text in FORMAT_NAMES.items():
            self._format.addItem(f"{text} ({FORMATS[key]})", key)
            self._format.setItemData(self._format.count() - 1, FORMAT_DESCRIPTIONS[key], Qt.ItemDataRole.ToolTipRole)
        self._format.setToolTip("The file format to write")
        self._description = QLabel()
        self._description.setWordWrap(True)
        self._description.setStyleSheet("color: palette(placeholder-text);")
        self._path = QLineEdit()
        self._path.setToolTip("The file to write; its suffix follows the format")
        self._path.setMinimumWidth(380)
        browse = QPushButton("Browse\u2026")
        browse.setToolTip("Choose where to save the export")
        browse.clicked.connect(self.browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self._path, 1)
        path_row.addWidget(browse)
        self._summary = QLabel()
        self._summary.setWordWrap(True)
        self._summary.setTextFormat(Qt.TextFormat.PlainText)

        form = QFormLayout()
        form.addRow("&Format:", self._format)
        form.addRow("", self._description)
        form.addRow("&Save as:", path_row)
        form.itemAt(form.rowCount() - 1, QFormLayout.ItemRole.LabelRole).widget().setBuddy(self._path)

        self._buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self._export_button = self._buttons.addButton("&Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self._export_button.setDefault(True)
        self._export_button.setToolTip("Write the file (and its .json sidecar for plain-text formats)")
        self._buttons.accepted.connect(self.accept)
        self._buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addSpacing(6)
        layout.addWidget(self._summary)
        layout.addStretch(1)
        layout.addSpacing(6)
        layout.addWidget(self._buttons)

        self._format.currentIndexChanged.connect(self._on_format_changed)
        self._path.textChanged.connect(self._update_summary)
        self._path.setText(str(default_export_path(document, fmt)) if fmt in FORMATS else "")
        self.set_format(fmt if fmt in FORMATS else "audacity")
        self._on_format_changed()

    # ---- state --------------------------------------------------------------------------------
    def format(self) -> str:
        return self._format.currentData()

    def set_format(self, fmt: str) -> None:
        index = self._format.findData(fmt)
        if index < 0:
            raise EngineError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        self._format.setCurrentIndex(index)

    def path(self) -> Path | None:
        text = self._path.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path: str | os.PathLike) -> None:
        self._path.setText(os.fspath(path))

    def summary_text(self) -> str:
        return self._summary.text()

    # ---- slots --------------------------------------------------------------------------------
    def _on_format_changed(self, *_args) -> None:
        fmt = self.format()
        self._description.setText(FORMAT_DESCRIPTIONS[fmt])
        current = self.path()
        if current is not None:  # keep the user's folder and name, swap the suffix
            self._path.setText(str(current.with_name(_strip_export_suffix(current.name) + FORMATS[fmt])))
        self._update_summary()

    def _update_summary(self, *_args) -> None:
        doc = self.document
        if doc.probabilities is None:
            self._summary.setText("There are no predictions to export: run the model on this file first.")
            self._export_button.setEnabled(False)
            return
        fmt, path = self.format(), self.path()
        n = len(doc.predicted_intervals())
        text = (f"{n} predicted voice region{'s' if n != 1 else ''} from model "
                f"\u201c{doc.model_name or 'unknown model'}\u201d at threshold {doc.threshold:.3f}. ")
        if fmt in METADATA_FORMATS:
            text += "Model and threshold are stored inside the file."
        elif path is not None:
            text += f"Model and threshold are recorded in {sidecar_path(path).name} beside it."
        if path is not None and path.exists():
            text += f"\n{path.name} exists and will be replaced."
        self._summary.setText(text)
        self._export_button.setEnabled(path is not None)

    def browse(self) -> None:
        fmt = self.format()
        suffix = FORMATS[fmt]
        start = str(self.path() or default_export_path(self.document, fmt))
        chosen, _ = QFileDialog.getSaveFileName(self, "Export Predictions", start,
                                                f"{FORMAT_NAMES[fmt]} (*{suffix});;All files (*)")
        if chosen:
            if not chosen.lower().endswith(suffix.lower()):
                chosen += suffix
            self._path.setText(chosen)

    def accept(self) -> None:
        path = self.path()
        if path is None:
            return
        # The export and its sidecar (plain-text formats) may only replace svgui's own files unasked.
        in_the_way = [] if not path.exists() or is_prediction_file(path) else [path]
        sidecar = sidecar_path(path)
        if self.format() not in METADATA_FORMATS and sidecar.exists() and not is_our_sidecar(sidecar):
            in_the_way.append(sidecar)
        verb = "exists and is" if len(in_the_way) == 1 else "exist and are"
        if in_the_way and not ask_yes_no(
                self, "replace_files", "Replace file?",
                f"{' and '.join(map(str, in_the_way))} {verb} not svgui's predictions.",
                "It may be your own file. Replace it with the predictions?", yes="Replace", no="Cancel",
                default_answer=False, yes_is_default=False):
            return
        try:
            self.exported_path = export_document_predictions(self.document, path, self.format())
        except (EngineError, OSError) as exc:
            show_error(self, "Export failed", exc)
            return
        self.exported.emit(self.exported_path)
        super().accept()
