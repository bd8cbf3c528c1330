"""A combo box for the network's precision (engine/precision.py), shared by the windows that run it."""

from __future__ import annotations

import torch
from PySide6.QtWidgets import QComboBox, QWidget

from engine.config import PRECISIONS
from engine.precision import cpu_features


def _bf16_label() -> str:
    """Where bf16 would run: natively (a GPU, AMX / AVX-512 BF16) or emulated at about fp32's speed."""
    if torch.cuda.is_available():
        return "bf16 (on the GPU, where it supports bf16)"
    if cpu_features()["native_bf16"]:
        return "bf16 (native on this CPU)"
    return "bf16 (emulated here, no faster: no AMX / AVX-512 BF16)"


LABELS = {
    "auto": "Automatic (bf16 where native and faster, else fp32)",
    "fp32": "fp32 (exact reference)",
    "bf16": _bf16_label(),
    "fp16": "fp16 (CUDA GPUs only)",
}
TOOLTIP = ("Arithmetic of the network. Automatic picks bf16 only where the CPU runs it natively (AMX or "
           "AVX-512 BF16) and a one-off timing on this machine found it faster, or on a GPU with bf16; "
           "otherwise fp32. Decisions agree with fp32 on more than 99.9 % of frames.")


def available_precisions() -> list[str]:
    """auto, fp32, bf16, plus fp16 when torch sees a CUDA GPU."""
    return [name for name in PRECISIONS if name != "fp16" or torch.cuda.is_available()]


class PrecisionCombo(QComboBox):
    """The choices of ``available_precisions``, with readable labels."""

    def __init__(self, parent: QWidget | None = None, *, precision: str = "auto"):
        super().__init__(parent)
        for name in available_precisions():
            self.addItem(LABELS[name], name)
        self.setToolTip(TOOLTIP)
        # Elide rather than widen the settings forms it sits in; the tool tip has the whole story.
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(24)
        self.set_precision(precision)

    def precision(self) -> str:
        return self.currentData() or "auto"

    def set_precision(self, name: str) -> None:
        index = self.findData(name)
        self.setCurrentIndex(index if index >= 0 else 0)
