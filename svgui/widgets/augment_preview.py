"""The augmentation preview: one excerpt before and after the training code's augmentation.

A click on the spectrogram (``set_time``) picks the 115-frame excerpt centred there. Every
picture comes from ``engine.preview.preview_excerpt`` with the chosen settings and seed, the very
function ``svgui-engine augment`` calls, so what users see is what training does. Four views: the
original and augmented excerpt side by side; nine draws (seeds seed..seed+8); each augmentation
alone; and the paper's Figure 1 views (warp crop borders, drawn filter responses).

Value changes are rate-limited by one single-shot timer: the first change after a pause redraws
at once, later ones at most every ``RATE_LIMIT_MS``, so dragging a slider never queues work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QBoxLayout,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from engine.config import AugmentConfig
from engine.preview import Preview
from svgui.augment_sources import (
    EXCERPT_FRAMES,
    PreviewSource,
    augment_spec,
    compact_description,
    make_source,
    torch_threads,
)
from svgui.document import Document
from svgui.playback import Player
from svgui.widgets.augment_controls import KNOBS, AugmentControls
from svgui.widgets.augment_figure1 import WarpFilterView
from svgui.widgets.augment_listen import ListenButtons
from svgui.widgets.augment_views import ExcerptGrid
from svgui.workers import Worker, WorkerRegistry

RATE_LIMIT_MS = 30
CONTROLS_WIDTH_PX = 330
MODES = ("single", "draws", "alone", "figure1")
MODE_TITLES = ("Original | augmented", "3×3 draws", "Each alone", "Figure 1: warp and filters")
HINT = "Open a song, then click on the spectrogram to pick an excerpt."


class AugmentPreviewPanel(QWidget):
    """Controls on the left, the pictures and the drawn values on the right."""

    settingsForTraining = Signal(object)  # AugmentConfig
    redrawn = Signal()                    # a recompute has been drawn (tests and benchmark wait for it)

    def __init__(self, document: Document, *, workers: WorkerRegistry | None = None, player: Player | None = None,
                 model: Callable[[], object] | None = None, colormap: str = "magma", parent: QWidget | None = None):
        super().__init__(parent)
        self._document = document
        self._workers = workers or WorkerRegistry(self)
        self._model = model or (lambda: None)
        self._source: PreviewSource | None = None
        self._source_key: tuple | None = None
        self._time_s: float | None = None
        self._levels_key: dict[str, tuple] = {}
        self._last_flush = float("-inf")
        self.preview: Preview | None = None
        self.cell_previews: list[Preview] = []
        self.recompute_count = 0

        self.controls = AugmentControls()
        self.spec_label = QLabel("For training (<code>--augment</code>):")
        self.spec = QLineEdit(readOnly=True)  # one line, copied cleanly (a wrapped label would not be)
        self.spec.setAccessibleName("--augment spec for training")
        self.status = QLabel()
        self.status.setWordWrap(True)
        left = QVBoxLayout()
        left.addWidget(self.controls)
        left.addWidget(self.spec_label)
        left.addWidget(self.spec)
        left.addWidget(self.status)
        left.addStretch(1)

        features = document.features
        self.header = QLabel(HINT)
        self.header.setWordWrap(True)
        self.tabs = QTabBar()
        for title in MODE_TITLES:
            self.tabs.addTab(title)
        self.single = ExcerptGrid(1, 2, features, colormap=colormap)
        self.draws = ExcerptGrid(3, 3, features, colormap=colormap)
        self.alone = ExcerptGrid(2, 5, features, colormap=colormap)  # original, the eight alone, their combination
        self.figure1 = WarpFilterView(features, colormap=colormap)
        self.stack = QStackedWidget()
        for view in (self.single, self.draws, self.alone, self.figure1):
            self.stack.addWidget(view)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.description.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.picture = QWidget()  # what "Export PNG" saves: header, view and drawn values
        self.picture.setAutoFillBackground(True)
        picture_layout = QVBoxLayout(self.picture)
        picture_layout.setContentsMargins(4, 4, 4, 4)
        picture_layout.addWidget(self.header)
        picture_layout.addWidget(self.stack, 1)
        picture_layout.addWidget(self.description)

        self.listen = ListenButtons(self._workers, player)
        self.player = self.listen.player
        self.play_original, self.play_augmented = self.listen.original, self.listen.augmented
        self.listen.playRequested.connect(lambda augmented: self.play(augmented=augmented))
        self.listen.message.connect(self.status.setText)
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setToolTip("Save the picture shown (with its header and drawn values) as a PNG")
        self.export_button.clicked.connect(self._export_dialog)
        buttons = QHBoxLayout()
        buttons.addWidget(self.listen)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        right = QVBoxLayout()
        right.addWidget(self.tabs)
        right.addWidget(self.picture, 1)
        right.addLayout(buttons)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._controls_box = QWidget()
        self._controls_box.setLayout(left)
        self._layout.addWidget(self._controls_box)
        self._layout.addLayout(right, 1)
        self.set_orientation(Qt.Orientation.Horizontal)

        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._timer_fired)
        self.controls.changed.connect(self.schedule)
        self.controls.useForTraining.connect(self.use_for_training)
        self.tabs.currentChanged.connect(self._mode_changed)
        document.loaded.connect(self._file_changed)
        document.annotationsChanged.connect(self._labels_changed)
        self._update_spec()
        self.schedule()

    # ---- public -------------------------------------------------------------------------------
    def set_orientation(self, orientation: Qt.Orientation) -> None:
        """Controls left of the pictures (a wide dock below the views) or above them (a tall one beside)."""
        vertical = orientation == Qt.Orientation.Vertical
        self._layout.setDirection(QBoxLayout.Direction.TopToBottom if vertical else QBoxLayout.Direction.LeftToRight)
        self._controls_box.setMinimumWidth(0 if vertical else CONTROLS_WIDTH_PX)
        self._controls_box.setMaximumWidth(16777215 if vertical else CONTROLS_WIDTH_PX)
        # beside the main views (1280×800) the pictures give up a little height so all of it fits
        for view in (self.single, self.draws, self.alone, self.figure1):
            view.setMinimumSize(360, 150 if vertical else 220)

    def orientation(self) -> Qt.Orientation:
        vertical = self._layout.direction() == QBoxLayout.Direction.TopToBottom
        return Qt.Orientation.Vertical if vertical else Qt.Orientation.Horizontal

    def config(self) -> AugmentConfig:
        """The settings shown (switched-on augmentations at their strengths)."""
        return self.controls.config()

    def seed(self) -> int:
        return self.controls.seed_value()

    def mode(self) -> str:
        return MODES[self.tabs.currentIndex()]

    def set_mode(self, mode: str) -> None:
        self.tabs.setCurrentIndex(MODES.index(mode))

    def set_time(self, time_s: float) -> None:
        """Pick the excerpt centred at ``time_s`` (a click on the spectrogram)."""
        self._time_s = float(time_s)
        self.schedule()

    def centre_frame(self) -> int | None:
        source = self._current_source()
        if source is None:
            return None
        time_s = self._time_s if self._time_s is not None else self._document.duration_s / 2
        return source.centre_frame(time_s)

    def set_colormap(self, name: str) -> None:
        for view in (self.single, self.draws, self.alone, self.figure1):
            view.set_colormap(name)

    def schedule(self) -> None:
        """Redraw soon: at once after a pause, else when RATE_LIMIT_MS have passed since the last one."""
        if not self._timer.isActive():
            since_ms = (time.perf_counter() - self._last_flush) * 1000
            self._timer.start(int(max(0.0, RATE_LIMIT_MS - since_ms)))

    def use_for_training(self) -> AugmentConfig:
        config = self.config()
        spec = augment_spec(config)
        QGuiApplication.clipboard().setText(spec)
        self.status.setText(f"Copied to the clipboard: --augment {spec}")
        self.settingsForTraining.emit(config)
        return config

    def export_png(self, path: str | Path) -> Path:
        """Save the current view (header, pictures, drawn values) as a PNG."""
        self.refresh_now()
        QCoreApplication.processEvents()  # let the graphics layouts settle before the picture is taken
        path = Path(path)
        if not self.picture.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        self.status.setText(f"Saved {path.name}")
        return path

    # ---- recomputing --------------------------------------------------------------------------
    def _timer_fired(self) -> None:
        if self.isVisible():  # a hidden panel (closed dock) redraws when shown again (showEvent)
            self.refresh_now()

    def refresh_now(self) -> None:
        """Recompute and redraw the current view with the current settings."""
        self._timer.stop()
        self._last_flush = time.perf_counter()
        self.recompute_count += 1
        self._update_spec()
        mode, source = self.mode(), self._current_source()
        centre = self.centre_frame()
        with torch_threads(1):
            if source is None or centre is None:
                self._show_hint()
            else:
                self._show_header(source, centre)
                {"single": self._draw_single, "draws": self._draw_draws, "alone": self._draw_alone,
                 "figure1": self._draw_figure1}[mode](source, centre)
        self.redrawn.emit()

    def _draw_single(self, source: PreviewSource, centre: int) -> None:
        seed, config = self.seed(), self.config()
        self.preview = source.preview(centre, config, seed)
        self.cell_previews = [self.preview]
        self._reset_levels(self.single, "single", source, centre, self.preview.original)
        self.single.show_excerpts([self.preview.original, self.preview.augmented],
                                  ["original", f"augmented (seed {seed})"])
        self.description.setText(f"<b>Drawn</b>: {self.preview.description}" + self._mix_note(config))

    def _draw_draws(self, source: PreviewSource, centre: int) -> None:
        seed, config = self.seed(), self.config()
        self.cell_previews = [source.preview(centre, config, seed + i) for i in range(9)]
        self.preview = self.cell_previews[0]
        self._reset_levels(self.draws, "draws", source, centre, self.preview.original)
        self.draws.show_excerpts([p.augmented for p in self.cell_previews],
                                 [f"seed {seed + i}: {compact_description(p, config)}"
                                  for i, p in enumerate(self.cell_previews)],
                                 [p.description for p in self.cell_previews])
        self.description.setText(
            f"Nine draws of {config.describe()} (seeds {seed}–{seed + 8}; each cell's tooltip has all its values). "
            "p = pitch factor, s = stretch factor, filter = peak gain @ centre frequency." + self._mix_note(config))

    def _draw_alone(self, source: PreviewSource, centre: int) -> None:
        seed, config, strengths = self.seed(), self.config(), self.controls.strengths()
        configs = [AugmentConfig(**{k.field: getattr(strengths, k.field)}) for k in KNOBS]
        self.cell_previews = [source.preview(centre, c, seed) for c in (*configs, config)]
        self.preview = self.cell_previews[-1]
        self._reset_levels(self.alone, "alone", source, centre, self.preview.original)
        alone, fps = self.cell_previews[:-1], source.features.frames_per_second
        titles = ["original"] + [f"{c.describe()} → {compact_description(p, c, long=True, frames_per_second=fps)}"
                                 + ("" if self.controls.is_on(k.short) else " (off)")
                                 for k, c, p in zip(KNOBS, configs, alone)] + ["switched on: " + config.describe()]
        # ten cells: the original, each of the eight alone, and the switched-on combination
        self.alone.show_excerpts([self.preview.original] + [p.augmented for p in self.cell_previews], titles,
                                 ["the excerpt as the network sees it without augmentation"] +
                                 [p.description for p in self.cell_previews])
        self.description.setText(
            f"Seed {seed}: each augmentation alone at its chosen strength (the draws are the same in every cell). "
            f"<b>Switched on</b>: {self.preview.description}" + self._mix_note(config))

    def _draw_figure1(self, source: PreviewSource, centre: int) -> None:
        seed, config = self.seed(), self.config()
        self.preview = source.preview(centre, config, seed)
        self.cell_previews = [self.preview]
        key = (id(self._document.samples), centre)
        self.figure1.show_preview(source, centre, self.preview, config, seed=seed,
                                  filter_strength_db=self.controls.strengths().max_filter_db,
                                  reset_levels=self._levels_key.get("figure1") != key)
        self._levels_key["figure1"] = key
        self.description.setText(f"<b>Drawn</b>: {self.preview.description}" + self._mix_note(config))

    def _reset_levels(self, grid: ExcerptGrid, mode: str, source: PreviewSource, centre: int,
                      original: np.ndarray) -> None:
        """New excerpt: levels from the original (1st to 99.5th percentile); kept while settings change."""
        key = (id(self._document.samples), centre)
        if self._levels_key.get(mode) != key:
            low, high = np.percentile(original, [1.0, 99.5])
            grid.set_levels(float(low), float(max(high, low + 1e-3)))
            self._levels_key[mode] = key

    # ---- text ---------------------------------------------------------------------------------
    def _show_header(self, source: PreviewSource, centre: int) -> None:
        fps = source.features.frames_per_second
        half = EXCERPT_FRAMES // 2
        self.header.setText(
            f"<b>{source.name}</b> · excerpt at {centre / fps:.2f} s ({(centre - half) / fps:.2f}–"
            f"{(centre + half + 1) / fps:.2f} s) · ground truth at the centre: <b>{source.label_at(centre)}</b>")
        self.header.setToolTip(f"centre frame {centre}; {source.normalization_text}; "
                               "click on the spectrogram to pick another excerpt")

    def _show_hint(self) -> None:
        self.preview, self.cell_previews = None, []
        self.header.setText(HINT)
        for grid in (self.single, self.draws, self.alone):
            grid.clear_excerpts()
        self.figure1.show_source(None, reset_levels=False)
        if self.mode() == "figure1":
            self.figure1.show_drawn_filters(self.config(), seed=self.seed(),
                                            filter_strength_db=self.controls.strengths().max_filter_db)
        self.description.setText("The controls work without a file: the --augment spec on the left follows them.")

    def _mix_note(self, config: AugmentConfig) -> str:
        if self._source is None:
            return ""
        notes = [f"Mixing partners: {self._source.partner_text}."] if config.mix_probability else []
        if config.remix_probability:
            notes.append(f"Remix: {self._source.remix_text}")
        return "".join(f"<br><i>{note}</i>" for note in notes)

    def _update_spec(self) -> None:
        self.spec.setText(augment_spec(self.config()))
        self.spec.setCursorPosition(0)

    # ---- the open file ------------------------------------------------------------------------
    def _current_source(self) -> PreviewSource | None:
        document = self._document
        if not document.is_open or document.n_frames == 0:
            self._source, self._source_key = None, None
            return None
        model = self._model()
        key = (id(document.samples), id(model))
        if self._source is None or key != self._source_key:
            normalization, text = None, ""
            if model is not None and len(model.normalization.mean) == document.features.n_mels:
                normalization = model.normalization
                text = f"standardized with the statistics of the model '{model.name}'"
            self._source = make_source(document.audio_path, document.samples, document.log_mel, document.features,
                                       annotations=document.annotations,
                                       labelled=document.label_path is not None or bool(document.annotations),
                                       normalization=normalization, normalization_text=text)
            self._source_key = key
        return self._source

    def _file_changed(self) -> None:
        self._source, self._time_s = None, None
        self.schedule()

    def _labels_changed(self) -> None:
        self._source = None  # targets and mixing partners follow the annotations
        self.schedule()

    def _mode_changed(self, _index: int) -> None:
        self.stack.setCurrentIndex(self.tabs.currentIndex())
        self.schedule()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.schedule()

    # ---- listening and export -----------------------------------------------------------------
    def play(self, *, augmented: bool) -> Worker | None:
        """Play the excerpt, or an audio approximation of the augmented one (rendered in a worker)."""
        source, centre = self._current_source(), self.centre_frame()
        if source is None or centre is None:
            return None
        return self.listen.play(source, self._document.samples, centre, seed=self.seed(),
                                config=self.config() if augmented else None)

    def _export_dialog(self) -> None:
        centre = self.centre_frame()
        stem = Path(self._source.name).stem if self._source else "preview"
        suggestion = f"{stem}_frame{centre or 0}_{self.mode()}.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export preview", suggestion, "PNG images (*.png)")
        if path:
            self.export_png(path)
