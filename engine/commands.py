"""The work behind `svgui-engine train|predict|evaluate`: engine calls plus terminal output."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.batch_predict import (
    BatchDone,
    evaluation_tracks,
    export_info,
    find_audio_files,
    predict_files,
    prepare_outputs,
)
from engine.cache import SpectrogramCache
from engine.checkpoint import load_model
from engine.config import AugmentConfig, EvalConfig, ModelConfig, PredictConfig, TrainConfig
from engine.datasets import load_tracks, resolve_training_data
from engine.devices import describe_device, pick_device
from engine.errors import EngineError, OverwriteRefused
from engine.evaluate import evaluate, find_best_threshold
from engine.optim import default_learning_rate
from engine.predict import predict_linear
from engine.signals import EXIT_TERMINATED, Terminated


def _load_with_bar(tracks, features, cache: SpectrogramCache, what: str):
    bar = tqdm(total=len(tracks), desc=f"reading {what}", unit="file", leave=False, file=sys.stderr)

    def step(done, total, track):
        bar.update(1)
    try:
        return load_tracks(tracks, config=features, cache=cache, on_progress=step)
    finally:
        bar.close()


def _format_validation(v) -> str:
    from engine.evaluate import format_percent as pct  # one-class data has no recall or specificity: n/a
    return (f"update {v.update}: error {pct(v.error)}, recall {pct(v.recall)}, "
            f"specificity {pct(v.specificity)} (threshold {v.threshold:.3g})")


def tune_from_args(args):
    """--freeze/--balance over the fine-tuning defaults (with --init) or over none of them."""
    from engine.finetune import DEFAULT_TUNE, TuneOptions

    base = DEFAULT_TUNE if args.init is not None else TuneOptions()
    freeze, balance = getattr(args, "freeze", None), getattr(args, "balance", None)
    return TuneOptions(freeze=base.freeze if freeze is None else freeze,
                       balance=base.balance if balance is None else balance)


def train_command(args) -> int:
    from engine.checkpoint import check_model_output, read_resume_settings
    from engine.config import FeatureConfig
    from engine.train import find_checkpoints, train

    check_model_output(args.out, overwrite=args.overwrite)  # before hours of reading and training
    given = {k: v for k, v in (("updates", args.updates), ("learning_rate", args.learning_rate),
                               ("validate_every", args.validate_every),
                               ("checkpoint_every", args.checkpoint_every)) if v is not None}
    features = FeatureConfig()
    model_config = ModelConfig()
    if args.init is not None or args.resume is not None:
        recipe_from_args(args, allowed=False)
    if args.init is not None:  # fine-tuning: the parent's features, short schedule, lower rate, its augmentation
        from engine.finetune import finetune_config

        if args.resume is not None:
            raise EngineError("--init and --resume exclude each other: a fine-tuning checkpoint records its parent")
        features = load_model(args.init).features  # full validation before reading any audio
        config = finetune_config(args.init, seed=args.seed, batch_size=args.batch_size, precision=args.precision,
                                 **given)
        augment = None if args.augment is None else AugmentConfig.parse(args.augment)  # None: the parent's
        tune = tune_from_args(args)
    else:
        augment = AugmentConfig.parse(args.augment or "none")
        model_config, optimizer = recipe_from_args(args)
        given.setdefault("learning_rate", default_learning_rate(optimizer))
        config = TrainConfig(seed=args.seed, batch_size=args.batch_size, precision=args.precision,
                             optimizer=optimizer, **given)
        if args.resume is None and getattr(args, "freeze", None) not in (None, "none"):
            raise EngineError("--freeze needs --init MODEL: only a trained model's layers can be kept")
        tune = tune_from_args(args) if args.resume is None else None  # a resumed run keeps its own
    device = pick_device(args.device)
    if args.resume is not None:
        settings = read_resume_settings(args.resume)
        features, resumed = settings.features, settings.augment
        if (args.augment or "none").lower() != "none" and augment != resumed:
            raise EngineError(f"a resumed run keeps the augmentation it started with ({resumed.describe()}); "
                              f"drop --augment or start a new run")
        augment = resumed
    train_tracks, valid_tracks, description = resolve_training_data(
        args.train, valid_path=args.valid, valid_fraction=args.valid_fraction, seed=args.seed)
    if args.init is not None:
        from engine.finetune import check_finetune_count, parent_augment_for

        check_finetune_count([t.name for t in train_tracks + valid_tracks])  # before reading any audio
        if augment is None:
            augment, note = parent_augment_for(args.init, train_tracks)
            if note:
                print(f"note: {note}", file=sys.stderr)
        print(f"fine-tuning {args.init}: {config.updates:,} updates from learning rate {config.learning_rate:g}, "
              f"{tune.describe()}", file=sys.stderr)
    print(f"data: {description}", file=sys.stderr)
    print(f"device: {describe_device(device)}", file=sys.stderr)
    if args.resume is None:  # a resumed run keeps the precision recorded in its checkpoint
        _show_precision(args.precision, device, "train")
    print(f"augmentation: {augment.describe()}", file=sys.stderr)
    cache = SpectrogramCache()
    train_data = _load_with_bar(train_tracks, features, cache, "training files")
    valid_data = _load_with_bar(valid_tracks, features, cache, "validation files")
    bar = tqdm(total=config.updates, desc="training", unit="upd", file=sys.stderr, dynamic_ncols=True)
    last = None
    steps = train(train_data=train_data, valid_data=valid_data, out_path=args.out, config=config,
                  features=features, device=str(device), resume_from=args.resume, model_config=model_config,
                  data_description=description, name=args.name, augment=augment, overwrite=args.overwrite,
                  init_from=args.init, tune=tune)
    try:  # the caller (cli.run_train) turns SIGTERM into a KeyboardInterrupt too
        try:
            for progress in steps:
                _show_training_progress(bar, progress)
                last = progress
        finally:
            steps.close()  # an interrupted run saves its checkpoint here
    except KeyboardInterrupt as exc:
        bar.close()
        kept = find_checkpoints(args.out)
        where = (f"checkpoint {kept[0]} kept; continue with --resume {kept[0]}" if kept
                 else "no checkpoint was written yet")
        print(f"\ninterrupted ({'SIGTERM' if isinstance(exc, Terminated) else 'Ctrl+C'}): {where}", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else 130
    finally:
        bar.close()
    figures = last.validation
    source = "validation" if valid_data else "training"
    print(f"final ({source} data): {_format_validation(figures)}")
    print(f"model written to {args.out} ({last.elapsed_s:.0f} s)")
    return 0


RECIPE_FLAGS = (("architecture", "--architecture"), ("optimizer", "--optimizer"), ("input_norm", "--input-norm"),
                ("first_conv", "--first-conv"))


def recipe_from_args(args, *, allowed: bool = True) -> tuple[ModelConfig, str]:
    """The network variant and optimizer of `train`'s recipe flags (unset: the paper's).

    A resumed or fine-tuned run keeps its model's recipe: a flag given then is an error."""
    given = {key: getattr(args, key, None) for key, _ in RECIPE_FLAGS if getattr(args, key, None) is not None}
    if given and not allowed:
        flags = ", ".join(flag for key, flag in RECIPE_FLAGS if key in given)
        raise EngineError(f"{flags}: a resumed or fine-tuned run keeps its model's network and optimizer")
    optimizer = given.pop("optimizer", TrainConfig.optimizer)
    return ModelConfig(**given), optimizer


