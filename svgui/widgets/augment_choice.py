"""The training window's augmentation choice: a preset, the --augment spec it stands for, and its meaning.

The preset and the spec follow each other: choosing a preset writes its spec, and typing a spec
selects the preset it equals ("custom" otherwise). "From the augmentation preview" takes the
preview's current settings, or the last ones it sent (``set_augment(..., source="preview")``).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from engine.config import AugmentConfig
from engine.errors import EngineError
from svgui.augment_sources import augment_spec

AUGMENT_CHOICES = (("none", "None"), ("paper", "The paper's combination"),
                   ("preview", "From the augmentation preview"), ("custom", "Custom"))


class AugmentChoice(QGroupBox):
    """A preset combo, the spec line it fills, and a note: the described config, or why it is invalid."""

    def __init__(self, parent: QWidget | None = None, *,
                 preview_config: Callable[[], AugmentConfig] | None = None):
        super().__init__("Augmentation", parent)
        self._preview_config = preview_config
        self._preview_sent: AugmentConfig | None = None
        self._updating = False  # set while one of the two follows the other, so they do not loop
        self.combo = QComboBox()
        for key, text in AUGMENT_CHOICES:
            self.combo.addItem(text, key)
        self.edit = QLineEdit("none")
        self.edit.setToolTip("The command line's --augment spec: 'paper', 'none' or e.g. "
                             "pitch=0.3,stretch=0.3,filter=10 (also loudness, mix, dropout, noise; remix for "
                             "files with stems)")
        self.note = QLabel()
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.combo)
        layout.addWidget(self.edit)
        layout.addWidget(self.note)
        self.combo.currentIndexChanged.connect(self._choice_changed)
        self.edit.textChanged.connect(self._text_changed)
        self._text_changed()

    def config(self) -> AugmentConfig:
        """The spec as a config; EngineError with the reason if it does not parse."""
        return AugmentConfig.parse(self.edit.text())

    def set_config(self, config: AugmentConfig, *, source: str = "custom") -> None:
        """Show ``config`` (e.g. the preview's 'Use these settings for training') under preset ``source``."""
        if source == "preview":
            self._preview_sent = config
        self._updating = True
        self.combo.setCurrentIndex(self.combo.findData(source))
        self.edit.setText(augment_spec(config))
        self._updating = False
        self._text_changed()

    def _from_preview(self) -> AugmentConfig | None:
        return self._preview_config() if self._preview_config is not None else self._preview_sent

    def _choice_changed(self) -> None:
        if self._updating:
            return
        choice = self.combo.currentData()
        config = {"none": AugmentConfig(), "paper": AugmentConfig.paper()}.get(choice)
        if choice == "preview":
            config = self._from_preview()
        if config is not None:
            self._updating = True
            self.edit.setText(augment_spec(config))
            self._updating = False
            self._text_changed()

    def _text_changed(self) -> None:
        try:
            config = self.config()
        except EngineError as exc:
            self.note.setText(f"<span style='color:#b00'>{exc}</span>")
            return
        self.note.setText(f"<span style='color:#555'>{config.describe()}</span>")
        if not self._updating:
            preset = {AugmentConfig(): "none", AugmentConfig.paper(): "paper"}.get(config, "custom")
            current = self.combo.currentData()
            if current != preset and not (current == "preview" and config == self._from_preview()):
                self._updating = True
                self.combo.setCurrentIndex(self.combo.findData(preset))
                self._updating = False
