"""One row per augmentation (the seven of SPEC §5 and stem remixing): its names, unit, allowed range and how its strength reads.

``AugmentConfig`` (validation, ``--augment`` short names, ``describe``), the app's preview controls
and the ``--augment`` spec the app writes all read this table, so an augmentation is named,
bounded and worded in one place. Imports nothing from the engine (config.py imports it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentSpec:
    """An augmentation's strength: ``field`` of AugmentConfig, shown as ``field × scale`` + ``unit``."""

    short: str            # the --augment name
    field: str            # the AugmentConfig field
    label: str            # the app's name for it
    symbol: str           # "±" (a symmetric range) or the parameter's letter ("p", "σ")
    unit: str             # of the shown value: " %", " dB" or ""
    scale: float          # shown value = field value × scale
    upper: float          # the field's largest value (config units)
    upper_open: bool      # True: the field must stay below ``upper``
    gui_maximum: float    # the slider's end, in shown units
    step: float           # in shown units
    decimals: int
    default: float        # shown strength when first switched on (the paper's Figure 1 values)
    tip: str

    def describe(self, value: float) -> str:
        """'pitch ±30 %', 'mix p=0.5': a strength in the units users think in."""
        shown = f"{self.scale * value:g}"
        return f"{self.short} ±{shown}{self.unit}" if self.symbol == "±" else f"{self.short} {self.symbol}={shown}"

    @property
    def prefix(self) -> str:
        """The number box's prefix: '±' or 'p = '."""
        return self.symbol if self.symbol == "±" else f"{self.symbol} = "

    def check(self, value: float) -> str | None:
        """Why ``value`` is out of range, or None."""
        inside = 0 <= value < self.upper if self.upper_open else 0 <= value <= self.upper
        if inside:  # NaN fails both comparisons
            return None
        return f"{self.field} must be in [0, {self.upper:g}{')' if self.upper_open else ']'}, got {value}"


AUGMENT_SPECS = (
    AugmentSpec("pitch", "max_pitch", "Pitch shift", "±", " %", 100, 1, True, 60, 1, 0, 30,
                "Pitch factor drawn uniformly in 1 ± x (the linear spectrogram is scaled vertically)"),
    AugmentSpec("stretch", "max_stretch", "Time stretch", "±", " %", 100, 1, True, 60, 1, 0, 30,
                "Stretch factor drawn uniformly in 1 ± x (the linear spectrogram is scaled horizontally)"),
    AugmentSpec("loudness", "max_loudness_db", "Loudness", "±", " dB", 1, 120, False, 30, 0.5, 1, 10,
                "Gain drawn uniformly in ± x dB"),
    AugmentSpec("filter", "max_filter_db", "Frequency filter", "±", " dB", 1, 120, False, 30, 0.5, 1, 10,
                "Gaussian bell of ± x dB, centre 150 Hz–8 kHz (log-uniform), width 5–7 semitones"),
    AugmentSpec("mix", "mix_probability", "Mix with no-voice", "p", "", 1, 1, False, 1, 0.05, 2, 0.5,
                "Probability of mixing in a non-voice excerpt with a weight of up to 0.5"),
    AugmentSpec("dropout", "dropout_probability", "Dropout", "p", "", 1, 1, True, 0.5, 0.01, 2, 0.2,
                "Probability of setting each standardized log-mel value to zero"),
    AugmentSpec("noise", "noise_sigma", "Gaussian noise", "σ", "", 1, 120, False, 2, 0.05, 2, 0.2,
                "Standard deviation of noise added to the standardized log-mel values"),
    # Applied first (on the source excerpt, before the warp); listed last so the seven of SPEC §5 keep their places.
    AugmentSpec("remix", "remix_probability", "Remix stems", "p", "", 1, 1, False, 1, 0.05, 2, 0.5,
                "Probability of putting an example's vocals over another song's accompaniment (files with stems "
                "only), at a random vocal-to-accompaniment ratio and overall gain"),
)
SPECS_BY_SHORT = {spec.short: spec for spec in AUGMENT_SPECS}
