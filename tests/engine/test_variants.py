"""Network and training variants (issue 12): FCN exactness, level invariance, training, model files."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, describe_model, load_model, load_training_state, read_header, save_model
from engine.cli import main
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, TrainConfig
from engine.datasets import find_tracks, load_tracks
from engine.errors import ConfigError, EngineError, ModelFileError
from engine.experiments.plan import load_plan, plan_from_dict
from engine.frontend import instance_standardize, pcen, training_normalization
from engine.predict import predict_samples
from engine.train import train
from tests.synth import random_voiced, synth_song, write_song

FEATURES = FeatureConfig()
TINY = dict(conv_channels=(4, 4, 6, 4), dense_units=(8, 6), conv5_channels=5)
REPO = Path(__file__).resolve().parents[2]
# Every value of every variant at least once, and the combinations whose claims interact.
RECIPES = [
    dict(),
    dict(first_conv="zero-mean"),
    dict(input_norm="instance"),
    dict(input_norm="pcen"),
    dict(architecture="thesis"),
    dict(architecture="thesis", first_conv="zero-mean"),
    dict(architecture="thesis", input_norm="instance"),
    dict(architecture="thesis", input_norm="pcen", first_conv="zero-mean"),
]


def _name(recipe: dict) -> str:
    return "-".join(recipe.values()) or "paper"


def make_songs(root: Path) -> list:
    """Two labelled 5 s synthesized songs in ``root``, loaded."""
    rng = np.random.default_rng(3)
    for i in range(2):
        write_song(root / f"v{i}.flac", 5.0, random_voiced(5.0, rng), seed=40 + i)
    return load_tracks(find_tracks(root), config=FEATURES, cache=SpectrogramCache())


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    return make_songs(tmp_path_factory.mktemp("variant-songs"))


@pytest.fixture(scope="module")
def signal():
    return synth_song(5.0, [(1.0, 3.2)], seed=7)


def _model(recipe: dict, songs) -> VoiceModel:
    """A tiny untrained model of ``recipe``; the thesis network's batch norms get real statistics."""
    config = ModelConfig(**TINY, **recipe)
    normalization = training_normalization([d.log_mel for d in songs], config, FEATURES)
    model = VoiceModel.create(model_config=config, normalization=normalization, seed=1)
    if config.architecture == "thesis":
        torch.manual_seed(0)
        model.network.train()
        with torch.no_grad():
            model.network(2 * torch.randn(16, 1, config.excerpt_frames, FEATURES.n_mels) + 0.5)
    model.network.eval()  # no dropout
    return model


@pytest.mark.parametrize("recipe", RECIPES, ids=_name)
def test_fully_convolutional_prediction_in_chunks_equals_the_excerptwise_reference(recipe, songs, signal):
    model = _model(recipe, songs)
    fcn = predict_samples(model, signal, chunk_frames=50)   # 7 chunks: PCEN state and instance windows cross them
    reference = predict_samples(model, signal, chunk_frames=10 ** 6, excerptwise=True)
    assert fcn.shape == reference.shape
    np.testing.assert_allclose(fcn, reference, rtol=0, atol=1e-5)
    assert fcn.std() > 1e-4  # the network is not flat: the comparison means something


def test_instance_normalization_ignores_any_offset_per_band_exactly(songs):
    log_mel = torch.from_numpy(np.array(songs[0].log_mel))
    offsets = torch.linspace(-4.0, 3.0, FEATURES.n_mels)   # a different gain in every band, as a filter would be
    out = instance_standardize(log_mel, window_frames=115)
    np.testing.assert_allclose(instance_standardize(log_mel + offsets, window_frames=115), out, rtol=0, atol=1e-5)
    # each frame is standardized by the window centred on it, computed directly here
    i, lo, hi = 200, 200 - 57, 200 + 58
    window = log_mel[lo:hi].double()
    expected = (log_mel[i].double() - window.mean(0)) / torch.sqrt(window.var(0, unbiased=False) + 1e-4)
    np.testing.assert_allclose(out[i].double(), expected, atol=1e-5)
    # at the ends the window is clipped to the file
    window = log_mel[:58].double()
    expected = (log_mel[0].double() - window.mean(0)) / torch.sqrt(window.var(0, unbiased=False) + 1e-4)
    np.testing.assert_allclose(out[0].double(), expected, atol=1e-5)


