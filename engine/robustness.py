"""Robustness to level: figures per input gain, or per vocal-to-accompaniment ratio on stems (issue 12).

``sweep_gains`` scales each file by a gain before the features, as Schlüter & Lehner (ISMIR 2018)
did. The STFT is linear, so scaling the linear magnitude spectrogram by 10^(g/20) is scaling the
waveform (checked in the tests); there is no clipping, as in the paper. ``sweep_ratios`` re-mixes
the vocals of songs with stems at each ratio (``engine.stems.StemAudio.remix``, the stress test of
Lee, Choi & Nam 2018). ``sweep_vocals_alone`` plays each song's vocal stem without its
accompaniment at levels in dBFS: quiet unaccompanied singing (issue 12). One threshold serves
every level: the one chosen at 0 dB (the model's, or chosen on validation data at their own
level), so the figures show what a user with one setting sees.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np

from engine.batch_predict import ScoreProgress
from engine.checkpoint import VoiceModel
from engine.config import EvalConfig, FeatureConfig
from engine.datasets import Track, TrackData, format_names
from engine.errors import DatasetError
from engine.evaluate import Counts, evaluate, format_percent
from engine.predict import predict_linear, predict_samples
from engine.stems import frame_levels_db, is_accompaniment_path, parse_levels_db, read_stems, stems_of

KINDS = {"gain": "gain_db", "snr": "ratio_db", "vocals": "level_dbfs"}  # sweep kind -> the JSON key of its level


@dataclass(frozen=True)
class LevelFigures:
    """Pooled counts at one level (dB)."""

    level_db: float
    counts: Counts


@dataclass(frozen=True)
class LevelSweep:
    """Figures of one model at each level of a sweep, at one threshold."""

    kind: str  # "gain", "snr" or "vocals"
    threshold: float
    levels: tuple[LevelFigures, ...]
    n_files: int

    @property
    def errors(self) -> list[float]:
        return [f.counts.error for f in self.levels]

    @property
    def spread(self) -> float:
        """Worst minus best pooled error over the levels."""
        return max(self.errors) - min(self.errors) if self.levels else math.nan

    def to_dict(self) -> dict:
        """JSON: kind, threshold, n_files, levels [{gain_db or ratio_db, error, recall, specificity,
        precision, f1, n_frames}], error_spread (worst minus best error); undefined ratios are None."""
        key = KINDS[self.kind]
        levels = []
        for figures in self.levels:
            d = figures.counts.to_dict()
            levels.append({key: figures.level_db, **{k: d[k] for k in
                                                     ("error", "recall", "specificity", "precision", "f1", "n_frames")}})
        return {"kind": self.kind, "threshold": self.threshold, "n_files": self.n_files, "levels": levels,
                "error_spread": None if math.isnan(self.spread) else self.spread}

    def format_table(self) -> str:
        """A Markdown table: one column per level, rows error / recall / specificity, then the spread."""
        what = {"gain": "gain", "snr": "vocals vs. accompaniment", "vocals": "vocals alone, level"}[self.kind]
        unit = "dBFS" if self.kind == "vocals" else "dB"
        head = [f"{f.level_db:+g} {unit}".replace("+0 ", "0 ").replace("-", "−") for f in self.levels]
        rows = [f"| {what} | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
        for title, attr in (("error", "error"), ("recall", "recall"), ("specificity", "specificity")):
            rows.append(f"| {title} | " + " | ".join(format_percent(getattr(f.counts, attr), 1)
                                                    for f in self.levels) + " |")
        rows.append(f"\nerror spread (worst − best): {100 * self.spread:.1f} points, threshold {self.threshold:.3g}, "
                    f"{self.n_files} files")
        return "\n".join(rows)


def _score(kind: str, level_db: float, probabilities: list[np.ndarray], targets: list[np.ndarray],
           names: list[str], threshold: float, eval_config: EvalConfig, fps: float) -> LevelFigures:
    result = evaluate(probabilities, targets, names, threshold=threshold, config=eval_config, frames_per_second=fps)
    return LevelFigures(float(level_db), result.pooled)


def sweep_gains(model: VoiceModel, data: Sequence[TrackData], gains_db: Sequence[float], *, threshold: float,
                eval_config: EvalConfig | None = None, pitch_factors: Sequence[float] = (1.0,),
                precision: str = "fp32",
                at_zero: Sequence[np.ndarray] | None = None) -> Generator[ScoreProgress, None, LevelSweep]:
    """Predict every labelled file at every gain; yields a ScoreProgress per (gain, file).

    ``at_zero``: probabilities already computed at 0 dB (reused, not predicted again).
    """
    eval_config = eval_config or model.eval_config
    targets = [d.targets for d in data]
    missing = [d.track.name for d in data if d.targets is None]
    if missing:
        raise DatasetError(f"no labels to score against: {format_names(missing)}")
    names = [d.track.name for d in data]
    total, done, levels = len(gains_db) * len(data), 0, []
    for gain_db in gains_db:
        factor = np.float32(10 ** (gain_db / 20))
        probabilities = []
        for i, d in enumerate(data):
            if gain_db == 0 and at_zero is not None:
                probabilities.append(at_zero[i])
            else:
                linear = np.asarray(d.linear, dtype=np.float32) * factor
                probabilities.append(predict_linear(model, linear, pitch_factors=pitch_factors, precision=precision))
            done += 1
            yield ScoreProgress(done, total, f"{d.track.name} at {gain_db:+g} dB")
        levels.append(_score("gain", gain_db, probabilities, targets, names, threshold, eval_config,
                             model.features.frames_per_second))
    return LevelSweep("gain", float(threshold), tuple(levels), len(data))


def stem_tracks(tracks: Sequence[Track], option: str = "--snr") -> list[Track]:
    """The tracks that are mixes with stems; accompaniment files are left out (they have no vocals
    to re-mix); any other file is a DatasetError naming it (its accompaniment is missing)."""
    kept, without = [], []
    for track in tracks:
        if is_accompaniment_path(track.audio_path):
            continue
        (kept if stems_of(track.audio_path) is not None else without).append(track)
    if without:
        raise DatasetError(f"{option} needs stems, and {len(without)} file(s) have none (no 'NAME (accompaniment)' "
                           f"file beside them, nor MUSDB18 stems): {format_names([str(t.audio_path) for t in without])}")
    if not kept:
        raise DatasetError(f"{option} needs mixes with stems; there are none")
    return kept


def sweep_ratios(model: VoiceModel, data: Sequence[TrackData], ratios_db: Sequence[float], *, threshold: float,
                 eval_config: EvalConfig | None = None, pitch_factors: Sequence[float] = (1.0,),
                 precision: str = "fp32") -> Generator[ScoreProgress, None, LevelSweep]:
    """Re-mix each song's vocals over its accompaniment at every ratio, predict and score.

    ``data`` are the mixes (``stem_tracks``) with their targets: the label file, else the vocal-level rule.
    """
    eval_config = eval_config or model.eval_config
    total, done = len(ratios_db) * len(data), 0
    by_ratio: list[list[np.ndarray]] = [[] for _ in ratios_db]
    for d in data:
        audio = read_stems(stems_of(d.track.audio_path), sample_rate=model.features.sample_rate)
        for k, ratio_db in enumerate(ratios_db):
            probabilities = predict_samples(model, audio.remix(ratio_db), pitch_factors=pitch_factors,
                                            precision=precision)
            by_ratio[k].append(probabilities[:len(d.targets)])
            done += 1
            yield ScoreProgress(done, total, f"{d.track.name} at {ratio_db:+g} dB")
    names, targets = [d.track.name for d in data], [d.targets for d in data]
    levels = tuple(_score("snr", r, by_ratio[k], targets, names, threshold, eval_config,
                          model.features.frames_per_second) for k, r in enumerate(ratios_db))
    return LevelSweep("snr", float(threshold), levels, len(data))


def parse_vocal_levels_dbfs(text: str) -> tuple[float, ...]:
    """'-48,-36' → levels in dBFS for ``sweep_vocals_alone``: ``parse_levels_db``'s rules, and none above
    full scale (0 dBFS); errors name the value."""
    levels = parse_levels_db(text, what="--vocals-alone")
    _check_at_most_full_scale(levels)
    return levels


def _check_at_most_full_scale(levels_dbfs: Sequence[float]) -> None:
    above = [level for level in levels_dbfs if level > 0]
    if above:
        raise DatasetError(f"--vocals-alone: {max(above):g} dBFS is above full scale (use levels ≤ 0 dBFS)")


def voiced_level_dbfs(vocals: np.ndarray, targets: np.ndarray, features: FeatureConfig) -> float:
    """Mean power in dBFS of ``vocals`` over the frames ``targets`` call voice (the whole stem if none)."""
    levels = frame_levels_db(vocals, features)[:len(targets)]
    voiced = np.asarray(targets[:len(levels)], dtype=bool)
    chosen = levels[voiced] if voiced.any() else levels
    if chosen.size == 0:
        return -math.inf
    power = float(np.mean(10 ** (chosen.astype(np.float64) / 10)))
    return 10 * math.log10(power) if power > 1e-20 else -math.inf


def sweep_vocals_alone(model: VoiceModel, data: Sequence[TrackData], levels_dbfs: Sequence[float], *,
                       threshold: float, eval_config: EvalConfig | None = None,
                       pitch_factors: Sequence[float] = (1.0,),
                       precision: str = "fp32") -> Generator[ScoreProgress, None, LevelSweep]:
    """Each song's vocal stem alone, scaled so that its voiced frames have each level in dBFS; scored
    against the mix's targets. A stem that is silent where it should sing stays silent (no level to set).
    """
    _check_at_most_full_scale(levels_dbfs)
    eval_config = eval_config or model.eval_config
    features = model.features
    total, done = len(levels_dbfs) * len(data), 0
    by_level: list[list[np.ndarray]] = [[] for _ in levels_dbfs]
    for d in data:
        vocals = read_stems(stems_of(d.track.audio_path), sample_rate=features.sample_rate).vocals
        level = voiced_level_dbfs(vocals, d.targets, features)
        for k, level_dbfs in enumerate(levels_dbfs):
            gain = np.float32(10 ** ((level_dbfs - level) / 20)) if math.isfinite(level) else np.float32(1)
            probabilities = predict_samples(model, vocals * gain, pitch_factors=pitch_factors, precision=precision)
            by_level[k].append(probabilities[:len(d.targets)])
            done += 1
            yield ScoreProgress(done, total, f"{d.track.name}, vocals alone at {level_dbfs:+g} dBFS")
    names, targets = [d.track.name for d in data], [d.targets for d in data]
    levels = tuple(_score("vocals", v, by_level[k], targets, names, threshold, eval_config,
                          features.frames_per_second) for k, v in enumerate(levels_dbfs))
    return LevelSweep("vocals", float(threshold), levels, len(data))
