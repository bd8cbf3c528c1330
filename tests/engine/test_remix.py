"""Stem remixing in the training batches, and level sweeps of `svgui-engine evaluate --gains/--snr/--vocals-alone`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.augment import draw_augmentations
from engine.batches import AugmentedBatches
from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, save_model
from engine.config import AugmentConfig, FeatureConfig, ModelConfig
from engine.datasets import find_tracks, load_tracks
from engine.features import linear_spectrogram
from engine.normalize import compute_normalization
from engine.predict import predict_linear, predict_samples
from engine.stems import read_stems, stems_of
from tests.cli_helpers import assert_one_line_error
from tests.engine.test_cli import run_cli
from tests.engine.test_stems import VOICED, write_stem_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


@pytest.fixture(scope="module")
def stem_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("remix")
    for seed, (name, voiced) in enumerate(VOICED.items()):
        write_stem_song(folder, name, voiced, seed)
    cache = SpectrogramCache(tmp_path_factory.mktemp("cache"))
    data = load_tracks(find_tracks(folder), config=FeatureConfig(), cache=cache)
    model = VoiceModel.create(model_config=SMALL, normalization=compute_normalization(d.log_mel for d in data))
    return folder, data, model


def test_remixed_examples_are_vocals_over_another_songs_accompaniment(stem_data):
    folder, data, model = stem_data
    augment = AugmentConfig(remix_probability=1.0, remix_min_ratio_db=-3.0, remix_max_ratio_db=-3.0,
                            remix_max_gain_db=0.0)
    batches = AugmentedBatches(data, model, torch.device("cpu"), 0.02, 0.98, augment=augment, seed=3)
    pool = batches.remix
    assert pool.n_songs == 3  # the three mixes; their accompaniment files are ordinary training files
    centres = batches.starts[::40] + batches.context
    source = batches.linear[centres[:, None] + batches.source_offsets[None, :]]
    draw = draw_augmentations(augment, len(centres), generator=torch.Generator().manual_seed(0))
    out = pool.apply(source, centres, draw, batches.source_offsets)
    songs = pool.song_of[centres]
    is_mix = songs >= 0
    assert is_mix.any() and (~is_mix).any()
    assert torch.equal(out[~is_mix], source[~is_mix])  # accompaniment files are not remixed
    names = [d.track.name for d in data if stems_of(d.track.audio_path)]
    levels = {n: read_stems(stems_of(folder / f"{n}.wav")) for n in names}
    for i in torch.nonzero(is_mix).flatten().tolist():
        own = names[int(songs[i])]
        # which accompaniment was used: solve out = g·V + A for the partner song and compare
        fits = {}
        for other in names:
            if other == own:
                continue
            g = 10 ** ((-3.0 - (levels[own].vocal_level_db - levels[other].accompaniment_level_db)) / 20)
            accompaniment = out[i] - g * pool.vocals[pool.local[centres[i]] + batches.source_offsets]
            fits[other] = accompaniment
        matched = []
        for other, accompaniment in fits.items():
            k = names.index(other)
            first, count = int(pool.firsts[k]), int(pool.counts[k])
            rows = pool.accompaniment[first:first + count]          # centre rows of every candidate excerpt
            centre_row = accompaniment[len(batches.source_offsets) // 2]
            best = int(torch.argmin((rows - centre_row).abs().sum(1)))
            window = pool.accompaniment[first + best + batches.source_offsets]
            if torch.allclose(accompaniment, window, atol=1e-4):
                matched.append(other)
        assert len(matched) == 1, own  # exactly one other song's accompaniment, at some position


def test_the_gpu_form_of_remixing_equals_the_cpu_form(stem_data):
    _, data, model = stem_data
    augment = AugmentConfig(remix_probability=0.5)
    batches = AugmentedBatches(data, model, torch.device("cpu"), 0.02, 0.98, augment=augment, seed=3)
    centres = batches.starts[::25] + batches.context
    source = batches.linear[centres[:, None] + batches.source_offsets[None, :]]
    draw = draw_augmentations(augment, len(centres), generator=torch.Generator().manual_seed(2))
    rows_only = batches.remix.apply(source, centres, draw, batches.source_offsets)
    selecting = batches.remix.apply_selecting(source, centres, draw, batches.source_offsets)
    assert not torch.equal(rows_only, source)
    torch.testing.assert_close(rows_only, selecting, atol=0, rtol=0)


def test_remix_keeps_the_labels_and_is_seeded(stem_data):
    _, data, model = stem_data
    augment = AugmentConfig(remix_probability=0.5)
    first = AugmentedBatches(data, model, torch.device("cpu"), 0.02, 0.98, augment=augment, seed=7)
    second = AugmentedBatches(data, model, torch.device("cpu"), 0.02, 0.98, augment=augment, seed=7)
    plain = AugmentedBatches(data, model, torch.device("cpu"), 0.02, 0.98, augment=AugmentConfig(noise_sigma=1e-9),
                             seed=7)
    starts = first.starts[torch.randperm(len(first.starts), generator=torch.Generator().manual_seed(1))[:32]]
    x1, y1 = first.batch(starts)
    x2, y2 = second.batch(starts)
    _, y_plain = plain.batch(starts)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(y1, y_plain)  # labels come from the vocals, which every example keeps
    x3, _ = AugmentedBatches(data, model, torch.device("cpu"), 0.02, 0.98, augment=augment, seed=8).batch(starts)
    assert not torch.equal(x1, x3)
    # remix values are drawn after the seven's: those stay what they were for a seed
    with_remix = draw_augmentations(augment, 4, generator=torch.Generator().manual_seed(0))
    without = draw_augmentations(AugmentConfig(), 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(with_remix.pitch_factor, without.pitch_factor) and torch.equal(with_remix.noise, without.noise)
    assert with_remix.remixed.any() and not without.remixed.any()


def test_remix_without_stems_is_refused(tmp_path, stem_data):
    _, data, model = stem_data
    plain = [d for d in data if stems_of(d.track.audio_path) is None]  # the accompaniment files
    with pytest.raises(Exception, match="remixing needs training files with stems"):
        AugmentedBatches(plain, model, torch.device("cpu"), 0.02, 0.98,
                         augment=AugmentConfig(remix_probability=0.5), seed=0)


def test_gain_on_the_spectrogram_is_gain_on_the_waveform(stem_data):
    folder, data, model = stem_data
    samples = read_stems(stems_of(folder / "beta.wav")).accompaniment
    gain = np.float32(10 ** (-12 / 20))
    on_waveform = predict_samples(model, samples * gain)
    on_linear = predict_linear(model, linear_spectrogram(samples, FeatureConfig()).numpy() * gain)
    np.testing.assert_allclose(on_waveform, on_linear, atol=1e-4)


@pytest.fixture(scope="module")
def model_file(stem_data, tmp_path_factory):
    _, _, model = stem_data
    model.threshold = 0.5
    return save_model(tmp_path_factory.mktemp("model") / "small.safetensors", model)


def test_evaluate_gains_and_snr_json(stem_data, model_file):
    folder, _, _ = stem_data
    code, out, err = run_cli(["evaluate", "--model", model_file, "--data", folder, "--gains=-12,0,6",
                              "--snr=-6,0", "--json", "--precision", "fp32"])
    assert code == 0, err
    report = json.loads(out)
    gains, snr = report["gains"], report["snr"]
    assert [level["gain_db"] for level in gains["levels"]] == [-12.0, 0.0, 6.0]
    assert gains["threshold"] == report["threshold"] and gains["n_files"] == 6
    # 0 dB is the plain evaluation
    assert gains["levels"][1]["error"] == pytest.approx(report["pooled"]["error"])
    errors = [level["error"] for level in gains["levels"]]
    assert gains["error_spread"] == pytest.approx(max(errors) - min(errors))
    assert [level["ratio_db"] for level in snr["levels"]] == [-6.0, 0.0] and snr["n_files"] == 3
    for level in gains["levels"] + snr["levels"]:
        assert {"error", "recall", "specificity", "n_frames"} <= set(level)
    code, out, err = run_cli(["evaluate", "--model", model_file, "--data", folder, "--gains=-12,0,6"])
    assert code == 0 and "error spread (worst − best)" in out and "| −12 dB | 0 dB | +6 dB |" in out


def test_vocals_alone_are_scaled_to_each_level_over_their_voiced_frames(stem_data, monkeypatch):
    import engine.robustness as robustness
    from engine.robustness import stem_tracks, sweep_vocals_alone, voiced_level_dbfs
    from engine.stems import frame_levels_db

    folder, data, model = stem_data
    mixes = [d for d in data if d.track in stem_tracks([d.track for d in data])]
    heard = []
    real_predict = robustness.predict_samples
    monkeypatch.setattr(robustness, "predict_samples",
                        lambda m, samples, **kw: heard.append(samples) or real_predict(m, samples, **kw))
    sweep = sweep_vocals_alone(model, mixes, (-36.0, -24.0), threshold=0.5)
    while True:
        try:
            next(sweep)
        except StopIteration as stop:
            result = stop.value
            break
    assert [f.level_db for f in result.levels] == [-36.0, -24.0] and result.kind == "vocals"
    assert result.n_files == 3 and len(heard) == 6
    features = model.features
    for i, d in enumerate(mixes):
        vocals = read_stems(stems_of(d.track.audio_path)).vocals
        for k, level in enumerate((-36.0, -24.0)):
            played = heard[2 * i + k]
            assert voiced_level_dbfs(played, d.targets, features) == pytest.approx(level, abs=1e-3)
            # the vocals alone, without accompaniment: the stem times one gain
            gain = played[np.argmax(np.abs(vocals))] / vocals[np.argmax(np.abs(vocals))]
            np.testing.assert_allclose(played, vocals * gain, rtol=1e-5, atol=1e-8)
    # the level is the mean power over the voiced frames, not the whole song's
    d = mixes[0]
    vocals = read_stems(stems_of(d.track.audio_path)).vocals
    levels = frame_levels_db(vocals, features)[:len(d.targets)]
    voiced = d.targets[:len(levels)]
    assert 0 < voiced.sum() < voiced.size
    expected = 10 * np.log10(np.mean(10 ** (levels[voiced] / 10)))
    assert voiced_level_dbfs(vocals, d.targets, features) == pytest.approx(expected)
    assert voiced_level_dbfs(np.zeros(4096, np.float32), d.targets, features) == -np.inf


def test_evaluate_vocals_alone_json_and_table(stem_data, model_file):
    folder, _, _ = stem_data
    code, out, err = run_cli(["evaluate", "--model", model_file, "--data", folder, "--vocals-alone=-36,-24",
                              "--json", "--precision", "fp32"])
    assert code == 0, err
    alone = json.loads(out)["vocals_alone"]
    assert alone["kind"] == "vocals" and alone["n_files"] == 3
    assert [level["level_dbfs"] for level in alone["levels"]] == [-36.0, -24.0]
    assert all({"error", "recall", "specificity", "n_frames"} <= set(level) for level in alone["levels"])
    code, out, err = run_cli(["evaluate", "--model", model_file, "--data", folder, "--vocals-alone=-36"])
    assert code == 0 and "vocals alone (stems)" in out and "| −36 dBFS |" in out
    code, _, err = run_cli(["evaluate", "--model", model_file, "--data", folder, "--vocals-alone=-36,6"])
    assert_one_line_error(code, err, "--vocals-alone", "6 dBFS is above full scale")


def test_evaluate_levels_out_of_range_and_snr_without_stems(stem_data, model_file, tmp_path):
    folder, _, _ = stem_data
    code, _, err = run_cli(["evaluate", "--model", model_file, "--data", folder, "--gains=-18,75"])
    assert_one_line_error(code, err, "--gains", "75 dB is out of range")
    code, _, err = run_cli(["evaluate", "--model", model_file, "--data", folder, "--snr=-90"])
    assert_one_line_error(code, err, "--snr", "-90 dB")
    lone = tmp_path / "lone"
    lone.mkdir()
    for suffix in (".wav", ".lab"):
        (lone / f"beta{suffix}").write_bytes((folder / f"beta{suffix}").read_bytes())
    code, _, err = run_cli(["evaluate", "--model", model_file, "--data", lone, "--snr=0"])
    assert_one_line_error(code, err, "--snr needs stems", "beta.wav")
    code, _, err = run_cli(["evaluate", "--model", model_file, "--data", lone, "--vocals-alone=-30"])
    assert_one_line_error(code, err, "--vocals-alone needs stems", "beta.wav")


def test_the_preview_remixes_through_the_training_code(stem_data):
    from engine.preview import preview_excerpt
    from engine.remix import RemixPool

    folder, data, model = stem_data
    mix = next(d for d in data if d.track.name == "alpha")
    config = AugmentConfig(remix_probability=1.0)
    source_frames = config.source_frames(model.model_config.excerpt_frames)
    pool = RemixPool.for_file(mix, source_frames=source_frames, context=model.model_config.context_frames,
                              features=model.features)
    common = dict(config=config, seed=4, features=model.features, normalization=model.normalization)
    remixed = preview_excerpt(mix.linear, 200, remix=pool, **common)
    assert remixed.description.startswith("remix ") and not np.allclose(remixed.augmented, remixed.original)
    # the same numbers as the batch code: the pool's apply on the cut excerpt
    from engine.preview import cut_excerpt
    source = cut_excerpt(mix.linear, 200, source_frames)[None]
    half = source_frames // 2
    expected = pool[0].apply(source, torch.tensor([pool[1] + 200]), remixed.draw, torch.arange(-half, half + 1))
    from engine.augment import augment_excerpts
    again = augment_excerpts(expected, remixed.draw, config=config, features=model.features,
                             normalization=model.normalization)
    np.testing.assert_allclose(remixed.augmented, again[0].numpy(), atol=1e-6)
    plain = preview_excerpt(mix.linear, 200, **common)  # no stems given: said, not pretended
    assert plain.description == "not remixed" and np.array_equal(plain.augmented, plain.original)


def test_musdb_hq_trains_with_remixing_and_evaluates_with_snr(tmp_path, model_file):
    """MUSDB18-HQ as distributed: no label files anywhere; labels from the vocal stems."""
    from tests.engine.test_cli import small_network
    from tests.engine.test_stems import write_musdb_song

    for split, songs in (("train", ("alpha", "beta", "gamma")), ("test", ("beta",))):
        for seed, name in enumerate(songs):
            write_musdb_song(tmp_path / "musdb" / split / name, VOICED[name], seed + (10 if split == "test" else 0))
    out = tmp_path / "net.safetensors"
    with small_network():
        code, _, err = run_cli(["train", "--train", tmp_path / "musdb", "--out", out, "--updates", 3,
                                "--validate-every", 0, "--augment", "remix=1,pitch=0.1"])
    assert code == 0, err
    code, stdout, err = run_cli(["info", out])
    assert "remix p=1" in stdout and "MUSDB18-HQ" in stdout
    code, stdout, err = run_cli(["evaluate", "--model", model_file, "--data", tmp_path / "musdb", "--snr=-6,6",
                                 "--gains=0,-6", "--json"])
    assert code == 0, err
    report = json.loads(stdout)
    assert report["per_file"][0]["name"] == "beta" and report["snr"]["n_files"] == 1
    assert [level["ratio_db"] for level in report["snr"]["levels"]] == [-6.0, 6.0]
