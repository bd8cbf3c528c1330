"""Precision setting: auto's choice (native support, calibration, its cache), each path runs and is
recorded, bf16 agrees with fp32 on the demo song."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from engine import precision as precision_module
from engine.cache import SpectrogramCache
from engine.checkpoint import load_model
from engine.cli import main
from engine.config import FeatureConfig, ModelConfig, PredictConfig, TrainConfig, config_to_dict
from engine.datasets import find_tracks, load_tracks
from engine.errors import ConfigError
from engine.evaluate import smooth_probabilities
from engine.experiments.plan import plan_from_dict
from engine.precision import calibration_cache_path, choose_precision, cpu_features, time_workload
from engine.predict import predict_file
from engine.resources import bundled_model_path
from engine.train import train
from tests.synth import random_voiced, write_song

DEMO_SONG = "resources/demo/jamendolyrics_Fantasma_-_Los_Rombos_5-35s.flac"
SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


@pytest.fixture
def cpu_with(monkeypatch, tmp_path):
    """Pretend the CPU does (or does not) run bf16 natively; private cache, no in-process memo."""
    monkeypatch.setenv("SVGUI_PRECISION_CACHE", str(tmp_path / "cache" / "precision.json"))
    monkeypatch.setattr(precision_module, "_memo", {})

    def set_native(native: bool) -> None:
        features = {**cpu_features(), "native_bf16": native}
        monkeypatch.setattr(precision_module, "cpu_features", lambda: features)
        monkeypatch.setattr(precision_module, "_cpu_has_native_bf16", lambda: native)
    return set_native


def _timings(monkeypatch, fp32_s: float, bf16_s: float) -> list:
    calls = []

    def fake(workload, precision, **kwargs):
        calls.append((workload, precision))
        return fp32_s if precision == "fp32" else bf16_s
    monkeypatch.setattr(precision_module, "time_workload", fake)
    return calls


def test_auto_is_fp32_without_native_bf16_and_never_calibrates(cpu_with, monkeypatch):
    cpu_with(False)
    calls = _timings(monkeypatch, 1.0, 0.1)
    for workload in ("predict", "train"):
        choice = choose_precision("auto", "cpu", workload=workload)
        assert choice.precision == "fp32" and choice.native and "no native bf16" in choice.note
    assert calls == [] and not calibration_cache_path().exists()


def test_auto_calibrates_once_per_machine_and_caches_the_choice(cpu_with, monkeypatch):
    cpu_with(True)
    calls = _timings(monkeypatch, 1.0, 0.4)
    assert choose_precision("auto", "cpu").precision == "bf16"
    assert calls == [("predict", "fp32"), ("predict", "bf16")]
    cached = json.loads(calibration_cache_path().read_text())
    (entry,) = cached.values()
    assert entry["predict"] == {"precision": "bf16", "fp32_s": 1.0, "bf16_s": 0.4}
    # a new process (no memo) reads the cache instead of timing again
    monkeypatch.setattr(precision_module, "_memo", {})
    calls.clear()
    choice = choose_precision("auto", "cpu")
    assert choice.precision == "bf16" and calls == [] and "2.50x" in choice.note
    # training is calibrated on its own: here bf16 is not faster, so it stays fp32
    _timings(monkeypatch, 1.0, 1.05)
    assert choose_precision("auto", "cpu", workload="train").precision == "fp32"


def test_an_unwritable_calibration_cache_is_not_an_error(cpu_with, monkeypatch, tmp_path):
    cpu_with(True)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SVGUI_PRECISION_CACHE", str(blocker / "svgui" / "precision.json"))
    calls = _timings(monkeypatch, 1.0, 2.0)
    assert choose_precision("auto", "cpu").precision == "fp32"
    monkeypatch.setattr(precision_module, "_memo", {})
    assert choose_precision("auto", "cpu").precision == "fp32"
    assert len(calls) == 4  # calibrated again, nothing worse
    # a damaged cache file is ignored and replaced
    monkeypatch.setenv("SVGUI_PRECISION_CACHE", str(tmp_path / "precision.json"))
    (tmp_path / "precision.json").write_text("[1, 2")
    monkeypatch.setattr(precision_module, "_memo", {})
    assert choose_precision("auto", "cpu").precision == "fp32"
    assert isinstance(json.loads((tmp_path / "precision.json").read_text()), dict)


def test_explicit_choices_and_bad_ones(cpu_with):
    cpu_with(False)
    emulated = choose_precision("bf16", "cpu")
    assert emulated.precision == "bf16" and not emulated.native and "emulated" in emulated.note
    assert choose_precision("fp32", "cpu").dtype == torch.float32
    with pytest.raises(ConfigError, match="fp16 runs only on a CUDA GPU"):
        choose_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        choose_precision("half", "cpu")
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainConfig(precision="bf17")
    with pytest.raises(ConfigError, match="precision must be one of"):
        PredictConfig(precision="fp64")


def test_the_calibration_workloads_really_run_and_leave_the_global_rng_alone():
    rng_before = torch.get_rng_state()
    for workload in ("predict", "train"):
        for precision in ("fp32", "bf16"):
            assert 0 < time_workload(workload, precision, repeats=1, config=SMALL) < 60
    assert torch.equal(torch.get_rng_state(), rng_before)  # a training's dropout masks stay seeded


def test_bf16_agrees_with_fp32_on_the_demo_songs_decisions():
    """Stated tolerance: max |probability difference| <= 0.02, >= 99.9 % of smoothed decisions equal."""
    model = load_model(bundled_model_path())
    fp32 = predict_file(model, DEMO_SONG, config=PredictConfig(precision="fp32"))
    bf16 = predict_file(model, DEMO_SONG, config=PredictConfig(precision="bf16"))
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert np.abs(fp32.probabilities - bf16.probabilities).max() <= 0.02
    decide = lambda p: smooth_probabilities(p, median_frames=model.eval_config.median_frames) > model.threshold
    assert (decide(fp32.probabilities) == decide(bf16.probabilities)).mean() >= 0.999


@pytest.mark.parametrize("requested", ["fp32", "bf16"])
def test_a_training_records_the_precision_it_ran_in(tmp_path, requested):
    rng = np.random.default_rng(3)
    for i in range(2):
        write_song(tmp_path / "songs" / f"s{i}.flac", 4.0, random_voiced(4.0, rng), seed=i)
    data = load_tracks(find_tracks(tmp_path / "songs"), config=FeatureConfig(), cache=SpectrogramCache())
    out = tmp_path / "m.safetensors"
    records = list(train(train_data=data, out_path=out, model_config=SMALL,
                         config=TrainConfig(updates=3, validate_every=0, checkpoint_every=0, precision=requested)))
    assert [r.update for r in records] == [1, 2, 3, 3] and all(np.isfinite(r.loss) for r in records)
    meta = load_model(out).metadata
    assert meta["precision"] == requested and meta["train_config"]["precision"] == requested


def test_cli_predict_and_evaluate_take_a_precision(tmp_path, capsys, cpu_with):
    cpu_with(False)
    song = tmp_path / "in" / "song.flac"
    write_song(song, 3.0, [(1.0, 2.0)], seed=4)
    assert main(["predict", str(song), "--out", str(tmp_path / "out"), "--precision", "bf16"]) == 0
    assert "warning: bf16 emulated" in capsys.readouterr().err
    (tmp_path / "in" / "song.lab").write_text("0.0 1.0 nosing\n1.0 2.0 sing\n2.0 3.0 nosing\n")
    assert main(["evaluate", "--data", str(tmp_path / "in"), "--json", "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "fp32"
    with pytest.raises(SystemExit):
        main(["predict", str(song), "--out", str(tmp_path / "out"), "--precision", "fp64"])


def test_bench_reports_both_precisions_and_the_cpu_features(cpu_with):
    from engine.bench import format_report, run_speed_benchmark
    from engine.bench_train import format_training_report, run_training_benchmark

    cpu_with(False)
    report = run_speed_benchmark(seconds=2.0, excerpt_seconds=0.5)
    assert report["precision_auto"] == report["precision_compared"] == "fp32"
    for key in ("fcn_prediction_x_realtime", "fcn_tta5_prediction_x_realtime", "fcn_prediction_fp32_x_realtime",
                "fcn_prediction_auto_x_realtime", "fcn_tta5_prediction_auto_x_realtime"):
        assert report[key] > 0, key
    assert "native_bf16" in report["machine"]["cpu_features"]
    assert "cpu features:" in format_report(report) and "auto picks fp32" in format_report(report)
    training = run_training_benchmark(n_updates=1, rounds=1, batch_repeats=2, track_s=10.0)
    for key in ("ms_per_update_fp32", "ms_per_update_auto", "augmentation_ms_per_batch", "update_s_plain",
                "augment_batch32_s"):
        assert training[key] > 0, key
    assert 0 < training["augmentation_share_of_update_auto"] < 1
    assert "fp32" in format_training_report(training)



def test_a_studys_fingerprint_ignores_auto_and_follows_an_explicit_precision(tmp_path):
    plan = plan_from_dict({"data": {"path": str(tmp_path / "music")}, "train": {"updates": 10}})
    run = plan.runs()[0]
    assert plan.train.precision == "auto"
    as_before = dataclasses.replace(plan, train=dataclasses.replace(plan.train, precision="fp32"))
    assert as_before.fingerprint(run) != plan.fingerprint(run)
    # the fingerprint of "auto" is the one of a plan written before the field existed
    payload = {"data": {k: str(v) if hasattr(v, "as_posix") else v for k, v in vars(plan.data).items()},
               # nor the network/training variant fields (engine.experiments.plan.RECIPE_*_KEYS)
               "train": {k: v for k, v in config_to_dict(plan.train).items() if k not in ("precision", "optimizer")},
               "model": {k: v for k, v in config_to_dict(plan.model).items()
                         if k not in ("architecture", "conv5_channels", "input_norm", "first_conv")},
               "augment": config_to_dict(run.variant.augment_config),
               "seed": run.seed, "fold": run.fold, "test_modes": plan.test_modes(run.variant)}
    old = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert plan.fingerprint(run) == old


def test_a_study_variant_may_set_the_precision(tmp_path):
    """plans/bf16-training.toml: the same recipe in fp32 (the baseline) and in bf16."""
    plan = plan_from_dict({"data": {"path": str(tmp_path / "music")}, "train": {"updates": 10, "precision": "fp32"},
                           "variant": [{"name": "fp32"}, {"name": "bf16", "precision": "bf16"}]})
    fp32, bf16 = plan.variants
    assert fp32.is_baseline and not bf16.is_baseline
    assert fp32.train_config(plan.train).precision == "fp32" and bf16.train_config(plan.train).precision == "bf16"
    first_fp32, first_bf16 = (run for run in plan.runs() if run.repetition == 1)
    assert plan.fingerprint(first_fp32) != plan.fingerprint(first_bf16)
    with pytest.raises(ConfigError, match="precision"):
        plan_from_dict({"data": {"path": str(tmp_path)}, "variant": [{"name": "x", "precision": "fp8"}]})


def test_the_first_convolution_stays_fp32_under_autocast_so_zero_mean_still_cancels_an_offset():
    from engine.model import SingingVoiceCNN
    torch.manual_seed(0)
    network = SingingVoiceCNN(dataclasses.replace(SMALL, architecture="thesis", first_conv="zero-mean")).eval()
    x = torch.randn(2, 1, SMALL.excerpt_frames, 80)
    offset = 10.0  # what a gain adds to the standardized log-mel input (shared deviation)
    with torch.no_grad():
        fp32 = network.first_conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16, shifted = network.first_conv(x), network.first_conv(x + offset)
    assert bf16.dtype == torch.bfloat16  # the rest of the network still gets autocast's dtype
    assert torch.equal(bf16, fp32.to(torch.bfloat16))  # computed in fp32, only the result rounded
    # a bf16-rounded kernel would not sum to zero (5x this bound here): the offset cancels but for
    # the rounding of the result
    assert (shifted.float() - bf16.float()).abs().max() <= 2.0 ** -8 * bf16.float().abs().max()
    weight = network.conv1.weight - network.conv1.weight.mean(dim=(1, 2, 3), keepdim=True)
    assert weight.to(torch.bfloat16).float().sum(dim=(1, 2, 3)).abs().max() > 0