def _show_training_progress(bar, progress) -> None:
    if progress.note:
        tqdm.write(f"note: {progress.note}", file=sys.stderr)
    if bar.n == 0 and progress.update > 1:
        bar.update(progress.update - 1)  # resumed run
    if not progress.finished:
        bar.update(1)
        bar.set_postfix(loss=f"{progress.loss:.4f}", lr=f"{progress.learning_rate:.2g}", refresh=False)
    if progress.validation is not None and not progress.finished:
        tqdm.write(_format_validation(progress.validation), file=sys.stderr)


def _show_precision(requested: str, device, workload: str) -> str:
    """Resolve ``requested`` (auto may calibrate once per machine) and say what it became."""
    from engine.precision import choose_precision

    choice = choose_precision(requested, device, workload=workload)
    if not choice.native:
        print(f"warning: {choice.note}", file=sys.stderr)
    elif choice.precision != "fp32":  # plain fp32, the exact reference, goes without saying
        print(f"precision: {choice.note}", file=sys.stderr)
    return choice.precision


def predict_command(args, model_path: Path) -> int:
    if args.ray_address:  # the same outputs, from the workers of a Ray cluster; resumable
        from engine.cluster_predict import cluster_predict_command
        return cluster_predict_command(args, model_path)
    if args.workers is not None or args.threads is not None:
        raise EngineError("--workers and --threads are for --ray-address (use --ray-address local on this machine)")
    model = load_model(model_path, device=pick_device(args.device))  # a bad model file leaves no output folder
    threshold = model.threshold if args.threshold is None else args.threshold
    if not 0.0 <= threshold <= 1.0:
        raise EngineError(f"--threshold must be in [0, 1], got {threshold}")
    files, empty = find_audio_files(args.paths)
    for folder in empty:
        print(f"warning: no audio files in {folder}", file=sys.stderr)
    if not files:
        raise EngineError("no audio files to predict")
    try:  # the output folder and the files in the way, before any audio is decoded
        prepare_outputs(files, fmt=args.format, out_dir=args.out, overwrite=args.overwrite)
    except OverwriteRefused as exc:
        raise EngineError(f"{exc}; pass --overwrite to replace them, or choose another --out") from None
    _show_precision(args.precision, model.device, "predict")
    info = export_info(model, threshold=threshold, tta=args.tta)
    failures = 0
    with tqdm(total=len(files), desc="predicting", unit="file", file=sys.stderr, leave=False) as bar:
        for outcome in predict_files(model, files, fmt=args.format, out_dir=args.out, info=info,
                                     overwrite=args.overwrite, config=PredictConfig(precision=args.precision)):
            if isinstance(outcome, BatchDone):
                break
            bar.update(1)
            if outcome.ok:
                tqdm.write(f"{outcome.source} -> {outcome.output} ({100 * outcome.voiced_fraction:.0f} % voice)",
                           file=sys.stderr)
            else:
                failures += 1
                tqdm.write(f"error: {outcome.error}", file=sys.stderr)
    done = len(files) - failures
    print(f"{done} of {len(files)} file(s) predicted into {args.out}" + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0


def evaluate_command(args, model_path: Path) -> int:
    from engine.robustness import parse_vocal_levels_dbfs
    from engine.stems import parse_levels_db

    # Bad levels end the command before any file is read.
    gains = parse_levels_db(args.gains, what="--gains") if getattr(args, "gains", None) else ()
    ratios = parse_levels_db(args.snr, what="--snr") if getattr(args, "snr", None) else ()
    alone = parse_vocal_levels_dbfs(args.vocals_alone) if getattr(args, "vocals_alone", None) else ()
    model = load_model(model_path, device=pick_device(args.device))
    eval_config = EvalConfig(median_frames=model.eval_config.median_frames,
                             thresholds=model.eval_config.thresholds, collar_s=args.collar)
    factors = PredictConfig().pitch_factors(args.tta)
    precision = _show_precision(args.precision, model.device, "predict")
    cache = SpectrogramCache()

    def probabilities_of(tracks, what):
        data = _load_with_bar(tracks, model.features, cache, what)
        probs = [predict_linear(model, d.linear, pitch_factors=factors, precision=precision)
                 for d in tqdm(data, desc=f"predicting {what}", unit="file", leave=False, file=sys.stderr)]
        return data, probs

    tracks, description = evaluation_tracks(args.data)
    if ratios or alone:
        from engine.robustness import stem_tracks
        stem_tracks(tracks, "--snr" if ratios else "--vocals-alone")  # every mix has stems, before predicting
    threshold, threshold_source = model.threshold, "model"
    if args.valid is not None:
        valid_tracks, _ = evaluation_tracks(args.valid, split="valid")
        valid_data, valid_probs = probabilities_of(valid_tracks, "validation files")
        threshold, _ = find_best_threshold(valid_probs, [d.targets for d in valid_data], config=eval_config,
                                           frames_per_second=model.features.frames_per_second)
        threshold_source = f"chosen on {args.valid}"
    data, probs = probabilities_of(tracks, "test files")
    result = evaluate(probs, [d.targets for d in data], [d.track.name for d in data], threshold=threshold,
                      config=eval_config, frames_per_second=model.features.frames_per_second)
    sweeps = _level_sweeps(model, data, probs, gains, ratios, alone, threshold=threshold, eval_config=eval_config,
                           pitch_factors=factors, precision=precision)
    if args.json:
        payload = {"model": str(model_path), "data": description, "tta": args.tta, "precision": precision,
                   "threshold_source": threshold_source, **result.to_dict(),
                   **{key: sweep.to_dict() for key, sweep in sweeps.items()}}
        print(json.dumps(payload, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    else:
        print(f"model: {model_path}\ndata: {description}\ntest-time augmentation: {'on' if args.tta else 'off'}")
        print(f"threshold: {threshold:.4g} ({threshold_source})")
        print(result.format_table())
        for key, sweep in sweeps.items():
            title = {"gains": "input gain", "snr": "vocals re-mixed (stems)", "vocals_alone": "vocals alone (stems)"}
            print(f"\n{title[key]}, threshold as above:")
            print(sweep.format_table())
    return 0


def _level_sweeps(model, data, probs, gains, ratios, alone, **options) -> dict:
    """{'gains', 'snr', 'vocals_alone': LevelSweep} for the levels asked, each with a progress bar."""
    from engine.robustness import stem_tracks, sweep_gains, sweep_ratios, sweep_vocals_alone

    def drain_with_bar(sweep, what):
        bar = tqdm(desc=f"predicting at each of the {what}", unit="file", leave=False, file=sys.stderr)
        try:
            while True:
                try:
                    step = next(sweep)
                except StopIteration as stop:
                    return stop.value
                bar.total = step.total
                bar.update(1)
        finally:
            bar.close()

    sweeps = {}
    if gains:
        sweeps["gains"] = drain_with_bar(sweep_gains(model, data, gains, at_zero=probs, **options), "gains")
    if ratios or alone:
        keep = {id(t) for t in stem_tracks([d.track for d in data], "--snr" if ratios else "--vocals-alone")}
        stem_data = [d for d in data if id(d.track) in keep]
        if ratios:
            sweeps["snr"] = drain_with_bar(sweep_ratios(model, stem_data, ratios, **options), "ratios")
        if alone:
            sweeps["vocals_alone"] = drain_with_bar(sweep_vocals_alone(model, stem_data, alone, **options),
                                                    "levels of the vocals alone")
    return sweeps


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
    remix = None
    if config.remix_probability:  # the file's own stems; the accompaniment from elsewhere in it
        from engine.remix import RemixPool
        from engine.stems import stems_of
        if stems_of(args.audio) is None:
            raise EngineError(f"--remix needs stems: no '{args.audio.stem} (accompaniment){args.audio.suffix}' "
                              f"beside {args.audio}")
        remix = RemixPool.for_file(data, source_frames=config.source_frames(ModelConfig().excerpt_frames),
                                   context=ModelConfig().context_frames, features=features)
    preview = preview_excerpt(data.linear, centre, config=config, seed=args.seed, features=features,
                              normalization=normalization, partner_linear=partner.linear,
                              partner_centres=candidates, partner_name=partner.track.audio_path.name, remix=remix)
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
