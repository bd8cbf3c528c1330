"""One excerpt before and after augmentation, through exactly the training code, for a seed.

The scripting twin of the GUI's preview: ``svgui-engine augment`` and the preview panel both
call ``preview_excerpt``, which cuts the source excerpt the way training does (zeros beyond the
file's edges), draws with ``draw_augmentations`` and applies ``augment_excerpts``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from engine.augment import AugmentDraw, augment_excerpts, describe_draw, draw_augmentations
from engine.config import AugmentConfig, FeatureConfig, ModelConfig
from engine.normalize import Normalization
from engine.remix import RemixPool


@dataclass(frozen=True)
class Preview:
    """Standardized log-mel excerpts ``[excerpt_frames, n_mels]`` and what was drawn."""

    original: np.ndarray
    augmented: np.ndarray
    draw: AugmentDraw
    description: str
    centre_frame: int
    partner_frame: int | None  # centre of the mixed-in excerpt in the partner spectrogram


def cut_excerpt(linear: np.ndarray | torch.Tensor, centre_frame: int, n_frames: int) -> torch.Tensor:
    """Frames [centre - n//2, centre + n//2] of ``linear``, zeros where they fall outside it."""
    half = n_frames // 2
    out = torch.zeros((n_frames, linear.shape[1]), dtype=torch.float32)
    lo, hi = max(0, centre_frame - half), min(len(linear), centre_frame + half + 1)
    if lo < hi:
        rows = linear[lo:hi]
        rows = rows.float() if isinstance(rows, torch.Tensor) else torch.from_numpy(np.array(rows, dtype=np.float32))
        out[lo - (centre_frame - half):hi - (centre_frame - half)] = rows
    return out


def preview_excerpt(linear: np.ndarray | torch.Tensor, centre_frame: int, *, config: AugmentConfig, seed: int,
                    features: FeatureConfig, normalization: Normalization,
                    excerpt_frames: int = ModelConfig.excerpt_frames,
                    partner_linear: np.ndarray | torch.Tensor | None = None,
                    partner_centres: np.ndarray | None = None, partner_name: str = "",
                    remix: tuple[RemixPool, int] | None = None) -> Preview:
    """Augment the excerpt centred on ``centre_frame`` of a linear spectrogram ``[frames, n_bins]``.

    ``partner_centres`` are the candidate centre frames (non-voice) in ``partner_linear`` for mixing;
    without them mixing has no partner and leaves the excerpt as it is. ``remix`` is a
    ``RemixPool.for_file`` of this file's stems (None: remixing leaves the excerpt as it is).
    """
    if not 0 <= centre_frame < len(linear):
        raise ValueError(f"centre frame {centre_frame} is outside the spectrogram (0..{len(linear) - 1})")
    source = cut_excerpt(linear, centre_frame, config.source_frames(excerpt_frames))[None]
    n_partners = 0 if partner_centres is None or partner_linear is None else len(partner_centres)
    generator = torch.Generator().manual_seed(seed)
    draw = draw_augmentations(config, 1, generator=generator, n_partners=n_partners,
                              frames=excerpt_frames, n_mels=features.n_mels)
    remixed = source
    if remix is None and draw.remixed is not None:  # no stems: say so rather than print a remix not made
        draw = dataclasses.replace(draw, remixed=torch.zeros_like(draw.remixed))
    if remix is not None and draw.remixed is not None:
        pool, first = remix
        half = source.shape[1] // 2
        remixed = pool.apply(source, torch.tensor([first + centre_frame]), draw, torch.arange(-half, half + 1))
    partners, partner_frame = None, None
    if n_partners and int(draw.mix_partner[0]) >= 0:
        partner_frame = int(partner_centres[int(draw.mix_partner[0])])
        partners = cut_excerpt(partner_linear, partner_frame, excerpt_frames)[None]
    common = dict(features=features, normalization=normalization, excerpt_frames=excerpt_frames)
    augmented = augment_excerpts(remixed, draw, config=config, partners=partners, **common)
    original = augment_excerpts(source, draw, config=AugmentConfig(), **common)
    where = f" @ {partner_frame / features.frames_per_second:.1f} s" if partner_frame is not None else ""
    return Preview(original[0].numpy(), augmented[0].numpy(), draw,
                   describe_draw(draw, config, 0, partner_name=(partner_name + where).strip()),
                   centre_frame, partner_frame)
