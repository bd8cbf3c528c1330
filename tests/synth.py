"""Synthesized test songs: vibrato harmonic 'voices' over chords and noise, with known labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 22050


def synth_song(duration_s: float, voiced: list[tuple[float, float]], *, seed: int = 0,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A mono float32 signal: sustained chords + noise everywhere, a 'voice' inside ``voiced``.

    The voice is a harmonic tone with 5-6 Hz vibrato and a slowly gliding pitch (what makes
    singing stand out from flat-pitched instruments); the chords have constant pitch.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    out = 0.02 * rng.standard_normal(n)
    # Background: a chord that changes every 2 s, each note a few flat harmonics.
    for start in np.arange(0.0, duration_s, 2.0):
        sel = (t >= start) & (t < start + 2.0)
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        for ratio in (1.0, 1.26, 1.5):
            for h in range(1, 5):
                out[sel] += 0.05 / h * np.sin(2 * np.pi * root * ratio * h * t[sel] + rng.uniform(0, 6.28))
    for start_s, end_s in voiced:
        sel = (t >= start_s) & (t < end_s)
        tt = t[sel] - start_s
        f0 = rng.uniform(220, 400) * 2 ** (0.3 * np.sin(2 * np.pi * 0.2 * tt) / 12)
        vibrato = 2 ** (0.5 * np.sin(2 * np.pi * rng.uniform(5, 6.5) * tt) / 12)
        phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sample_rate
        voice = sum(0.12 / h * np.sin(h * phase) for h in range(1, 9))
        fade = np.minimum(1.0, np.minimum(tt, (end_s - start_s) - tt) / 0.02)
        out[sel] += voice * np.clip(fade, 0, 1)
    return (out / max(1.0, np.abs(out).max() * 1.1)).astype(np.float32)


def write_song(path: Path, duration_s: float, voiced: list[tuple[float, float]], *, seed: int = 0,
               sample_rate: int = SAMPLE_RATE, channels: int = 1, label_suffix: str | None = ".lab") -> Path:
    """Write a synthesized song (and, unless ``label_suffix`` is None, its .lab beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    signal = synth_song(duration_s, voiced, seed=seed, sample_rate=sample_rate)
    data = np.stack([signal] * channels, axis=1) if channels > 1 else signal
    sf.write(str(path), data, sample_rate)
    if label_suffix:
        lines, cursor = [], 0.0
        for a, b in voiced:
            if a > cursor:
                lines.append(f"{cursor:.3f} {a:.3f} nosing")
            lines.append(f"{a:.3f} {b:.3f} sing")
            cursor = b
        if cursor < duration_s:
            lines.append(f"{cursor:.3f} {duration_s:.3f} nosing")
        path.with_suffix(label_suffix).write_text("\n".join(lines) + "\n")
    return path


def random_voiced(duration_s: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Alternating voiced/unvoiced stretches of 1.5-4 s, starting with either."""
    out, cursor, voiced = [], 0.0, bool(rng.integers(0, 2))
    while cursor < duration_s:
        length = float(rng.uniform(1.5, 4.0))
        if voiced:
            out.append((round(cursor, 3), round(min(cursor + length, duration_s), 3)))
        cursor += length
        voiced = not voiced
    return out