def test_zero_mean_first_layer_cancels_an_offset_of_its_input(songs):
    for architecture in ("paper", "thesis"):
        network = _model(dict(architecture=architecture, first_conv="zero-mean"), songs).network
        excerpts = torch.randn(6, 1, 115, FEATURES.n_mels)
        with torch.no_grad():
            np.testing.assert_allclose(network(excerpts + 1.7), network(excerpts), rtol=0, atol=1e-5)
        kernels = network.conv1.weight
        assert kernels.mean(dim=(1, 2, 3)).abs().max() > 1e-3  # the stored kernels are free; forward centres them


@pytest.mark.parametrize("recipe, where", [
    (dict(input_norm="instance"), "everywhere"),
    (dict(architecture="thesis", input_norm="instance", first_conv="zero-mean"), "everywhere"),
    (dict(first_conv="zero-mean"), "inside"),
    (dict(architecture="thesis", first_conv="zero-mean"), "inside"),
], ids=lambda v: v if isinstance(v, str) else _name(v))
def test_a_real_waveform_gain_leaves_the_prediction_unchanged(recipe, where, songs, signal):
    model = _model(recipe, songs)
    base = predict_samples(model, signal, chunk_frames=60)
    context = model.model_config.context_frames
    # Zero-mean on fixed statistics: the padding beyond the file's ends (digital silence) does not
    # move with the gain, so the claim holds for frames whose excerpt lies inside the file.
    inside = slice(None) if where == "everywhere" else slice(context, -context)
    for gain_db in (-18.0, 6.0):
        scaled = predict_samples(model, signal * np.float32(10 ** (gain_db / 20)), chunk_frames=60)
        np.testing.assert_allclose(scaled[inside], base[inside], rtol=0, atol=1e-5)


def test_the_paper_network_and_pcen_are_not_level_invariant(songs, signal):
    """The claims above have teeth: the variants without them do move."""
    for recipe in (dict(), dict(input_norm="pcen")):
        model = _model(recipe, songs)
        base = predict_samples(model, signal)
        assert np.abs(predict_samples(model, signal * np.float32(0.125)) - base).max() > 1e-3


def test_zero_mean_statistics_share_one_deviation_across_bands(songs):
    shared = training_normalization([d.log_mel for d in songs], ModelConfig(first_conv="zero-mean"), FEATURES)
    paper = training_normalization([d.log_mel for d in songs], ModelConfig(), FEATURES)
    assert np.unique(shared.std).size == 1 and np.unique(paper.std).size > 1
    np.testing.assert_array_equal(shared.mean, paper.mean)
    assert shared.std[0] == pytest.approx(np.sqrt(np.mean(paper.std.astype(np.float64) ** 2)), rel=1e-5)


def test_pcen_continues_exactly_from_a_carried_state(songs):
    log_mel = torch.from_numpy(np.array(songs[0].log_mel))
    whole, smoothed = pcen(log_mel, FEATURES)
    first, _ = pcen(log_mel[:130], FEATURES)
    rest, _ = pcen(log_mel[130:], FEATURES, state=smoothed[129])
    np.testing.assert_allclose(torch.cat([first, rest]), whole, rtol=1e-6, atol=1e-6)
    # the smoother starts at its steady state: M = E at the first frame
    np.testing.assert_allclose(smoothed[0], log_mel[0].exp(), rtol=1e-6)


