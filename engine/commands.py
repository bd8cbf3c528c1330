"""The work behind `svgui-engine train|predict|evaluate`: engine calls plus terminal output."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.audio import is_audio_path
from engine.cache import SpectrogramCache
from engine.checkpoint import file_sha256, load_model
from engine.config import AugmentConfig, EvalConfig, PredictConfig, TrainConfig
from engine.datasets import is_jamendo_layout, load_jamendo, load_tracks, resolve_dataset, resolve_training_data
from engine.devices import describe_device, pick_device
from engine.errors import EngineError
from engine.evaluate import evaluate, find_best_threshold, predicted_intervals
from engine.export import ExportInfo, manifest_entry, output_path, write_manifest, write_prediction
from engine.predict import predict_file, predict_linear


def _load_with_bar(tracks, features, cache: SpectrogramCache, what: str):
    bar = tqdm(total=len(tracks), desc=f"reading {what}", unit="file", leave=False, file=sys.stderr)

    def step(done, total, track):
        bar.update(1)
    try:
        return load_tracks(tracks, config=features, cache=cache, on_progress=step)
    finally:
        bar.close()


def _format_validation(v) -> str:
    return (f"update {v.update}: error {100 * v.error:.2f} %, recall {100 * v.recall:.2f} %, "
            f"specificity {100 * v.specificity:.2f} % (threshold {v.threshold:.3g})")


def train_command(args) -> int:
    from engine.checkpoint import read_header
    from engine.config import FeatureConfig
    from engine.train import train

    augment = AugmentConfig.parse(args.augment)
    config = TrainConfig(updates=args.updates, seed=args.seed, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, validate_every=args.validate_every,
                         checkpoint_every=args.checkpoint_every)
    device = pick_device(args.device)
    features = FeatureConfig()
    if args.resume is not None:
        from engine.config import config_from_dict
        header = read_header(args.resume)
        features = config_from_dict(FeatureConfig, header["features"])
        resumed = config_from_dict(AugmentConfig, (header.get("training") or {}).get("augment") or {})
        if args.augment.lower() != "none" and augment != resumed:
            raise EngineError(f"a resumed run keeps the augmentation it started with ({resumed.describe()}); "
                              f"drop --augment or start a new run")
        augment = resumed
    train_tracks, valid_tracks, description = resolve_training_data(
        args.train, valid_path=args.valid, valid_fraction=args.valid_fraction, seed=args.seed)
    print(f"data: {description}", file=sys.stderr)
    print(f"device: {describe_device(device)}", file=sys.stderr)
    print(f"augmentation: {augment.describe()}", file=sys.stderr)
    cache = SpectrogramCache()
    train_data = _load_with_bar(train_tracks, features, cache, "training files")
    valid_data = _load_with_bar(valid_tracks, features, cache, "validation files")
    bar = tqdm(total=config.updates, desc="training", unit="upd", file=sys.stderr, dynamic_ncols=True)
    last = None
    try:
        for progress in train(train_data=train_data, valid_data=valid_data, out_path=args.out, config=config,
                              features=features, device=str(device), resume_from=args.resume,
                              data_description=description, name=args.name, augment=augment):
            if bar.n == 0 and progress.update > 1:
                bar.update(progress.update - 1)  # resumed run
            if not progress.finished:
                bar.update(1)
                bar.set_postfix(loss=f"{progress.loss:.4f}", lr=f"{progress.learning_rate:.2g}", refresh=False)
            if progress.validation is not None and not progress.finished:
                tqdm.write(_format_validation(progress.validation), file=sys.stderr)
            last = progress
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: checkpoint kept for --resume", file=sys.stderr)
        return 130
    finally:
        bar.close()
    figures = last.validation
    source = "validation" if valid_data else "training"
    print(f"final ({source} data): {_format_validation(figures)}")
    print(f"model written to {args.out} ({last.elapsed_s:.0f} s)")
    return 0


def _expand_inputs(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_path(p)
                           and not p.name.startswith("."))
            if not found:
                print(f"warning: no audio files in {path}", file=sys.stderr)
            files.extend(found)
        else:
            files.append(path)
    return files


def _unique_output(out_dir: Path, source: Path, fmt: str, used: set[Path]) -> Path:
    """One output per input, named after it; same-named inputs from different folders get -2, -3."""
    target = output_path(out_dir, source, fmt)
    n = 2
    while target in used:
        target = output_path(out_dir, source.with_name(f"{source.stem}-{n}{source.suffix}"), fmt)
        n += 1
    used.add(target)
    return target


def predict_command(args, model_path: Path) -> int:
    model = load_model(model_path, device=pick_device(args.device))
    threshold = model.threshold if args.threshold is None else args.threshold
    if not 0.0 <= threshold <= 1.0:
        raise EngineError(f"--threshold must be in [0, 1], got {threshold}")
    files = _expand_inputs(args.paths)
    if not files:
        raise EngineError("no audio files to predict")
    info = ExportInfo(model_name=model.name, threshold=threshold, tta=args.tta,
                      frames_per_second=model.features.frames_per_second,
                      median_frames=model.eval_config.median_frames, model_sha256=file_sha256(model_path))
    entries, failures, used = [], 0, set()
    for source in tqdm(files, desc="predicting", unit="file", file=sys.stderr, leave=False):
        try:
            prediction = predict_file(model, source, tta=args.tta, config=PredictConfig())
            intervals = predicted_intervals(prediction.probabilities, threshold=threshold,
                                            frames_per_second=prediction.frames_per_second,
                                            median_frames=model.eval_config.median_frames)
            target = _unique_output(args.out, source, args.format, used)
            write_prediction(target, args.format, intervals=intervals, probabilities=prediction.probabilities,
                             duration_s=prediction.duration_s, info=info, name=source.name)
            voiced_s = sum(b - a for a, b in intervals)
            entries.append(manifest_entry(source, target, duration_s=prediction.duration_s,
                                          voiced_fraction=voiced_s / max(prediction.duration_s, 1e-9)))
            tqdm.write(f"{source} -> {target} ({100 * voiced_s / max(prediction.duration_s, 1e-9):.0f} % voice)",
                       file=sys.stderr)
        except EngineError as exc:
            failures += 1
            entries.append(manifest_entry(source, error=str(exc)))
            tqdm.write(f"error: {exc}", file=sys.stderr)
    write_manifest(args.out, info=info, fmt=args.format, entries=entries)
    done = len(files) - failures
    print(f"{done} of {len(files)} file(s) predicted into {args.out}" + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0


def _evaluation_tracks(path: Path) -> tuple[list, str]:
    if is_jamendo_layout(path):
        return load_jamendo(path).splits["test"], f"Jamendo test split at {path}"
    return resolve_dataset(path), f"folder {path}"


def evaluate_command(args, model_path: Path) -> int:
    model = load_model(model_path, device=pick_device(args.device))
    eval_config = EvalConfig(median_frames=model.eval_config.median_frames,
                             thresholds=model.eval_config.thresholds, collar_s=args.collar)
    factors = PredictConfig().tta_pitch_factors if args.tta else (1.0,)
    cache = SpectrogramCache()

    def probabilities_of(tracks, what):
        data = _load_with_bar(tracks, model.features, cache, what)
        probs = [predict_linear(model, d.linear, pitch_factors=factors)
                 for d in tqdm(data, desc=f"predicting {what}", unit="file", leave=False, file=sys.stderr)]
        return data, probs

    tracks, description = _evaluation_tracks(args.data)
    threshold, threshold_source = model.threshold, "model"
    if args.valid is not None:
        valid_tracks, _ = _evaluation_tracks(args.valid) if not is_jamendo_layout(args.valid) else \
            (load_jamendo(args.valid).splits["valid"], "")
        valid_data, valid_probs = probabilities_of(valid_tracks, "validation files")
        threshold, _ = find_best_threshold(valid_probs, [d.targets for d in valid_data], config=eval_config,
                                           frames_per_second=model.features.frames_per_second)
        threshold_source = f"chosen on {args.valid}"
    data, probs = probabilities_of(tracks, "test files")
    result = evaluate(probs, [d.targets for d in data], [d.track.name for d in data], threshold=threshold,
                      config=eval_config, frames_per_second=model.features.frames_per_second)
    if args.json:
        payload = {"model": str(model_path), "data": description, "tta": args.tta,
                   "threshold_source": threshold_source, **result.to_dict()}
        print(json.dumps(payload, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    else:
        print(f"model: {model_path}\ndata: {description}\ntest-time augmentation: {'on' if args.tta else 'off'}")
        print(f"threshold: {threshold:.4g} ({threshold_source})")
        print(result.format_table())
    return 0


def augment_command(args) -> int:
    import dataclasses

    from engine.config import FeatureConfig
    from engine.datasets import Track, load_track
    from engine.normalize import compute_normalization
    from engine.plots import save_excerpt_comparison
    from engine.preview import preview_excerpt

    suffix = args.out.suffix.lower()
    if suffix not in (".png", ".npy"):
        raise EngineError(f"--out must end in .png or .npy, got {args.out.name}")
    config = AugmentConfig.parse(args.augment)
    overrides = {AugmentConfig.SHORT_NAMES[k]: getattr(args, k) for k in AugmentConfig.SHORT_NAMES
                 if getattr(args, k) is not None}
    try:
        config = dataclasses.replace(config, **overrides)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    cache = SpectrogramCache()
    model = load_model(args.model) if args.model else None
    features = model.features if model else FeatureConfig()

    def labelled(path: Path):
        label = next((path.with_suffix(s) for s in (".lab", ".txt") if path.with_suffix(s).is_file()), None)
        return load_track(Track(path.stem, path, label), config=features, cache=cache)

    data = labelled(args.audio)
    normalization = model.normalization if model else compute_normalization([data.log_mel])
    if not 0 <= args.at <= data.duration_s:
        raise EngineError(f"--at {args.at} s is outside {args.audio} (0 to {data.duration_s:.2f} s)")
    # The last frame starts one window before the end: clamp times after it to that frame.
    centre = min(int(round(args.at * features.frames_per_second)), len(data.linear) - 1)
    partner = labelled(args.mix_with) if args.mix_with else data
    candidates = np.arange(len(partner.linear))
    if partner.targets is not None:
        candidates = candidates[~partner.targets]
    preview = preview_excerpt(data.linear, centre, config=config, seed=args.seed, features=features,
                              normalization=normalization, partner_linear=partner.linear,
                              partner_centres=candidates, partner_name=partner.track.audio_path.name)
    label = "" if data.targets is None else (" (voice)" if data.targets[centre] else " (no voice)")
    if suffix == ".npy":
        from engine.fileio import atomic_open
        with atomic_open(args.out, "wb") as handle:  # a file object: np.save adds no suffix
            np.save(handle, np.stack([preview.original, preview.augmented]))  # [2, frames, n_mels]
    else:
        save_excerpt_comparison(args.out, preview.original, preview.augmented, features=features,
                                title=f"{args.audio.name} @ {args.at:.2f} s{label}, seed {args.seed}",
                                subtitle=preview.description)
    print(f"{preview.description}\nwritten to {args.out}")
    return 0
