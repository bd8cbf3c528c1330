"""The preview's controls: a switch, slider and number box per augmentation, the seed, presets.

Values are shown in the units users think in (pitch ±30 %, filter ±10 dB, dropout p = 0.2) and
converted to ``AugmentConfig`` fields (``max_pitch = 0.3``). A switched-off augmentation keeps its
strength, so switching it back on restores it; moving a slider switches its augmentation on.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.augment_specs import AUGMENT_SPECS, AugmentSpec
from engine.config import AugmentConfig

MAX_SEED = 2**31 - 1


# The controls are built from the engine's table: one row per augmentation.
KNOBS = AUGMENT_SPECS


class AugmentControls(QWidget):
    """Emits ``changed`` on any value, switch or seed change, ``useForTraining`` from its button."""

    changed = Signal()
    useForTraining = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.checks: dict[str, QCheckBox] = {}
        self.sliders: dict[str, QSlider] = {}
        self.spins: dict[str, QDoubleSpinBox] = {}
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        for row, knob in enumerate(KNOBS):
            check = QCheckBox(knob.label)
            check.setToolTip(knob.tip)
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, round(knob.gui_maximum / knob.step))
            slider.setMinimumWidth(90)
            slider.setToolTip(knob.tip)
            slider.setAccessibleName(f"{knob.label} strength")
            spin = QDoubleSpinBox()
            spin.setRange(0.0, knob.gui_maximum)
            spin.setSingleStep(knob.step)
            spin.setDecimals(knob.decimals)
            spin.setPrefix(knob.prefix)
            spin.setSuffix(knob.unit)
            spin.setValue(knob.default)
            spin.setToolTip(knob.tip)
            spin.setAccessibleName(f"{knob.label} strength")
            slider.setValue(round(knob.default / knob.step))
            slider.valueChanged.connect(lambda i, k=knob: self._slider_moved(k, i))
            spin.valueChanged.connect(lambda v, k=knob: self._spin_changed(k, v))
            check.toggled.connect(lambda _on: self.changed.emit())
            grid.addWidget(check, row, 0)
            grid.addWidget(slider, row, 1)
            grid.addWidget(spin, row, 2)
            self.checks[knob.short], self.sliders[knob.short], self.spins[knob.short] = check, slider, spin
        grid.setColumnStretch(1, 1)

        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setToolTip("Seed of the random draw: the same seed always gives the same picture")
        self.seed.setAccessibleName("Seed")
        self.seed.valueChanged.connect(lambda _v: self.changed.emit())
        self.new_draw = QPushButton("New draw")
        self.new_draw.setToolTip("Next seed (seed + 1)")
        self.new_draw.clicked.connect(lambda: self.seed.setValue((self.seed.value() + 1) % (MAX_SEED + 1)))
        seed_row = QHBoxLayout()
        seed_row.addWidget(QLabel("Seed"))
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.new_draw)

        self.paper = QPushButton("Paper's combination")
        self.paper.setToolTip("Pitch ±30 %, stretch ±30 %, filter ±10 dB: the best combination of the paper")
        self.paper.clicked.connect(lambda: self.set_config(AugmentConfig.paper()))
        self.all_off = QPushButton("All off")
        self.all_off.setToolTip("Switch every augmentation off (the strengths are kept)")
        self.all_off.clicked.connect(self.switch_all_off)
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.paper)
        preset_row.addWidget(self.all_off)
        self.use_button = QPushButton("Use these settings for training")
        self.use_button.setToolTip("Hand these settings to training and copy the --augment spec to the clipboard")
        self.use_button.clicked.connect(self.useForTraining.emit)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addLayout(seed_row)
        layout.addLayout(preset_row)
        layout.addWidget(self.use_button)
        self.set_config(AugmentConfig.paper())

    # ---- values ---------------------------------------------------------------------------
    def config(self) -> AugmentConfig:
        """The switched-on augmentations at their strengths (what training would use)."""
        return AugmentConfig(**{k.field: self.spins[k.short].value() / k.scale
                                for k in KNOBS if self.checks[k.short].isChecked()})

    def strengths(self) -> AugmentConfig:
        """Every augmentation at its chosen strength, switched on or not (for 'each alone')."""
        return AugmentConfig(**{k.field: self.spins[k.short].value() / k.scale for k in KNOBS})

    def is_on(self, short: str) -> bool:
        return self.checks[short].isChecked()

    def set_config(self, config: AugmentConfig) -> None:
        """Show ``config``: its non-zero strengths switched on, the others off (keeping theirs)."""
        with _Batch(self):
            for knob in KNOBS:
                value = getattr(config, knob.field) * knob.scale
                if value:
                    self.spins[knob.short].setValue(value)
                self.checks[knob.short].setChecked(bool(value))
        self.changed.emit()

    def set_strength(self, short: str, value: float) -> None:
        """Set one augmentation's strength in shown units and switch it on (off for 0)."""
        with _Batch(self):
            self.spins[short].setValue(value)
            self.checks[short].setChecked(bool(self.spins[short].value()))
        self.changed.emit()

    def switch_all_off(self) -> None:
        with _Batch(self):
            for check in self.checks.values():
                check.setChecked(False)
        self.changed.emit()

    def seed_value(self) -> int:
        return self.seed.value()

    # ---- syncing slider and number box --------------------------------------------------------
    def _slider_moved(self, knob: AugmentSpec, index: int) -> None:
        spin = self.spins[knob.short]
        if round(spin.value() / knob.step) != index:
            spin.setValue(index * knob.step)  # emits through _spin_changed

    def _spin_changed(self, knob: AugmentSpec, value: float) -> None:
        slider = self.sliders[knob.short]
        slider.blockSignals(True)
        slider.setValue(round(value / knob.step))
        slider.blockSignals(False)
        if self.signalsBlocked():
            return
        check = self.checks[knob.short]
        if value and not check.isChecked():
            check.blockSignals(True)
            check.setChecked(True)  # moving a slider switches its augmentation on
            check.blockSignals(False)
        self.changed.emit()


class _Batch:
    """Block ``changed`` while several controls are set; the caller emits once afterwards."""

    def __init__(self, controls: AugmentControls):
        self._controls = controls

    def __enter__(self):
        self._controls.blockSignals(True)
        for widget in (*self._controls.checks.values(), *self._controls.spins.values()):
            widget.blockSignals(True)
        return self

    def __exit__(self, *exc):
        for knob in KNOBS:
            self._controls.sliders[knob.short].blockSignals(True)
            self._controls.sliders[knob.short].setValue(round(self._controls.spins[knob.short].value() / knob.step))
            self._controls.sliders[knob.short].blockSignals(False)
        for widget in (*self._controls.checks.values(), *self._controls.spins.values()):
            widget.blockSignals(False)
        self._controls.blockSignals(False)
        return False