def test_augmented_training_excerpts_see_the_prediction_transform(songs):
    """Instance normalization of a wider augmented excerpt, cropped, equals the whole file's."""
    from engine.batches import AugmentedBatches, ExcerptBatches

    model = _model(dict(input_norm="instance"), songs)
    plain = ExcerptBatches(songs, model, torch.device("cpu"), 0.02, 0.98)
    # Loudness 1e-9 dB: switched on (the augmented path) and changing nothing.
    augmented = AugmentedBatches(songs, model, torch.device("cpu"), 0.02, 0.98,
                                 augment=AugmentConfig(max_loudness_db=1e-9), seed=0)
    # Positions whose excerpt and windows lie inside the first file.
    index = torch.tensor([60, 100, 150])
    np.testing.assert_allclose(augmented.batch(augmented.starts[index])[0], plain.batch(plain.starts[index])[0],
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("recipe, optimizer, augment", [
    (dict(), "adam", "none"),
    (dict(input_norm="instance"), "sgd-nesterov", "pitch=0.2,stretch=0.2,loudness=6,mix=0.5,dropout=0.1,noise=0.1"),
    (dict(input_norm="pcen", first_conv="zero-mean"), "adam", "pitch=0.2,stretch=0.2"),
    (dict(architecture="thesis", first_conv="zero-mean"), "adam", "loudness=6,mix=0.5"),
    (dict(architecture="thesis", input_norm="pcen"), "sgd-nesterov", "none"),
], ids=lambda v: v if isinstance(v, str) else _name(v))
def test_each_variant_trains_and_its_model_file_records_the_recipe(recipe, optimizer, augment, songs, tmp_path):
    out = tmp_path / "m.safetensors"
    config = TrainConfig(updates=4, validate_every=0, checkpoint_every=0, optimizer=optimizer,
                         learning_rate=0.001 if optimizer == "adam" else 0.01)
    model_config = ModelConfig(**TINY, **recipe)
    records = list(train(train_data=songs, out_path=out, config=config, model_config=model_config,
                         augment=AugmentConfig.parse(augment)))
    assert records[-1].finished and all(np.isfinite(r.loss) for r in records)
    model = load_model(out)
    assert model.model_config == model_config
    assert model.metadata["train_config"]["optimizer"] == optimizer
    recipe_line = next(line for line in describe_model(out).splitlines() if line.startswith("recipe: "))
    assert recipe_line == (f"recipe: {model_config.architecture} network, {model_config.input_norm} input "
                           f"normalization, {model_config.first_conv} first convolution, {optimizer}")


def test_an_adam_run_resumes_with_its_moments(songs, tmp_path):
    out = tmp_path / "adam.safetensors"
    config = TrainConfig(updates=6, validate_every=0, checkpoint_every=3, optimizer="adam", learning_rate=0.001)
    steps = train(train_data=songs, out_path=out, config=config, model_config=ModelConfig(**TINY))
    for progress in steps:
        if progress.update == 4:
            break
    steps.close()  # cancelled: the checkpoint holds update 4
    checkpoint = out.with_name("adam.checkpoint.safetensors")
    state, info = load_training_state(checkpoint)
    assert info["update"] == 4 and info["config"]["optimizer"] == "adam"
    assert float(state["adam_step.0"]) == 4 and state["adam_v.0"].abs().sum() > 0
    records = list(train(train_data=songs, out_path=out, config=config, resume_from=checkpoint))
    assert records[0].update == 5 and records[-1].finished
    assert load_model(out).metadata["train_config"]["optimizer"] == "adam"


def test_bf16_prediction_runs_for_the_thesis_network(songs, signal):
    model = _model(dict(architecture="thesis", input_norm="pcen"), songs)
    fp32 = predict_samples(model, signal)
    bf16 = predict_samples(model, signal, precision="bf16")
    assert np.abs(bf16 - fp32).max() < 0.05


def test_old_model_files_load_as_the_paper_recipe(tmp_path):
    bundled = sorted((REPO / "resources" / "models" / "previous").glob("*.safetensors"))  # from before the variants
    assert bundled
    for path in bundled:
        config = load_model(path).model_config
        assert (config.architecture, config.input_norm, config.first_conv) == ("paper", "fixed", "plain")
        assert "recipe: paper network, fixed input normalization, plain first convolution, sgd-nesterov" in \
            describe_model(path)
    # a file written before the fields existed: its header's model entry lacks them
    old = ModelConfig(conv_channels=TINY["conv_channels"], dense_units=TINY["dense_units"])
    path = save_model(tmp_path / "old.safetensors", VoiceModel.create(model_config=old))
    _rewrite_header(path, lambda h: {**h, "model": {k: v for k, v in h["model"].items()
                                                    if k not in ("architecture", "conv5_channels", "input_norm",
                                                                 "first_conv")}})
    assert "architecture" not in read_header(path)["model"]
    assert load_model(path).model_config == old


@pytest.mark.parametrize("field, value, known", [
    ("architecture", "resnet", "paper, thesis"),
    ("input_norm", "layer", "fixed, instance, pcen"),
    ("first_conv", "zero_mean", "plain, zero-mean"),
])
def test_an_unknown_variant_name_in_a_model_file_is_refused_with_the_known_ones(field, value, known, tmp_path):
    path = save_model(tmp_path / "m.safetensors", VoiceModel.create(model_config=ModelConfig(**TINY)))
    _rewrite_header(path, lambda h: {**h, "model": {**h["model"], field: value}})
    with pytest.raises(ModelFileError, match=rf"{path.name}.*unknown .*'{value}' \(known: {known}\)"):
        load_model(path)
    with pytest.raises(ConfigError, match=r"unknown optimizer 'rmsprop' \(known: sgd-nesterov, adam\)"):
        TrainConfig(optimizer="rmsprop")


def test_train_command_flags_choose_the_recipe(capsys):
    from engine.cli import build_parser
    from engine.commands import recipe_from_args

    parser = build_parser()
    flags = ["train", "--train", "x", "--out", "m.safetensors"]
    args = parser.parse_args(flags + ["--architecture", "thesis", "--optimizer", "adam", "--input-norm", "instance",
                                      "--first-conv", "zero-mean"])
    model_config, optimizer = recipe_from_args(args)
    assert model_config == ModelConfig(architecture="thesis", input_norm="instance", first_conv="zero-mean")
    assert optimizer == "adam"
    assert recipe_from_args(parser.parse_args(flags)) == (ModelConfig(), "sgd-nesterov")
    with pytest.raises(EngineError, match="--input-norm: a resumed or fine-tuned run keeps its model's"):
        recipe_from_args(parser.parse_args(flags + ["--input-norm", "pcen"]), allowed=False)
    with pytest.raises(SystemExit):
        parser.parse_args(flags + ["--input-norm", "layer"])
    err = capsys.readouterr().err
    assert "invalid choice: 'layer'" in err and all(name in err for name in ("fixed", "instance", "pcen"))


def test_train_command_trains_the_recipe_it_is_given(songs, tmp_path, capsys, monkeypatch):
    import dataclasses

    import engine.train

    original = engine.train.train

    def train_tiny(*args, model_config=ModelConfig(), **kwargs):  # the CLI has no width flags
        return original(*args, model_config=dataclasses.replace(model_config, **TINY), **kwargs)
    monkeypatch.setattr("engine.train.train", train_tiny)
    folder = songs[0].track.audio_path.parent
    out = tmp_path / "cli.safetensors"
    code = main(["train", "--train", str(folder), "--out", str(out), "--updates", "2", "--validate-every", "0",
                 "--checkpoint-every", "0", "--architecture", "thesis", "--optimizer", "adam",
                 "--input-norm", "instance", "--first-conv", "zero-mean", "--precision", "fp32"])
    assert code == 0
    model = load_model(out)
    assert model.model_config == ModelConfig(architecture="thesis", input_norm="instance", first_conv="zero-mean",
                                             **TINY)
    assert model.metadata["train_config"]["optimizer"] == "adam"
    assert model.metadata["train_config"]["learning_rate"] == 0.001  # Adam's own rate unless --learning-rate
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "recipe: thesis network, instance input normalization, zero-mean first convolution, adam" in \
        capsys.readouterr().out


def test_plans_set_the_variants_and_the_level_invariance_plan_parses():
    plan = load_plan(REPO / "plans" / "level-invariance.toml")
    by_key = {v.key: v for v in plan.variants}
    assert plan.baseline.key == "none" and plan.repetitions >= 3
    level_variants = {"thesis-paper-aug", "thesis-loudness", "thesis-zero-mean", "thesis-instance", "thesis-pcen",
                      "thesis-remix", "combination"}
    assert level_variants | {"none", "thesis"} == set(by_key)
    for key in level_variants | {"thesis"}:  # the backbone that converges within the study's schedule
        assert by_key[key].model_config(plan.model).architecture == "thesis"
        assert by_key[key].train_config(plan.train).optimizer == "adam"
        assert by_key[key].train_config(plan.train).learning_rate == 0.001
    assert by_key["none"].model_config(plan.model).architecture == "paper"
    assert by_key["thesis-instance"].model_config(plan.model).input_norm == "instance"
    assert by_key["combination"].augment_config.remix_probability == 0.5
    runs = {r.run_id: r for r in plan.runs()}
    assert plan.fingerprint(runs["thesis-instance/rep1"]) != plan.fingerprint(runs["thesis/rep1"])
    base = dict(data={"path": "."}, variant=[{"name": "x", "input_norm": "batch"}])
    with pytest.raises(ConfigError, match=r"variant 'x': .*unknown input normalization 'batch' \(known: fixed, "):
        plan_from_dict(base)


def test_baseline_fingerprints_are_those_from_before_the_variants():
    """A finished study stays finished: the new fields at their defaults leave the fingerprint alone."""
    import hashlib

    plan = plan_from_dict({"data": {"path": "."}, "train": {"updates": 10}})
    run = plan.runs()[0]
    train_values = {k: v for k, v in json.loads(json.dumps(vars(plan.train))).items()
                    if k not in ("precision", "optimizer")}
    model_values = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(plan.model).items()
                    if k not in ("architecture", "conv5_channels", "input_norm", "first_conv")}
    payload = {"data": {k: str(v) if isinstance(v, Path) else v for k, v in vars(plan.data).items()},
               "train": train_values, "model": model_values,
               "augment": json.loads(json.dumps(vars(run.variant.augment_config))), "seed": run.seed,
               "fold": run.fold, "test_modes": plan.test_modes(run.variant)}
    text = json.dumps(payload, sort_keys=True, default=str)
    assert plan.fingerprint(run) == hashlib.sha256(text.encode()).hexdigest()[:16]


