"""What the augmentation preview feeds to the engine: the open file's spectrogram, labels and partners.

No Qt here. The preview calls ``engine.preview.preview_excerpt`` exactly as ``svgui-engine
augment`` does; this module only supplies its inputs cheaply for files of any length:
``LazyLinearSpectrogram`` computes linear STFT frames on demand from the decoded samples (frame i
from samples [hop*i, hop*i + frame_length), exactly the frames the spectrogram cache stores), so
no whole-file linear spectrogram (86 MB for ten minutes) is ever held.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from engine.augment import draw_augmentations, drawn_values, filter_response_db
from engine.config import FRAMES_PER_SECOND, AugmentConfig, FeatureConfig, ModelConfig
from engine.datasets import Track, TrackData
from engine.errors import EngineError
from engine.features import frame_count, linear_spectrogram
from engine.labels import Interval, intervals_to_targets
from engine.normalize import Normalization, compute_normalization
from engine.preview import Preview, preview_excerpt
from engine.remix import RemixPool
from engine.stems import stems_of

EXCERPT_FRAMES = ModelConfig.excerpt_frames  # the network's input width


class LazyLinearSpectrogram:
    """Linear magnitudes ``[frames, n_bins]`` of ``samples``, computed for the rows sliced.

    Supports what ``cut_excerpt`` uses: ``len``, ``shape`` and ``[lo:hi]`` (a float32 tensor).
    """

    CACHED_SLICES = 16  # the excerpt and a grid's partners: settings changes reuse their rows

    def __init__(self, samples: np.ndarray, features: FeatureConfig):
        self.samples, self.features = samples, features
        self.shape = (frame_count(len(samples), features), features.n_bins)
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> torch.Tensor:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("LazyLinearSpectrogram supports contiguous row slices only")
        lo, hi, _ = rows.indices(len(self))
        if hi <= lo:
            return torch.zeros((0, self.shape[1]), dtype=torch.float32)
        rows = self._cache.pop((lo, hi), None)
        if rows is None:
            hop, width = self.features.hop_length, self.features.frame_length
            rows = linear_spectrogram(self.samples[lo * hop:(hi - 1) * hop + width], self.features)
        self._cache[(lo, hi)] = rows  # most recently used last
        while len(self._cache) > self.CACHED_SLICES:
            del self._cache[next(iter(self._cache))]
        return rows  # shared with the cache: callers copy (cut_excerpt does), never write


@contextlib.contextmanager
def torch_threads(n: int):
    """Run tiny tensor work on ``n`` intra-op threads, then restore the previous count.

    A 115-frame excerpt takes about 1 ms on one thread; on a busy machine the OpenMP pool of
    several threads can take 100 ms to meet at its barriers, a visible lag while dragging.
    """
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


@dataclass
class PreviewSource:
    """The open file as the preview sees it (rebuilt when the file or its labels change)."""

    linear: LazyLinearSpectrogram
    features: FeatureConfig
    normalization: Normalization
    normalization_text: str
    name: str
    targets: np.ndarray | None        # [frames] bool ground truth, None without labels
    partner_centres: np.ndarray       # candidate centre frames for mixing (non-voice frames)
    partner_text: str                 # which frames those are, in words
    path: Path | None = None          # the file, for its stems (remixing)
    _remix: dict = field(default_factory=dict, repr=False)  # source frames -> (RemixPool, first frame)
    remix_problem: str = ""           # why this file cannot be remixed ("" until asked)

    def remix_pool(self, source_frames: int):
        """``RemixPool.for_file`` of the file's stems for excerpts of ``source_frames`` (its zero margins
        depend on the stretch), read when first asked for; None (``remix_problem`` says why) without stems."""
        if source_frames not in self._remix and not self.remix_problem and self.path is not None:
            if stems_of(self.path) is None:
                self.remix_problem = f"no stems beside {self.path.name} (NAME (accompaniment){self.path.suffix})"
            else:
                try:
                    data = TrackData(Track(self.path.stem, self.path, None), self.linear, None, None, 0.0)
                    self._remix[source_frames] = RemixPool.for_file(
                        data, source_frames=source_frames, context=EXCERPT_FRAMES // 2, features=self.features)
                except EngineError as exc:
                    self.remix_problem = str(exc)
        return self._remix.get(source_frames)

    @property
    def remix_text(self) -> str:
        if self.remix_problem:
            return f"not here: {self.remix_problem}."
        return ("this file's vocals over its own accompaniment from elsewhere in it (training takes another "
                "song's).")

    @property
    def n_frames(self) -> int:
        return len(self.linear)

    def centre_frame(self, time_s: float) -> int:
        """The frame a click at ``time_s`` picks, as ``svgui-engine augment --at`` does."""
        frame = int(round(float(time_s) * self.features.frames_per_second))
        return min(max(frame, 0), self.n_frames - 1)

    def label_at(self, frame: int) -> str:
        if self.targets is None:
            return "no labels"
        return "voice" if bool(self.targets[frame]) else "no voice"

    def preview(self, centre_frame: int, config: AugmentConfig, seed: int) -> Preview:
        """``engine.preview.preview_excerpt``: exactly the training code for this seed."""
        with torch_threads(1):
            return preview_excerpt(self.linear, centre_frame, config=config, seed=seed, features=self.features,
                                   normalization=self.normalization, excerpt_frames=EXCERPT_FRAMES,
                                   partner_linear=self.linear, partner_centres=self.partner_centres,
                                   partner_name=self.name,
                                   remix=(self.remix_pool(config.source_frames(EXCERPT_FRAMES))
                                          if config.remix_probability else None))


def make_source(path: Path, samples: np.ndarray, log_mel: np.ndarray, features: FeatureConfig, *,
                annotations: list[Interval], labelled: bool,
                normalization: Normalization | None = None, normalization_text: str = "") -> PreviewSource | None:
    """The preview's inputs for a decoded file; None when it has no complete frame."""
    linear = LazyLinearSpectrogram(samples, features)
    if len(linear) == 0:
        return None
    if normalization is None:  # as `svgui-engine augment` without --model: the file's own statistics
        normalization = (compute_normalization([log_mel]) if len(log_mel) >= 2
                         else Normalization.identity(features.n_mels))
        normalization_text = "standardized with this file's own statistics"
    targets = intervals_to_targets(annotations, len(linear), features.frames_per_second) if labelled else None
    if targets is None:
        centres, text = np.arange(len(linear)), f"any frame of this file ({len(linear):,} frames; no labels)"
    else:
        centres = np.flatnonzero(~targets)
        text = f"the non-voice frames of this file ({len(centres):,} of {len(linear):,} frames)"
    return PreviewSource(linear, features, normalization, normalization_text, Path(path).name, targets,
                         centres, text, path=Path(path))


