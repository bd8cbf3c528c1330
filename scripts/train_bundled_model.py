"""Train the model bundled in resources/models/ on the real labelled audio of ../shared/data.

Data: musdb7-train (94 seven-second MUSDB18 mixes + the same music without voice),
instrumentals/ and the two demo instrumentals. A seeded validation split by *song* keeps a mix
and its accompaniment on the same side. The defaults are the bundled model's recipe (its card:
resources/models/README.md): the thesis network with a zero-mean first convolution, Adam, the
paper's augmentation plus loudness and stem remixing. The schedule is shortened proportionally when
fewer than 40,000 updates are asked for (learning-rate decay every updates/20 instead of every
2000), since the full schedule takes hours on a CPU.

    python scripts/train_bundled_model.py --overwrite           # the bundled model (6,000 updates)
    python scripts/train_bundled_model.py --architecture paper --optimizer sgd-nesterov \
        --first-conv plain --augment paper --updates 4000 --name svgui-musdb7 \
        --out svgui-musdb7.safetensors                           # the previous one (paper recipe)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from engine.cache import SpectrogramCache
from engine.checkpoint import check_model_output, load_model, save_model
from engine.config import (
    ARCHITECTURES,
    FIRST_CONVS,
    INPUT_NORMS,
    OPTIMIZERS,
    AugmentConfig,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
)
from engine.datasets import Track, find_tracks, load_tracks
from engine.errors import EngineError
from engine.optim import default_learning_rate
from engine.predict import predict_linear
from engine.train import train

ACCOMPANIMENT = " (accompaniment)"


def song_of(track: Track) -> str:
    return track.name.replace(ACCOMPANIMENT, "")


def split_by_song(tracks: list[Track], *, valid_fraction: float, seed: int) -> tuple[list[Track], list[Track]]:
    """Seeded split of the musdb songs; a mix and its accompaniment stay together."""
    songs = sorted({song_of(t) for t in tracks})
    rng = np.random.default_rng(seed)
    chosen = set(rng.permutation(songs)[:max(1, round(valid_fraction * len(songs)))].tolist())
    return [t for t in tracks if song_of(t) not in chosen], [t for t in tracks if song_of(t) in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("resources/models/svgui-musdb7-robust.safetensors"))
    parser.add_argument("--updates", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--valid-fraction", type=float, default=0.15)
    parser.add_argument("--augment", default="pitch=0.3,stretch=0.3,filter=10,loudness=10,remix=0.5")
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="thesis")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--input-norm", choices=INPUT_NORMS, default="fixed")
    parser.add_argument("--first-conv", choices=FIRST_CONVS, default="zero-mean")
    parser.add_argument("--name", default="svgui-musdb7-robust")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model file at --out (the bundled one by default); without it an existing "
                             "file is refused before any training")
    args = parser.parse_args()
    check_model_output(args.out, overwrite=args.overwrite)  # refused before minutes of reading audio

    musdb = find_tracks(args.data / "musdb7-train")
    train_musdb, valid_musdb = split_by_song(musdb, valid_fraction=args.valid_fraction, seed=args.seed)
    instrumentals = find_tracks(args.data / "instrumentals")
    demo = [t for t in find_tracks(args.data / "demo") if "Fantasma" not in t.name]  # keep the sung demo unseen
    train_tracks = train_musdb + instrumentals + demo
    description = (f"musdb7-train ({len(train_musdb)} files) + instrumentals ({len(instrumentals)}) + demo "
                   f"instrumentals ({len(demo)}); validation: {len(valid_musdb)} musdb7 files of "
                   f"{len({song_of(t) for t in valid_musdb})} songs held out by song (seed {args.seed})")
    print(description, flush=True)
    features, cache = FeatureConfig(), SpectrogramCache()
    train_data = load_tracks(train_tracks, config=features, cache=cache)
    valid_data = load_tracks(valid_musdb, config=features, cache=cache)
    scale = args.updates / 40_000
    config = TrainConfig(updates=args.updates, seed=args.seed, lr_decay_every=max(1, round(2000 * scale)),
                         validate_every=max(1, round(2000 * scale)) * 2, checkpoint_every=250,
                         optimizer=args.optimizer, learning_rate=default_learning_rate(args.optimizer))
    model_config = ModelConfig(architecture=args.architecture, input_norm=args.input_norm, first_conv=args.first_conv)
    for progress in train(train_data=train_data, valid_data=valid_data, out_path=args.out, config=config,
                          model_config=model_config, augment=AugmentConfig.parse(args.augment), device=args.device,
                          resume_from=args.resume,
                          data_description=description, name=args.name,
                          overwrite=args.overwrite):
        if progress.update % 50 == 0 or progress.validation is not None:
            line = f"update {progress.update}/{progress.total_updates} loss {progress.loss:.4f} " \
                   f"lr {progress.learning_rate:.2e} {progress.elapsed_s:.0f}s"
            if progress.validation is not None:
                v = progress.validation
                line += f" | valid error {100 * v.error:.2f} % recall {100 * v.recall:.1f} % spec {100 * v.specificity:.1f} %"
            print(line, flush=True)

    # Store half precision (under 6 MB) if predictions stay within 1e-3 of float32.
    full = load_model(args.out)
    full.metadata["validation_songs"] = sorted({song_of(t) for t in valid_musdb})
    full.metadata["schedule"] = (f"{args.updates} updates, learning rate x{config.lr_decay} every "
                                 f"{config.lr_decay_every} (the paper's 40,000 / 2000 scaled by {scale:g})")
    half_path = args.out.with_suffix(".half.tmp")
    save_model(half_path, full, half=True)
    half = load_model(half_path)
    worst = max(np.abs(predict_linear(full, d.linear) - predict_linear(half, d.linear)).max() for d in valid_data)
    print(f"half precision: max |probability difference| {worst:.2e}")
    if worst <= 1e-3:
        half_path.replace(args.out)
    else:
        half_path.unlink()
        save_model(args.out, full)
    print(f"written {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        sys.exit(main())
    except EngineError as exc:  # a refused --out, unreadable data: the reason, not a traceback
        sys.exit(f"error: {exc}")
