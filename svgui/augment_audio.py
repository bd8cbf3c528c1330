"""Listenable approximations of an augmented excerpt (no Qt): what the spectrogram warp sounds like.

Training never renders audio: it warps, filters and mixes linear spectrograms. To let users hear
the effect, the drawn values are applied to the excerpt's samples instead: time stretch and pitch
shift with librosa's phase vocoder, loudness as a gain, the filter as the same Gaussian bell
applied to STFT magnitudes (inverted with ``librosa.istft``), mixing as (1 - f) a + f b. It is an
approximation (phase vocoder artefacts; the warp also drops content above 8 kHz / pitch); dropout
and noise act on standardized log-mel values and have no audio counterpart.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from engine.augment import AugmentDraw, filter_response_db
from engine.config import AugmentConfig, FeatureConfig, ModelConfig

FILTER_HOP = 256       # STFT hop of the filter's analysis/resynthesis (75 % overlap of 1024)
PEAK_LIMIT = 0.98      # louder renderings are scaled down to this peak before writing


def excerpt_span(centre_frame: int, excerpt_frames: int, features: FeatureConfig) -> tuple[int, int]:
    """Samples [start, stop) covered by frames centre ± excerpt_frames // 2 (may reach outside the file)."""
    half = excerpt_frames // 2
    start = (centre_frame - half) * features.hop_length
    return start, (centre_frame + half) * features.hop_length + features.frame_length


def cut_samples(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """samples[start:stop] as float32, zeros where the range falls outside the file (as cut_excerpt)."""
    out = np.zeros(max(stop - start, 0), dtype=np.float32)
    lo, hi = max(start, 0), min(stop, len(samples))
    if lo < hi:
        out[lo - start:hi - start] = samples[lo:hi]
    return out


def original_audio(samples: np.ndarray, centre_frame: int, *, features: FeatureConfig,
                   excerpt_frames: int = ModelConfig.excerpt_frames) -> np.ndarray:
    """The excerpt's own samples (1.67 s for 115 frames), zero padded at the file's edges."""
    return cut_samples(samples, *excerpt_span(centre_frame, excerpt_frames, features))


def rendered_parts(config: AugmentConfig) -> tuple[list[str], list[str]]:
    """(augmentations the approximation renders, those it leaves out) among the enabled ones."""
    on = [short for short, name in AugmentConfig.SHORT_NAMES.items() if getattr(config, name)]
    left_out = [s for s in on if s in ("dropout", "noise")]
    return [s for s in on if s not in left_out], left_out


def augmented_audio(samples: np.ndarray, centre_frame: int, draw: AugmentDraw, config: AugmentConfig, *,
                    features: FeatureConfig, excerpt_frames: int = ModelConfig.excerpt_frames, index: int = 0,
                    partner_samples: np.ndarray | None = None, partner_frame: int | None = None) -> np.ndarray:
    """An audio approximation of example ``index`` of ``draw``, as long as ``original_audio``.

    Stretch and pitch shift (librosa), loudness, filter and mixing are applied in the order of
    ``augment_excerpts``; dropout and noise are not rendered (see ``rendered_parts``).
    """
    import librosa  # imported on first use: it takes a second

    start, stop = excerpt_span(centre_frame, excerpt_frames, features)
    length, sr = stop - start, features.sample_rate
    centre = (start + stop) // 2
    stretch = float(draw.stretch_factor[index]) if config.max_stretch else 1.0
    pitch = float(draw.pitch_factor[index]) if config.max_pitch else 1.0
    if stretch != 1.0:
        # A stretch by s shows 1/s as much music in the same width: read that much, play it slower.
        half = int(math.ceil(length / 2 / stretch))
        source = cut_samples(samples, centre - half, centre + half)
        y = _fit_centred(librosa.effects.time_stretch(source, rate=1.0 / stretch), length)
    else:
        y = cut_samples(samples, start, stop)
    if pitch != 1.0:
        y = librosa.effects.pitch_shift(y, sr=sr, n_steps=12.0 * math.log2(pitch))
    if config.max_loudness_db:
        y = y * np.float32(10.0 ** (float(draw.loudness_db[index]) / 20.0))
    if config.max_filter_db:
        spectrum = librosa.stft(y, n_fft=features.frame_length, hop_length=FILTER_HOP)
        freqs = torch.arange(spectrum.shape[0], dtype=torch.float64) * (sr / features.frame_length)
        gain_db = filter_response_db(draw.select(index), freqs)[0].numpy()
        spectrum *= (10.0 ** (gain_db / 20.0))[:, None]
        y = librosa.istft(spectrum, hop_length=FILTER_HOP, n_fft=features.frame_length, length=length)
    if config.mix_probability and partner_frame is not None and int(draw.mix_partner[index]) >= 0:
        fraction = float(draw.mix_fraction[index])
        partner = original_audio(samples if partner_samples is None else partner_samples, partner_frame,
                                 features=features, excerpt_frames=excerpt_frames)
        y = (1.0 - fraction) * y + fraction * partner
    return np.asarray(y, dtype=np.float32)


def _fit_centred(y: np.ndarray, length: int) -> np.ndarray:
    """``y`` cropped or zero padded symmetrically to ``length`` samples."""
    if len(y) >= length:
        first = (len(y) - length) // 2
        return y[first:first + length]
    out = np.zeros(length, dtype=np.float32)
    first = (length - len(y)) // 2
    out[first:first + len(y)] = y
    return out


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> float:
    """16-bit WAV for the player; scales down renderings that would clip. Returns the gain applied."""
    import soundfile as sf

    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    gain = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    sf.write(str(path), np.asarray(samples * gain, dtype=np.float32), sample_rate, subtype="PCM_16")
    return gain


def render_excerpt_wav(folder: str | Path, name: str, samples: np.ndarray, centre_frame: int, *,
                       features: FeatureConfig, draw: AugmentDraw | None = None,
                       config: AugmentConfig | None = None, partner_frame: int | None = None,
                       excerpt_frames: int = ModelConfig.excerpt_frames) -> Path:
    """Write the original excerpt (``draw`` None) or its augmented approximation to ``folder/name``."""
    if draw is None or config is None:
        audio = original_audio(samples, centre_frame, features=features, excerpt_frames=excerpt_frames)
    else:
        audio = augmented_audio(samples, centre_frame, draw, config, features=features,
                                excerpt_frames=excerpt_frames, partner_frame=partner_frame)
    path = Path(folder) / name
    write_wav(path, audio, features.sample_rate)
    return path
