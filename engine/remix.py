"""Stem remixing for training: one song's vocals over another song's accompaniment (issue 12).

For the training files that have stems (``engine.stems.stems_of``: musdb7 or MUSDB18-HQ layout),
``RemixPool`` holds the linear spectrograms of their vocals and accompaniments on the training
device, laid out like ``AugmentedBatches.linear``. A remixed example keeps the sampled excerpt's
vocals (and so its label: the mix's label file, else the vocal-level rule) and replaces its
accompaniment with an excerpt of another song's, at any position, before the warp:

    source = 10^(gain/20) · (10^(v/20) · |V_i| + |A_j|),  v = ratio − (L_v,i − L_a,j)

with the ratio and gain drawn per example (``AugmentConfig.remix_*``) and L the songs' energy
levels in dB, so the vocal-to-accompaniment energy ratio over the two whole stems is the drawn
one. Magnitudes add without phase, as the paper's mixing augmentation does (SPEC §5).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from engine.config import FeatureConfig
from engine.datasets import DatasetWarning, TrackData, format_names
from engine.errors import DatasetError
from engine.features import linear_spectrogram
from engine.stems import read_stems, stems_of


class RemixPool:
    """Vocals and accompaniment spectrograms of the stem songs among ``tracks``.

    ``positions[k]`` is the first frame of ``tracks[k]`` in the batches' linear tensor, ``margin``
    the zero frames around each file there, ``n_frames`` that tensor's length.
    """

    def __init__(self, tracks: Sequence[TrackData], positions: Sequence[int], *, n_frames: int, margin: int,
                 context: int, features: FeatureConfig, device: torch.device):
        n_bins = features.n_bins
        vocals, accompaniment = [torch.zeros(margin, n_bins)], [torch.zeros(margin, n_bins)]
        local = torch.full((n_frames,), -1, dtype=torch.int64)
        song_of = torch.full((n_frames,), -1, dtype=torch.int64)
        firsts, counts, vocal_db, accompaniment_db, silent = [], [], [], [], []
        offset = margin
        for data, position in zip(tracks, positions):
            stems = stems_of(data.track.audio_path)
            if stems is None:
                continue
            try:
                audio = read_stems(stems, sample_rate=features.sample_rate)
            except DatasetError as exc:
                if "are silent" not in str(exc):
                    raise
                silent.append(stems.name)  # still trained on as it is, just never remixed
                continue
            v = linear_spectrogram(audio.vocals, features)
            a = linear_spectrogram(audio.accompaniment, features)
            n = min(len(data.linear), len(v))
            if n < 2 * context + 1:
                continue
            song = len(firsts)
            local[position:position + n] = torch.arange(offset, offset + n)
            song_of[position:position + n] = song
            firsts.append(offset + context)  # accompaniment excerpts centred where a whole excerpt fits
            counts.append(n - 2 * context)
            vocal_db.append(audio.vocal_level_db)
            accompaniment_db.append(audio.accompaniment_level_db)
            vocals += [v[:n], torch.zeros(margin, n_bins)]
            accompaniment += [a[:n], torch.zeros(margin, n_bins)]
            offset += n + margin
        if silent:
            warnings.warn(f"not remixed, their vocals are silent ({len(silent)}): {format_names(silent)}",
                          DatasetWarning, stacklevel=3)
        if not firsts:
            raise DatasetError("remixing needs training files with stems (NAME.flac with NAME (accompaniment).flac "
                               "beside it, or MUSDB18-HQ song folders); none of the training files has them")
        self.n_songs = len(firsts)
        self.vocals = torch.cat(vocals).to(device)
        self.accompaniment = torch.cat(accompaniment).to(device)
        self.local = local.to(device)
        self.song_of = song_of.to(device)
        self.firsts = torch.tensor(firsts, device=device)
        self.counts = torch.tensor(counts, device=device)
        self.vocal_db = torch.tensor(vocal_db, device=device, dtype=torch.float32)
        self.accompaniment_db = torch.tensor(accompaniment_db, device=device, dtype=torch.float32)

    @classmethod
    def for_file(cls, data: TrackData, *, source_frames: int, context: int,
                 features: FeatureConfig) -> tuple["RemixPool", int]:
        """A pool of one file (the preview): the pool and the file's first frame in its layout."""
        margin = source_frames // 2 - context
        return cls([data], [margin], n_frames=len(data.linear) + 2 * margin, margin=margin, context=context,
                   features=features, device=torch.device("cpu")), margin

    def apply(self, source: torch.Tensor, centres: torch.Tensor, draw, offsets: torch.Tensor) -> torch.Tensor:
        """Remix the drawn examples of ``source`` ``[B, S, n_bins]`` (excerpts around ``centres``)."""
        local = self.local[centres]
        remixed = draw.remixed.to(source.device) & (local >= 0)
        if source.device.type == "cpu":
            # Only the remixed rows (a CPU gathers and adds half the data at p = 0.5); a GPU remixes every
            # row and selects, which avoids the host sync of finding the rows.
            rows = torch.nonzero(remixed).flatten()
            if len(rows) == 0:
                return source
            out = source.clone()
            out[rows] = self._mix(local[rows], centres[rows], draw, rows, offsets)
            return out
        return self.apply_selecting(source, centres, draw, offsets)

    def apply_selecting(self, source: torch.Tensor, centres: torch.Tensor, draw, offsets: torch.Tensor) -> torch.Tensor:
        """``apply`` as a GPU runs it: every row remixed, then the drawn ones selected (no host sync)."""
        local = self.local[centres]
        remixed = draw.remixed.to(source.device) & (local >= 0)
        rows = torch.arange(len(centres), device=source.device)
        return torch.where(remixed[:, None, None], self._mix(local, centres, draw, rows, offsets), source)

    def _mix(self, local: torch.Tensor, centres: torch.Tensor, draw, rows: torch.Tensor,
             offsets: torch.Tensor) -> torch.Tensor:
        """10^(gain/20) (10^(v/20) |V| + |A|) for the examples ``rows`` of the draw."""
        device = local.device
        song = self.song_of[centres].clamp(min=0)
        # Another song: a shift of 1 .. n-1 songs (the same song only when there is just one).
        shift = (draw.remix_song_u.to(device)[rows] * max(self.n_songs - 1, 1)).long() + (self.n_songs > 1)
        partner = (song + shift) % self.n_songs
        frame = (draw.remix_frame_u.to(device)[rows] * self.counts[partner]).long()
        centre = self.firsts[partner] + frame.minimum(self.counts[partner] - 1)
        v = self.vocals[local.clamp(min=0)[:, None] + offsets[None, :]]
        a = self.accompaniment[centre[:, None] + offsets[None, :]]
        vocal_db = draw.remix_ratio_db.to(device)[rows] - (self.vocal_db[song] - self.accompaniment_db[partner])
        vocal_gain = torch.pow(10.0, vocal_db / 20)[:, None, None]
        gain = torch.pow(10.0, draw.remix_gain_db.to(device)[rows] / 20)[:, None, None]
        return gain * (vocal_gain * v + a)
