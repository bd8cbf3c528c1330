"""The training window's device group: where the network trains, in which precision, and how long it takes."""

from __future__ import annotations

import math

import torch
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QVBoxLayout, QWidget

from engine.config import ModelConfig
from engine.devices import describe_device
from svgui import settings as prefs
from svgui.widgets.precision_combo import PrecisionCombo

BENCHMARK_CPU_S_PER_UPDATE = 0.45  # README "Speed": full network, batch 32, 2-core CPU


def format_duration(seconds: float) -> str:
    """'45 s', '12 min 05 s', '4 h 50 min'; '–' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainingDevice(QGroupBox):
    """The GPUs torch sees and the CPU, the precision (the app's Model ▸ Precision by default), a time estimate."""

    def __init__(self, parent: QWidget | None = None, *, settings: QSettings | None = None):
        super().__init__("Device", parent)
        self._settings = settings
        self.device_combo = QComboBox()
        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                name = f"cuda:{index}"
                self.device_combo.addItem(f"GPU {describe_device(torch.device(name))}", name)
        self.device_combo.addItem(f"CPU ({torch.get_num_threads()} threads)", "cpu")
        self.precision_combo = PrecisionCombo(precision=prefs.precision(settings) if settings else "auto")
        self.time_note = QLabel()
        self.time_note.setWordWrap(True)
        self.time_note.setStyleSheet("color: #555;")
        layout = QVBoxLayout(self)
        layout.addWidget(self.device_combo)
        layout.addWidget(self.precision_combo)
        layout.addWidget(self.time_note)

    def device(self) -> str:
        return self.device_combo.currentData() or "cpu"

    def update_time_note(self, updates: int, model_config: ModelConfig) -> None:
        """The expected duration: measured earlier on this device, else the benchmark's CPU figure."""
        device = self.device()
        paper_network = model_config == ModelConfig()  # the figures are for the full network only
        measured = None
        if self._settings is not None and paper_network:
            measured = prefs.seconds_per_update(self._settings, torch.device(device).type)
        if measured:
            self.time_note.setText(f"Expected: about {format_duration(measured * updates)} for {updates:,} updates "
                                   f"({measured:.3g} s per update, measured in an earlier run on this device).")
        elif device == "cpu" and paper_network:
            self.time_note.setText(
                f"Expected: about {format_duration(BENCHMARK_CPU_S_PER_UPDATE * updates)} for {updates:,} updates "
                f"({BENCHMARK_CPU_S_PER_UPDATE} s per update measured on a 2-core CPU; more cores are faster). "
                "The remaining time is measured once training runs.")
        elif device.startswith("cuda"):
            self.time_note.setText("On a GPU an update takes milliseconds to tens of milliseconds; the remaining "
                                   "time is measured once training runs.")
        else:
            self.time_note.setText("The remaining time is measured once training runs.")
