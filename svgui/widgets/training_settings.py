"""The training dialog's settings: data, validation, augmentation, the paper's training settings, device, output.

``TrainingSettings.request()`` turns what is shown into a ``TrainingRequest`` (or a readable
EngineError); the dialog (``svgui.dialogs.training_dialog``) runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.config import AugmentConfig, ModelConfig, TrainConfig
from engine.datasets import Track, is_jamendo_layout, label_file_for
from engine.errors import EngineError
from engine.train import checkpoint_path_for
from svgui import settings as prefs
from svgui.model_jobs import TrainingRequest
from svgui.widgets.augment_choice import AugmentChoice
from svgui.widgets.training_device import TrainingDevice

SPIN_WIDTH_PX = 104
SETTINGS_WIDTH_PX = 470
VALIDATION_CHOICES = (("fraction", "Hold out a fraction of the training files"),
                      ("folder", "A separate folder"),
                      ("official", "The Jamendo corpus's official valid split"),
                      ("none", "None (threshold chosen on the training data)"))


def _spin(lo: int, hi: int, value: int, step: int = 1) -> QSpinBox:
    box = QSpinBox(minimum=lo, maximum=hi, value=value, singleStep=step)
    box.setGroupSeparatorShown(True)
    box.setMaximumWidth(SPIN_WIDTH_PX)
    return box


def _double(lo: float, hi: float, value: float, decimals: int, step: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox(minimum=lo, maximum=hi, value=value, decimals=decimals, singleStep=step)
    box.setMaximumWidth(SPIN_WIDTH_PX)
    return box


class TrainingSettings(QWidget):
    """Six groups, top to bottom; every choice readable back as a TrainingRequest."""

    def __init__(self, parent: QWidget | None = None, *, listed_files: Callable[[], list[Path]] = lambda: [],
                 preview_config: Callable[[], AugmentConfig] | None = None, settings: QSettings | None = None,
                 model_config: ModelConfig = ModelConfig()):
        super().__init__(parent)
        self._listed_files = listed_files
        self._preview_config = preview_config
        self._settings = settings
        self._model_config = model_config  # hidden: tests and benchmarks train smaller networks
        layout = QVBoxLayout(self)
        for group in (self._data_group(), self._validation_group(), self._augment_group(), self._settings_group(),
                      self._device_group(), self._output_group()):
            layout.addWidget(group)
        layout.addStretch(1)
        self.update_data_note()
        self._update_time_note()
        self.output_changed()

    @property
    def model_config(self) -> ModelConfig:
        return self._model_config

    @model_config.setter
    def model_config(self, config: ModelConfig) -> None:
        self._model_config = config
        self._update_time_note()

    def _data_group(self) -> QGroupBox:
        box = QGroupBox("Training data")
        self.folders_radio = QRadioButton("Folders: labelled audio or Jamendo corpus roots")
        self.folders_radio.setChecked(True)
        self.folder_list = QListWidget()
        self.folder_list.setMaximumHeight(72)
        self.folder_list.setToolTip("Each folder holds audio files with a .lab or .txt label file of the same "
                                    "name, or is a Jamendo corpus root (labels/, filelists/): its train split")
        add = QPushButton("Add Folder…")
        add.clicked.connect(self._add_folder_dialog)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: [self.folder_list.takeItem(self.folder_list.row(i))
                                        for i in self.folder_list.selectedItems()])
        self.files_radio = QRadioButton("The files listed in the app's file panel")
        self.files_note = QLabel()
        self.files_note.setStyleSheet("color: #555;")
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        layout = QVBoxLayout(box)
        layout.addWidget(self.folders_radio)
        layout.addWidget(self.folder_list)
        layout.addLayout(row)
        layout.addWidget(self.files_radio)
        layout.addWidget(self.files_note)
        self.files_radio.toggled.connect(self.update_data_note)
        return box

    def _validation_group(self) -> QGroupBox:
        box = QGroupBox("Validation (threshold and figures)")
        self.validation_combo = QComboBox()
        for key, text in VALIDATION_CHOICES:
            self.validation_combo.addItem(text, key)
        self.fraction_spin = _double(1.0, 50.0, 10.0, 0, 5.0)
        self.fraction_spin.setMaximumWidth(16777215)
        self.fraction_spin.setSuffix(" % of the files, drawn with the seed")
        self.valid_folder_edit = QLineEdit()
        self.valid_folder_edit.setPlaceholderText("folder of labelled audio, or a Jamendo root (its valid split)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._valid_folder_dialog)
        self.valid_folder_row = QWidget()
        row = QHBoxLayout(self.valid_folder_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.valid_folder_edit, 1)
        row.addWidget(browse)
        layout = QVBoxLayout(box)
        layout.addWidget(self.validation_combo)
        layout.addWidget(self.fraction_spin)
        layout.addWidget(self.valid_folder_row)
        self.validation_combo.currentIndexChanged.connect(self._validation_changed)
        self._validation_changed()
        return box

    def _augment_group(self) -> QGroupBox:
        self.augment = AugmentChoice(preview_config=self._preview_config)
        # Its parts by the names the window's tests and callers use.
        self.augment_combo, self.augment_edit, self.augment_note = (
            self.augment.combo, self.augment.edit, self.augment.note)
        # The paper's point is augmentation: its combination, unless the last run here chose another.
        self.augment.set_config(self._saved_augment() or AugmentConfig.paper())
        return self.augment

    def _saved_augment(self) -> AugmentConfig | None:
        spec = prefs.training_augment(self._settings) if self._settings is not None else None
        try:
            return AugmentConfig.parse(spec) if spec else None
        except EngineError:  # an unreadable saved value falls back to the default
            return None

    def _settings_group(self) -> QGroupBox:
        box = QGroupBox("Training (the paper's settings are the defaults)")
        d = TrainConfig()
        self.updates_spin = _spin(1, 10_000_000, d.updates, 1000)
        self.batch_spin = _spin(1, 4096, d.batch_size)
        self.lr_spin = _double(1e-6, 10.0, d.learning_rate, 5, 0.001)
        self.momentum_spin = _double(0.0, 0.999, d.momentum, 3, 0.01)
        self.decay_spin = _double(0.01, 1.0, d.lr_decay, 3, 0.01)
        self.decay_every_spin = _spin(1, 10_000_000, d.lr_decay_every, 500)
        self.seed_spin = _spin(0, 2**31 - 1, d.seed)
        self.validate_spin = _spin(0, 10_000_000, d.validate_every, 500)
        self.validate_spin.setToolTip("0: validate only at the end")
        self.checkpoint_spin = _spin(0, 10_000_000, d.checkpoint_every, 100)
        self.checkpoint_spin.setToolTip("0: a checkpoint only when cancelled")
        grid = QGridLayout(box)
        self.momentum_spin.setToolTip("Nesterov momentum of the SGD updates")
        self.decay_spin.setToolTip("The learning rate is multiplied by this every N updates")
        cells = (("Updates", self.updates_spin), ("Batch size", self.batch_spin),
                 ("Learning rate", self.lr_spin), ("Momentum", self.momentum_spin),
                 ("LR decay ×", self.decay_spin), ("every", self.decay_every_spin),
                 ("Seed", self.seed_spin), ("Validate every", self.validate_spin),
                 ("Checkpoint every", self.checkpoint_spin))
        for i, (text, widget) in enumerate(cells):
            grid.addWidget(QLabel(text), i // 2, 2 * (i % 2))
            grid.addWidget(widget, i // 2, 2 * (i % 2) + 1)
        self.updates_spin.valueChanged.connect(self._update_time_note)
        return box

    def _device_group(self) -> QGroupBox:
        self.device = TrainingDevice(settings=self._settings)
        # Its parts by the names the window's tests and callers use.
        self.device_combo, self.precision_combo, self.time_note = (
            self.device.device_combo, self.device.precision_combo, self.device.time_note)
        self.device_combo.currentIndexChanged.connect(self._update_time_note)
        return self.device

    def _output_group(self) -> QGroupBox:
        box = QGroupBox("Output model file")
        folder = Path(prefs.training_folder(self._settings)) if self._settings else Path()
        if not str(folder) or str(folder) == "." or not folder.is_dir():
            folder = Path.home() / "svgui-models"
        self.out_edit = QLineEdit(str(folder / f"svgui-{datetime.now():%Y%m%d-%H%M}.safetensors"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._out_dialog)
        self.resume_check = QCheckBox("Continue from the checkpoint beside it")
        self.resume_check.setMaximumWidth(SETTINGS_WIDTH_PX - 60)
        self.resume_check.setToolTip("A resumed run keeps the checkpoint's settings and augmentation; only the "
                                     "number of updates applies. Use the same training data.")
        row = QHBoxLayout()
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        layout = QVBoxLayout(box)
        layout.addLayout(row)
        layout.addWidget(self.resume_check)
        self.out_edit.textChanged.connect(self.output_changed)
        return box

    # ---- settings: public helpers (also used by tests) ---------------------------------------------
    def add_folder(self, folder: str | Path) -> None:
        folder = Path(folder)
        text = str(folder) + ("   (Jamendo corpus)" if is_jamendo_layout(folder) else "")
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, str(folder))
        self.folder_list.addItem(item)
        self.folders_radio.setChecked(True)
        if is_jamendo_layout(folder) and self.validation_choice() == "fraction":
            self.set_validation("official")

    def folders(self) -> list[Path]:
        return [Path(self.folder_list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.folder_list.count())]

    def validation_choice(self) -> str:
        return self.validation_combo.currentData()

    def set_validation(self, mode: str, *, fraction: float | None = None, folder: str | Path | None = None) -> None:
        self.validation_combo.setCurrentIndex(self.validation_combo.findData(mode))
        if fraction is not None:
            self.fraction_spin.setValue(100 * fraction)
        if folder is not None:
            self.valid_folder_edit.setText(str(folder))

    def set_augment(self, config: AugmentConfig, *, source: str = "custom") -> None:
        """Show ``config`` (e.g. the preview's 'Use these settings for training') as the augmentation."""
        self.augment.set_config(config, source=source)

    def augment_config(self) -> AugmentConfig:
        return self.augment.config()

    def train_config(self) -> TrainConfig:
        return TrainConfig(updates=self.updates_spin.value(), batch_size=self.batch_spin.value(),
                           learning_rate=self.lr_spin.value(), lr_decay=self.decay_spin.value(),
                           lr_decay_every=self.decay_every_spin.value(), momentum=self.momentum_spin.value(),
                           seed=self.seed_spin.value(), validate_every=self.validate_spin.value(),
                           checkpoint_every=self.checkpoint_spin.value(),
                           precision=self.precision_combo.precision())

    def set_output(self, path: str | Path) -> None:
        self.out_edit.setText(str(path))

    def output_path(self) -> Path:
        text = self.out_edit.text().strip()
        if not text:
            raise EngineError("choose the output model file")
        path = Path(text).expanduser()
        return path if path.suffix else path.with_suffix(".safetensors")

    def restore_defaults(self) -> None:
        """The paper's settings, its augmentation included."""
        self.augment.set_config(AugmentConfig.paper())
        d = TrainConfig()
        for spin, value in ((self.updates_spin, d.updates), (self.batch_spin, d.batch_size),
                            (self.lr_spin, d.learning_rate), (self.momentum_spin, d.momentum),
                            (self.decay_spin, d.lr_decay), (self.decay_every_spin, d.lr_decay_every),
                            (self.seed_spin, d.seed), (self.validate_spin, d.validate_every),
                            (self.checkpoint_spin, d.checkpoint_every)):
            spin.setValue(value)

    def listed_tracks(self) -> tuple[list[Track], int]:
        """Labelled files listed in the app (as tracks), and how many listed files have no labels."""
        tracks, unlabelled = [], 0
        for path in self._listed_files():
            label = label_file_for(Path(path))
            if label is None:
                unlabelled += 1
            else:
                tracks.append(Track(Path(path).stem, Path(path), label))
        return tracks, unlabelled

    def request(self) -> TrainingRequest:
        """The run the settings describe; EngineError (ConfigError) with a readable message if invalid."""
        folders, files = (), ()
        if self.files_radio.isChecked():
            files, _ = self.listed_tracks()
            if not files:
                raise EngineError("the app's file panel lists no audio file with labels: open a labelled folder "
                                  "there (File ▸ Open Folder) or add folders here")
        else:
            folders = tuple(self.folders())
            if not folders:
                raise EngineError("add at least one folder of training data")
        mode = self.validation_choice()
        valid_folder = None
        if mode == "folder":
            text = self.valid_folder_edit.text().strip()
            if not text:
                raise EngineError("choose the validation folder")
            valid_folder = Path(text).expanduser()
        try:
            augment = self.augment_config()
        except EngineError as exc:
            raise EngineError(f"augmentation: {exc}") from None
        return TrainingRequest(out_path=self.output_path(), folders=folders, files=tuple(files), validation=mode,
                               valid_fraction=self.fraction_spin.value() / 100, valid_folder=valid_folder,
                               augment=augment, config=self.train_config(), model_config=self.model_config,
                               device=self.device_combo.currentData(),
                               resume=not self.resume_check.isHidden() and self.resume_check.isChecked())

    def _update_time_note(self) -> None:
        self.device.update_time_note(self.updates_spin.value(), self.model_config)

    def update_data_note(self) -> None:
        tracks, unlabelled = self.listed_tracks()
        text = f"{len(tracks)} labelled file(s) listed"
        if unlabelled:
            text += f"; {unlabelled} without labels (left out)"
        self.files_note.setText(text)

    def _validation_changed(self) -> None:
        mode = self.validation_combo.currentData()
        self.fraction_spin.setVisible(mode == "fraction")
        self.valid_folder_row.setVisible(mode == "folder")

    def output_changed(self) -> None:
        try:
            checkpoint = checkpoint_path_for(self.output_path())
        except EngineError:
            self.resume_check.hide()
            return
        exists = checkpoint.is_file()
        if exists:
            self.resume_check.setToolTip(f"{checkpoint}\n\nA resumed run keeps the checkpoint's settings and "
                                         "augmentation; only the number of updates applies. Use the same "
                                         "training data.")
        self.resume_check.setVisible(exists)
        self.resume_check.setChecked(exists)

    def _add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training data folder")
        if folder:
            self.add_folder(folder)

    def _valid_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Validation folder")
        if folder:
            self.valid_folder_edit.setText(folder)

    def _out_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Model file", self.out_edit.text(), "svgui models (*.safetensors)")
        if path:
            self.out_edit.setText(path)
