"""Robustness of a model on its own validation songs: error, recall, specificity per gain and per ratio.

    python bench/robustness.py [--model resources/models/svgui-musdb7-robust.safetensors]
        [--songs-from MODEL] [--data ../shared/data/musdb7-train] [--gains -18,-12,-6,0,6]
        [--snr -12,-6,0,6] [--vocals-alone -48,-36,-24,-12] [--json]

Links the model's ``validation_songs`` (its metadata) from ``--data`` into a temporary folder and
runs ``svgui-engine evaluate --gains ... --snr ... --vocals-alone ...`` on it (an empty value
leaves that sweep out), at the model's threshold (chosen at 0 dB):
the baseline table of issue 12 in the README and the model card.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from engine.checkpoint import load_model
from engine.cli import main as engine_main
from engine.resources import bundled_model_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    parser.add_argument("--songs-from", type=Path, metavar="MODEL",
                        help="take the validation songs from this model's metadata (default: --model's)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/musdb7-train")
    parser.add_argument("--gains", default="-18,-12,-6,0,6")
    parser.add_argument("--snr", default="-12,-6,0,6")
    parser.add_argument("--vocals-alone", default="-48,-36,-24,-12",
                        help="levels in dBFS of each song's vocals without accompaniment (quiet singing)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    songs_from = args.songs_from or args.model
    songs = load_model(songs_from).metadata.get("validation_songs")
    if not songs:
        sys.exit(f"{songs_from} records no validation_songs (give --songs-from the bundled model)")
    with tempfile.TemporaryDirectory() as folder:
        for path in sorted(args.data.iterdir()):
            if any(path.name.startswith(song + ".") or path.name.startswith(song + " (") for song in songs):
                os.symlink(path.resolve(), Path(folder) / path.name)
        argv = ["evaluate", "--model", str(args.model), "--data", folder, f"--gains={args.gains}",
                f"--snr={args.snr}", f"--vocals-alone={args.vocals_alone}", "--precision", "fp32"]
        argv += ["--json"] if args.json else []
        return engine_main(argv)


if __name__ == "__main__":
    sys.exit(main())