# ---- Figure 1 geometry ------------------------------------------------------------------------
@dataclass(frozen=True)
class CropBorder:
    """The source region the pitch/stretch warp reads: time ±half_width_s, frequency 0..top_hz."""

    half_width_s: float
    top_hz: float


def crop_border(pitch_factor: float, stretch_factor: float, features: FeatureConfig,
                excerpt_frames: int = EXCERPT_FRAMES) -> CropBorder:
    """±57/stretch frames around the centre and up to 372/pitch bins (``engine.augment.warp``)."""
    half_frames = (excerpt_frames // 2 + 0.5) / stretch_factor
    top_bins = features.n_mel_input_bins / pitch_factor
    return CropBorder(half_frames / features.frames_per_second, top_bins * features.bin_hz)


def filter_frequencies_hz(features: FeatureConfig) -> torch.Tensor:
    """The bins the filter acts on (those the mel filterbank reads), without 0 Hz (log axis)."""
    return torch.arange(1, features.n_mel_input_bins, dtype=torch.float32) * features.bin_hz


def filter_responses_db(max_filter_db: float, n: int, seed: int, features: FeatureConfig,
                        base: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """``n`` filter responses [n, bins] drawn by the training code at strength ``max_filter_db``."""
    config = AugmentConfig(**{**{f.name: getattr(base, f.name) for f in fields(base)},
                              "max_filter_db": float(max_filter_db)})
    with torch_threads(1):
        draw = draw_augmentations(config, n, generator=torch.Generator().manual_seed(seed), n_mels=features.n_mels)
        return filter_response_db(draw, filter_frequencies_hz(features)).numpy()


def compact_description(preview: Preview, config: AugmentConfig, *, long: bool = False,
                        frames_per_second: float = FRAMES_PER_SECOND) -> str:
    """A cell title: the drawn values briefly ("p×1.17 s×0.91 filter +6.2 dB@840 Hz").

    ``long``: for the each-alone grid, whose titles already name the augmentation: no 'filter' or
    'mix' word, the partner's time, and no noise strength (the title gives it).
    """
    texts = drawn_values(preview.draw, config, brief=True)
    if "filter" in texts and not long:
        texts["filter"] = f"filter {texts['filter']}"
    if texts.get("mix", "no mix") != "no mix":
        where = (f" @ {preview.partner_frame / frames_per_second:.1f} s"
                 if long and preview.partner_frame is not None else "")
        texts["mix"] = f"{'' if long else 'mix '}{texts['mix']}{where}"
    if long:
        texts.pop("noise", None)
    return " ".join(texts.values()) or ("drawn noise" if config.noise_sigma else "no augmentation")


# ---- the --augment spec ---------------------------------------------------------------------
def augment_spec(config: AugmentConfig) -> str:
    """'pitch=0.3,stretch=0.3,filter=10' (the CLI's --augment; 'none' when all are off)."""
    parts = []
    for short, name in AugmentConfig.SHORT_NAMES.items():
        value = getattr(config, name)
        if value:
            parts.append(f"{short}={_number(value)}")
    return ",".join(parts) or "none"


def _number(value: float) -> str:
    text = f"{round(value, 6):g}"
    return text if math.isfinite(float(text)) else str(value)
