"""`svgui-engine`: train, predict, evaluate, inspect and benchmark from the command line.

Each subcommand parses its arguments and calls the engine; bad input ends with a one-line
``error: ...`` and exit status 1 (``--verbose`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from engine.errors import EngineError
from engine.warning_format import use_plain_warnings

EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__
    from engine.export import FORMATS

    parser = argparse.ArgumentParser(prog="svgui-engine", description=(
        "Singing voice detection after Schlüter & Grill (ISMIR 2015): train the CNN, "
        "predict voice regions, evaluate, benchmark."))
    parser.add_argument("--version", action="version", version=f"svgui-engine {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser("train", help="train a network on labelled audio",
                           description="Train the CNN (the paper's settings by default).")
    train.add_argument("--train", required=True, type=Path, metavar="DIR",
                       help="folder of audio files with .lab/.txt labels beside them, or a Jamendo corpus root")
    train.add_argument("--valid", type=Path, metavar="DIR", help="validation folder (threshold and figures)")
    train.add_argument("--valid-fraction", type=float, default=0.0, metavar="F",
                       help="hold out this fraction of the training files for validation (seeded)")
    train.add_argument("--out", required=True, type=Path, metavar="MODEL", help="model file to write (.safetensors)")
    train.add_argument("--updates", type=int, metavar="N",
                       help="weight updates (default 40000; with --init 200)")
    train.add_argument("--seed", type=int, default=0, help="seed for initialisation, sampling, dropout")
    train.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    _add_precision(train)
    train.add_argument("--batch-size", type=int, default=32, metavar="N")
    train.add_argument("--learning-rate", type=float, metavar="LR",
                       help="initial learning rate (default 0.01, with --optimizer adam 0.001; with --init 0.1 x "
                            "the parent's)")
    train.add_argument("--validate-every", type=int, metavar="N",
                       help="updates between validations (0: only at the end; default 2000, with --init 100)")
    train.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="updates between checkpoints (MODEL.checkpoint.safetensors; default 500, with --init 100)")
    train.add_argument("--init", type=Path, metavar="MODEL",
                       help="fine-tune: start from this model's weights and normalization (its own feature and "
                            "network settings), with a short schedule at a lower learning rate; the new file "
                            "records MODEL as its parent")
    train.add_argument("--freeze", choices=("none", "features"),
                       help="with --init: 'features' (the default) keeps the parent's convolutional layers and "
                            "trains the dense ones, 'none' trains all")
    train.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                       help="draw excerpts voiced and unvoiced at their centre in equal shares (default: on with "
                            "--init, else off)")
    train.add_argument("--resume", type=Path, metavar="CHECKPOINT", help="continue from a checkpoint")
    train.add_argument("--name", default="", help="model name recorded in the file")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing svgui model at --out (a file that is not a model is never replaced)")
    train.add_argument("--augment", metavar="SPEC",
                       help="augmentations on the fly: 'paper' (pitch 0.3, stretch 0.3, filter 10 dB), 'none', "
                            "or e.g. pitch=0.3,stretch=0.3,filter=10,loudness=10,mix=0.5,dropout=0.1,noise=0.2 "
                            "(default none; with --init the parent's); remix=0.5 remixes files with stems "
                            "(NAME (accompaniment).flac beside NAME.flac, or MUSDB18-HQ folders)")
    _add_recipe(train)
    train.set_defaults(run=run_train)

    predict = sub.add_parser("predict", help="predict voice regions of files or folders",
                             description="Predict per-frame voice probabilities and write one output per input.")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders")
    predict.add_argument("--model", type=Path, help="model file (default: the bundled model)")
    predict.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    predict.add_argument("--format", default="lab", choices=sorted(FORMATS),
                         help="output format (default lab); outputs are named SONG.pred.lab, SONG.pred.txt, ...")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace files at the output names that svgui-predictions.json does not record as "
                              "predictions (without it, predict refuses before decoding anything)")
    predict.add_argument("--tta", action="store_true", help="test-time augmentation (5 pitch shifts)")
    predict.add_argument("--threshold", type=float, help="override the model's threshold")
    predict.add_argument("--device", default="auto")
    _add_precision(predict)
    predict.add_argument("--ray-address", metavar="ADDRESS",
                         help="predict on Ray: 'local' (a new instance here), 'auto' or HOST:PORT of a cluster whose "
                              "nodes share the audio and --out folders; skips files already predicted with the same "
                              "model and settings (needs pip install \".[cluster]\")")
    predict.add_argument("--workers", type=int, metavar="N",
                         help="with --ray-address: models running at once (default: one per GPU, else one per "
                              "--threads CPUs of the cluster)")
    predict.add_argument("--threads", type=int, metavar="N",
                         help="with --ray-address: torch threads per worker (default 1)")
    predict.set_defaults(run=run_predict)

    evaluate = sub.add_parser("evaluate", help="score a model on labelled audio",
                              description="Pooled error, recall, specificity, precision, F1 and per-file figures.")
    evaluate.add_argument("--model", type=Path, help="model file (default: the bundled model)")
    evaluate.add_argument("--data", required=True, type=Path, metavar="DIR",
                          help="labelled folder, or a Jamendo root (its test split)")
    evaluate.add_argument("--valid", type=Path, metavar="DIR",
                          help="choose the threshold on this labelled folder instead of the model's")
    evaluate.add_argument("--tta", action="store_true", help="test-time augmentation")
    evaluate.add_argument("--collar", type=float, default=0.0, metavar="S",
                          help="ignore frames within S seconds of a true boundary")
    evaluate.add_argument("--gains", metavar="DB,DB,...",
                          help="also score with the input scaled by each gain (e.g. -18,-12,-6,0,6; within ±60 dB), "
                               "at the same threshold, and report the error spread (worst minus best)")
    evaluate.add_argument("--snr", metavar="DB,DB,...",
                          help="stem data only: also score with each song's vocals re-mixed at each "
                               "vocal-to-accompaniment ratio (e.g. -12,-6,0,6)")
    evaluate.add_argument("--vocals-alone", metavar="DBFS,DBFS,...",
                          help="stem data only: also score each song's vocals without accompaniment, scaled so "
                               "that its voiced frames are at each level in dBFS (e.g. -36,-24,-12): quiet "
                               "unaccompanied singing")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.add_argument("--device", default="auto")
    _add_precision(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    augment = sub.add_parser("augment", help="write an excerpt before and after augmentation (PNG or .npy)",
                             description="Cut the 115-frame excerpt centred at --at, augment it exactly as "
                                         "training does with --seed, write both side by side.")
    augment.add_argument("audio", type=Path, metavar="AUDIO")
    augment.add_argument("--at", required=True, type=float, metavar="SECONDS", help="centre of the excerpt")
    augment.add_argument("--out", required=True, type=Path, metavar="FILE", help="FILE.png or FILE.npy")
    augment.add_argument("--seed", type=int, default=0)
    augment.add_argument("--augment", default="", metavar="SPEC", help="as for train (e.g. 'paper')")
    for short, unit in (("pitch", "fraction, 0.3 = ±30 %%"), ("stretch", "fraction"), ("loudness", "dB"),
                        ("filter", "dB"), ("mix", "probability"), ("dropout", "probability"), ("noise", "sigma"),
                        ("remix", "probability; needs stems beside AUDIO")):
        augment.add_argument(f"--{short}", type=float, metavar="X", help=f"{short} strength ({unit})")
    augment.add_argument("--mix-with", type=Path, metavar="AUDIO",
                         help="partner file for mixing (default: the same file; non-voice frames if labelled)")
    augment.add_argument("--model", type=Path, help="use this model's normalization (default: the file's own)")
    augment.set_defaults(run=run_augment)

    info = sub.add_parser("info", help="show a model file's settings and metadata")
    info.add_argument("model", type=Path)
    info.set_defaults(run=run_info)

    cache = sub.add_parser("cache", help="show or empty the spectrogram cache",
                           description="The spectrogram cache ($SVGUI_CACHE_DIR, else ~/.cache/svgui/spectrograms) "
                                       "keeps decoded spectrograms; at most $SVGUI_CACHE_MAX_GB (default 8) GB, "
                                       "least recently used first out.")
    cache.add_argument("action", choices=("info", "clear"),
                       help="info: folder, entries, size, limit; clear: delete every entry")
    cache.add_argument("--json", action="store_true", help="info as JSON")
    cache.set_defaults(run=run_cache)

    experiment = sub.add_parser(
        "experiment", help="run a study of many trainings from a plan (the paper's Figure 2, Tables 1-2)",
        description="Train every variant x repetition (x fold) of PLAN.toml, choose each threshold on "
                    "validation, evaluate on test, and write results.csv/.md, table1.md and figure2.png/.svg. "
                    "Resumable: finished runs are skipped; failed runs are recorded and run again next time.")
    experiment.add_argument("plan", type=Path, metavar="PLAN.toml")
    experiment.add_argument("--out", type=Path, metavar="DIR",
                            help="study folder (default: studies/<plan file name> in the current folder)")
    where = experiment.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    where.add_argument("--ray-address", metavar="ADDRESS",
                       help="run on Ray: 'local' (a new instance here), 'auto' or HOST:PORT of a cluster "
                            "(needs pip install \".[cluster]\")")
    experiment.add_argument("--threads", type=int, metavar="N",
                            help="torch threads per run (default: the cores / workers; 1 on Ray)")
    experiment.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    _add_precision(experiment, default=None, extra=" (default: the plan's [train] precision, else auto)")
    experiment.add_argument("--report-only", action="store_true",
                            help="write the tables and figure from the runs finished so far, train nothing")
    experiment.add_argument("--dry-run", action="store_true", help="list the runs and their state, train nothing")
    experiment.set_defaults(run=run_experiment)

    bench = sub.add_parser("bench", help="measure feature and prediction speed on this machine",
                           description="Speed benchmark of prediction and training (see bench/speed.py).")
    bench.add_argument("--seconds", type=float, default=180.0, help="audio length to time (default 180)")
    bench.add_argument("--excerpt-seconds", type=float, default=20.0,
                       help="audio length for the slow excerpt-wise reference (default 20)")
    bench.add_argument("--memory-hours", type=float, default=0.0,
                       help="also measure peak memory predicting a file this long (e.g. 1)")
    bench.add_argument("--no-training", dest="training", action="store_false",
                       help="skip timing training updates with and without augmentation")
    bench.add_argument("--device", default="auto", help="device for the training timings")
    _add_precision(bench, default=None, extra=" (default: time fp32 and auto side by side)")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(run=run_bench)
    return parser


def _add_recipe(parser: argparse.ArgumentParser) -> None:
    """The network and training variants (README "Network and training variants"); defaults: the paper's."""
    from engine.config import ARCHITECTURES, FIRST_CONVS, INPUT_NORMS, OPTIMIZERS

    group = parser.add_argument_group("network and training variants (a new model only; default: the paper's)")
    group.add_argument("--architecture", choices=ARCHITECTURES,
                       help="paper (the paper's network) or thesis (batch norm everywhere, a fifth convolution; Schlüter's thesis)")
    group.add_argument("--optimizer", choices=OPTIMIZERS,
                       help="sgd-nesterov (0.01 x 0.85 every 2000 updates) or adam (0.001 x 0.85 every 2000 updates)")
    group.add_argument("--input-norm", choices=INPUT_NORMS,
                       help="fixed (training-set statistics per band), instance (each frame standardized over the "
                            "excerpt-long window around it: level invariant) or pcen")
    group.add_argument("--first-conv", choices=FIRST_CONVS,
                       help="plain, or zero-mean (each first-layer kernel sums to zero: an input gain cancels)")