def _rewrite_header(path: Path, change) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()["svgui"])
    tensors = load_file(str(path))
    save_file(tensors, str(path), metadata={"svgui": json.dumps(change(header))})


def test_a_study_trains_each_variant_with_its_recipe(tmp_path):
    from engine.experiments.runner import run_study
    from engine.experiments.store import StudyStore

    for i in range(6):
        write_song(tmp_path / "songs" / f"song{i}.wav", 3.0, [(0.4 + 0.1 * i, 2.2)], seed=i)
    (tmp_path / "plan.toml").write_text("""
repetitions = 1
tta = false
[data]
path = "songs"
valid_fraction = 0.34
test_fraction = 0.34
[train]
updates = 3
batch_size = 8
validate_every = 0
checkpoint_every = 0
[model]
conv_channels = [4, 4, 6, 4]
dense_units = [8, 6]
conv5_channels = 5
[[variant]]
name = "thesis with Adam, instance normalization"
key = "thesis"
architecture = "thesis"
optimizer = "adam"
input_norm = "instance"
""")
    plan = load_plan(tmp_path / "plan.toml")
    result = run_study(plan, tmp_path / "study", threads=1)
    assert result.finished == ["none/rep1", "thesis/rep1"] and not result.failed
    store = StudyStore(tmp_path / "study")
    records = {run.run_id: store.record(run) for run in plan.runs()}
    assert records["thesis/rep1"]["recipe"] == {"architecture": "thesis", "optimizer": "adam", "input_norm": "instance"}
    assert records["none/rep1"]["baseline"] and not records["thesis/rep1"]["baseline"]
    thesis = load_model(store.run_dir(plan.runs()[1]) / "model.safetensors")
    assert (thesis.model_config.architecture, thesis.model_config.input_norm) == ("thesis", "instance")
    assert thesis.metadata["train_config"]["optimizer"] == "adam"
    assert thesis.metadata["train_config"]["learning_rate"] == 0.001
    baseline = load_model(store.run_dir(plan.runs()[0]) / "model.safetensors")
    assert baseline.model_config.architecture == "paper" and baseline.metadata["train_config"]["optimizer"] == \
        "sgd-nesterov"
