"""The seven augmentations of SPEC §5 as pure, batched torch functions; drawing apart from applying.

Stem remixing draws here too; it is applied by ``engine.remix`` (it needs the stems of the data).

``draw_augmentations`` takes every random value for a batch from an explicit generator (one
value per example, or one per input value for dropout and noise); ``augment_excerpts`` applies a
draw in the order of SPEC §5. All uniforms are drawn whatever the strengths, and strengths only
scale them: with the same seed, switching one augmentation on or off leaves the others' draws
unchanged (what the GUI preview needs to compare effects).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from engine.augment_specs import AUGMENT_SPECS
from engine.config import AugmentConfig, FeatureConfig, ModelConfig
from engine.features import linear_to_mel, log_compress
from engine.normalize import Normalization


@dataclass(frozen=True)
class AugmentDraw:
    """Random values for a batch of B excerpts (index i belongs to example i)."""

    pitch_factor: torch.Tensor            # [B], content at bin k moves to bin k * factor
    stretch_factor: torch.Tensor          # [B], content at d frames from the centre moves to d * factor
    loudness_db: torch.Tensor             # [B]
    filter_db: torch.Tensor               # [B], peak gain of the frequency filter
    filter_centre_hz: torch.Tensor        # [B]
    filter_width_semitones: torch.Tensor  # [B]
    mix_fraction: torch.Tensor            # [B], 0 where the example is not mixed
    mix_partner: torch.Tensor             # [B] int64, index into the partner pool, -1 where not mixed
    dropout_mask: torch.Tensor            # [B, frames, n_mels] bool, True = set to zero
    noise: torch.Tensor                   # [B, frames, n_mels], already scaled by noise_sigma
    # Stem remixing (applied by engine.remix); None only in draws made by hand (tests).
    remixed: torch.Tensor | None = None          # [B] bool
    remix_ratio_db: torch.Tensor | None = None   # [B], vocal-to-accompaniment energy ratio
    remix_gain_db: torch.Tensor | None = None    # [B], overall gain of the remix
    remix_song_u: torch.Tensor | None = None     # [B] uniform [0, 1): which other song's accompaniment
    remix_frame_u: torch.Tensor | None = None    # [B] uniform [0, 1): where in it

    def __len__(self) -> int:
        return len(self.pitch_factor)

    def _map(self, fn) -> "AugmentDraw":
        return AugmentDraw(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                              for f in fields(self)})

    def to(self, device: torch.device | str) -> "AugmentDraw":
        return self._map(lambda t: t.to(device))

    def select(self, i: int) -> "AugmentDraw":
        """The draw of example ``i`` as a batch of one."""
        return self._map(lambda t: t[i:i + 1])


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return (low + (high - low) * u).float()


def draw_augmentations(config: AugmentConfig, batch_size: int, *, generator: torch.Generator,
                       n_partners: int = 0, frames: int = ModelConfig.excerpt_frames,
                       n_mels: int = FeatureConfig.n_mels) -> AugmentDraw:
    """Draw every random value of one batch (on the generator's device), in a fixed order."""
    pitch = _uniform(batch_size, 1 - config.max_pitch, 1 + config.max_pitch, generator)
    stretch = _uniform(batch_size, 1 - config.max_stretch, 1 + config.max_stretch, generator)
    loudness = _uniform(batch_size, -config.max_loudness_db, config.max_loudness_db, generator)
    gain = _uniform(batch_size, -config.max_filter_db, config.max_filter_db, generator)
    log_centre = _uniform(batch_size, math.log(config.filter_min_hz), math.log(config.filter_max_hz), generator)
    width = _uniform(batch_size, config.filter_min_semitones, config.filter_max_semitones, generator)
    mixed = torch.rand(batch_size, generator=generator, device=generator.device) < config.mix_probability
    fraction = _uniform(batch_size, 0.0, config.mix_max_fraction, generator)
    partner = torch.randint(max(n_partners, 1), (batch_size,), generator=generator, device=generator.device)
    if n_partners == 0:
        mixed = torch.zeros_like(mixed)
    dropout = torch.rand(batch_size, frames, n_mels, generator=generator, device=generator.device)
    noise = torch.randn(batch_size, frames, n_mels, generator=generator, device=generator.device)
    # Drawn last, and only when remixing is on, so that a seed without remixing gives the same
    # batches (and the same trained model) as before remixing existed.
    if config.remix_probability:
        remix = dict(
            remixed=torch.rand(batch_size, generator=generator, device=generator.device) < config.remix_probability,
            remix_ratio_db=_uniform(batch_size, config.remix_min_ratio_db, config.remix_max_ratio_db, generator),
            remix_gain_db=_uniform(batch_size, -config.remix_max_gain_db, config.remix_max_gain_db, generator),
            remix_song_u=_uniform(batch_size, 0.0, 1.0, generator),
            remix_frame_u=_uniform(batch_size, 0.0, 1.0, generator))
    else:
        zeros = torch.zeros(batch_size, device=generator.device)
        remix = dict(remixed=torch.zeros(batch_size, dtype=torch.bool, device=generator.device),
                     remix_ratio_db=zeros, remix_gain_db=zeros, remix_song_u=zeros, remix_frame_u=zeros)
    return AugmentDraw(**remix,
        pitch_factor=pitch, stretch_factor=stretch, loudness_db=loudness, filter_db=gain,
        filter_centre_hz=log_centre.exp(), filter_width_semitones=width,
        mix_fraction=torch.where(mixed, fraction, torch.zeros_like(fraction)),
        mix_partner=torch.where(mixed, partner, torch.full_like(partner, -1)),
        dropout_mask=dropout < config.dropout_probability, noise=noise * config.noise_sigma)


def warp(linear: torch.Tensor, pitch_factor: torch.Tensor, stretch_factor: torch.Tensor, *,
         out_frames: int, out_bins: int) -> torch.Tensor:
    """Pitch shift and time stretch as one bilinear warp, 0 Hz and the centre frame fixed.

    Parameters
    ----------
    linear : [shape=(B, source_frames, n_bins)], source_frames odd, the label at the centre row
    pitch_factor, stretch_factor : [shape=(B,)]

    Returns
    -------
    warped : [shape=(B, out_frames, out_bins)]; zeros where the source lies outside the input
    """
    batch, n_src, n_bins = linear.shape
    device, dtype = linear.device, linear.dtype
    pitch = pitch_factor.to(device, dtype)[:, None, None]
    stretch = stretch_factor.to(device, dtype)[:, None, None]
    t_out = torch.arange(out_frames, device=device, dtype=dtype)[None, :, None]
    k_out = torch.arange(out_bins, device=device, dtype=dtype)[None, None, :]
    t_src = (n_src - 1) / 2 + (t_out - (out_frames - 1) / 2) / stretch   # [B, T, 1]
    k_src = k_out / pitch                                                 # [B, 1, K]
    grid = torch.stack(torch.broadcast_tensors(2 * k_src / (n_bins - 1) - 1,
                                               2 * t_src / (n_src - 1) - 1), dim=-1)
    return F.grid_sample(linear.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=True).squeeze(1)


def crop_centre(linear: torch.Tensor, *, out_frames: int, out_bins: int) -> torch.Tensor:
    """The central ``out_frames`` rows and low ``out_bins`` bins: the warp at factors 1, exactly."""
    first = (linear.shape[1] - out_frames) // 2
    return linear[:, first:first + out_frames, :out_bins]


def filter_response_db(draw: AugmentDraw, bin_freqs_hz: torch.Tensor) -> torch.Tensor:
    """Gaussian bell in dB per example: g * exp(-0.5 ((f - mu) / sigma_hz)^2), [B, n_bins]."""
    centre = draw.filter_centre_hz.to(bin_freqs_hz)[:, None]
    sigma_hz = centre * (2 ** (draw.filter_width_semitones.to(bin_freqs_hz)[:, None] / 12) - 1)
    return draw.filter_db.to(bin_freqs_hz)[:, None] * torch.exp(-0.5 * ((bin_freqs_hz - centre) / sigma_hz) ** 2)


def apply_gain_db(linear: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Scale magnitudes by 10^(gain/20); ``gain_db`` is [B] (loudness) or [B, n_bins] (filter)."""
    factor = torch.pow(10.0, gain_db.to(linear) / 20)
    return linear * (factor[:, None, None] if factor.dim() == 1 else factor[:, None, :])


def apply_mix(linear: torch.Tensor, partners: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """C = (1 - f) A + f B per example; f = 0 leaves A unchanged."""
    f = fraction.to(linear)[:, None, None]
    return (1 - f) * linear + f * partners


def augment_excerpts(linear: torch.Tensor, draw: AugmentDraw, *, config: AugmentConfig,
                     features: FeatureConfig, normalization: Normalization,
                     excerpt_frames: int = ModelConfig.excerpt_frames,
                     partners: torch.Tensor | None = None,
                     input_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Apply a draw in SPEC §5 order; returns standardized log-mel ``[B, excerpt_frames, n_mels]``.

    ``linear`` holds source excerpts ``[B, source_frames, n_bins]`` centred on the labelled frame;
    ``partners`` holds non-voice excerpts ``[B, excerpt_frames, >= n_mel_input_bins]`` for the
    examples with ``draw.mix_partner >= 0`` (rows of the others are ignored).
    ``input_transform`` (engine.frontend.crop_transform) maps the log-mel of wider excerpts
    (``excerpt_frames`` then counts their extra frames) to the network's excerpts before
    standardization; dropout and noise then apply to those.
    """
    draw = draw.to(linear.device)
    out_bins = features.n_mel_input_bins
    if config.max_pitch or config.max_stretch:
        x = warp(linear, draw.pitch_factor, draw.stretch_factor, out_frames=excerpt_frames, out_bins=out_bins)
    else:
        x = crop_centre(linear, out_frames=excerpt_frames, out_bins=out_bins)
    if config.max_loudness_db:
        x = apply_gain_db(x, draw.loudness_db)
    if config.max_filter_db:
        freqs = torch.arange(out_bins, device=x.device, dtype=x.dtype) * features.bin_hz
        x = apply_gain_db(x, filter_response_db(draw, freqs))
    # Skipping the mix when nobody is mixed saves work on a CPU; on a GPU the test itself would be
    # a host sync, and mixing with f = 0 gives A exactly ((1 - 0) A + 0 B), so always mix there.
    if config.mix_probability and partners is not None and (
            x.device.type != "cpu" or bool((draw.mix_partner >= 0).any())):
        x = apply_mix(x, partners[:, :, :out_bins].to(x), draw.mix_fraction)
    x = log_compress(linear_to_mel(x, features), features)
    x = normalization.apply(input_transform(x) if input_transform is not None else x)
    if config.dropout_probability:
        x = x.masked_fill(draw.dropout_mask, 0.0)
    if config.noise_sigma:
        x = x + draw.noise.to(x)
    return x


def _mix_text(draw: AugmentDraw, i: int, brief: bool) -> str:
    if int(draw.mix_partner[i]) < 0:
        return "no mix"
    return f"{'' if brief else 'mix '}f={float(draw.mix_fraction[i]):.2f}"


# How each augmentation's drawn value reads, by its --augment name (engine.augment_specs): in words
# (brief=False: titles, the CLI, the preview's caption) or briefly (brief=True: grid cell titles).
_DRAWN_TEXT = {
    "pitch": lambda d, i, brief: f"{'p' if brief else 'pitch '}×{float(d.pitch_factor[i]):.2f}",
    "stretch": lambda d, i, brief: f"{'s' if brief else 'stretch '}×{float(d.stretch_factor[i]):.2f}",
    "loudness": lambda d, i, brief: f"{'' if brief else 'loudness '}{float(d.loudness_db[i]):+.1f} dB",
    "filter": lambda d, i, brief: (
        f"{float(d.filter_db[i]):+.1f} dB@{float(d.filter_centre_hz[i]):.0f} Hz" if brief else
        f"filter {float(d.filter_db[i]):+.1f} dB at {float(d.filter_centre_hz[i]):.0f} Hz, "
        f"width {float(d.filter_width_semitones[i]):.1f} st"),
    "mix": _mix_text,
    "dropout": lambda d, i, brief: (f"{'' if brief else 'dropout '}"
                                    f"{100 * float(d.dropout_mask[i].float().mean()):.{0 if brief else 1}f} % zeroed"),
    "noise": None,  # the strength itself (σ): nothing is drawn per example worth printing
    "remix": lambda d, i, brief: (
        ("no remix" if brief else "not remixed") if d.remixed is None or not bool(d.remixed[i]) else
        f"{'' if brief else 'remix '}{float(d.remix_ratio_db[i]):+.1f} dB{'' if brief else ' vocals'}, "
        f"{float(d.remix_gain_db[i]):+.1f} dB"),
}


def drawn_values(draw: AugmentDraw, config: AugmentConfig, i: int = 0, *, brief: bool = False) -> dict[str, str]:
    """Example ``i``'s drawn value of each switched-on augmentation, as text, by --augment name (table order)."""
    texts = {}
    for spec in AUGMENT_SPECS:
        strength = getattr(config, spec.field)
        if strength:
            text = _DRAWN_TEXT[spec.short]
            texts[spec.short] = text(draw, i, brief) if text else f"{spec.short} {spec.symbol}={strength:g}"
    return texts


def describe_draw(draw: AugmentDraw, config: AugmentConfig, i: int = 0, *, partner_name: str = "") -> str:
    """The drawn values of example ``i`` in the words users think in (for titles and the GUI)."""
    texts = drawn_values(draw, config, i)
    if partner_name and texts.get("mix", "no mix") != "no mix":
        texts["mix"] += f" with {partner_name}"
    return ", ".join(texts.values()) or "no augmentation"