def _add_precision(parser: argparse.ArgumentParser, *, default: str | None = "auto", extra: str = "") -> None:
    from engine.config import PRECISIONS

    parser.add_argument("--precision", default=default, choices=PRECISIONS,
                        help="network arithmetic: auto (bf16 where this CPU/GPU runs it natively and faster, "
                             "else fp32), fp32, bf16 (emulated, a little slower than fp32, on CPUs without AMX/AVX-512 BF16), "
                             "fp16 (CUDA only)" + extra)


def main(argv: list[str] | None = None) -> int:
    use_plain_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except EngineError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        from engine.signals import EXIT_TERMINATED, Terminated

        print("interrupted" + (" (SIGTERM)" if isinstance(exc, Terminated) else ""), file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else 130


def _model_path(path: Path | None) -> Path:
    from engine.resources import bundled_model_path

    if path is not None:
        return path
    bundled = bundled_model_path()
    if bundled is None:
        raise EngineError("no --model given and no bundled model found in resources/models/")
    return bundled


def run_train(args) -> int:
    from engine.commands import train_command
    from engine.signals import sigterm_as_interrupt

    with sigterm_as_interrupt():  # a scheduler's SIGTERM saves a checkpoint as Ctrl+C does
        return train_command(args)


def run_predict(args) -> int:
    from engine.commands import predict_command
    return predict_command(args, _model_path(args.model))


def run_evaluate(args) -> int:
    from engine.commands import evaluate_command
    return evaluate_command(args, _model_path(args.model))


def run_augment(args) -> int:
    from engine.commands import augment_command
    return augment_command(args)


def run_cache(args) -> int:
    from engine.cache_command import cache_command
    return cache_command(args)


def run_info(args) -> int:
    from engine.checkpoint import describe_model, load_model

    load_model(args.model)  # full validation, not just the header
    print(describe_model(args.model))
    return 0


def run_experiment(args) -> int:
    from engine.experiments.command import experiment_command
    from engine.signals import sigterm_as_interrupt

    with sigterm_as_interrupt():  # a SIGTERM ends the study as Ctrl+C does: runs keep their checkpoints
        return experiment_command(args)


def run_bench(args) -> int:
    from engine.bench import format_report, run_speed_benchmark
    from engine.bench_train import format_training_report, run_training_benchmark

    report = run_speed_benchmark(seconds=args.seconds, excerpt_seconds=args.excerpt_seconds,
                                 memory_hours=args.memory_hours, precision=args.precision, device=args.device)
    training = (run_training_benchmark(device=args.device, precision=args.precision)
                if args.training else None)
    if args.json:
        print(json.dumps({**report, "training": training}, indent=2))
    else:
        print(format_report(report))
        if training:
            print(format_training_report(training))
    return 0


if __name__ == "__main__":
    sys.exit(main())
