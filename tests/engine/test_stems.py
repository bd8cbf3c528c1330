"""Stem datasets: musdb7 and MUSDB18-HQ layouts, alignment and bad stems, labels from the vocal level."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.config import AugmentConfig, FeatureConfig
from engine.datasets import load_track, resolve_training_data
from engine.errors import ConfigError, DatasetError
from engine.labels import intervals_to_targets
from engine.stems import parse_levels_db, read_stems, stems_of, vocal_activity
from tests.synth import SAMPLE_RATE, synth_song

SONG_S = 6.0
VOICED = {"alpha": [(0.5, 2.5), (4.0, 5.5)], "beta": [(1.0, 4.0)], "gamma": [(0.2, 1.8), (3.0, 5.8)]}


def _voice(duration_s: float, voiced, seed: int) -> np.ndarray:
    """The 'voice' of synth_song alone: the song minus the same song without voice."""
    return synth_song(duration_s, voiced, seed=seed) - synth_song(duration_s, [], seed=seed)


def write_stem_song(folder, name, voiced, seed, *, accompaniment_shift=0, labels=True):
    """musdb7 layout: NAME.flac (mix) and NAME (accompaniment).flac; the mix's .lab if ``labels``."""
    folder.mkdir(parents=True, exist_ok=True)
    accompaniment = synth_song(SONG_S, [], seed=seed) * 0.5
    mix = accompaniment + _voice(SONG_S, voiced, seed) * 0.5
    sf.write(folder / f"{name}.wav", mix, SAMPLE_RATE, subtype="FLOAT")
    sf.write(folder / f"{name} (accompaniment).wav", np.roll(accompaniment, accompaniment_shift), SAMPLE_RATE,
             subtype="FLOAT")
    if labels:
        lines = [f"{a} {b} sing" for a, b in voiced]
        (folder / f"{name}.lab").write_text("\n".join(lines) + "\n")
        (folder / f"{name} (accompaniment).lab").write_text(f"0 {SONG_S} nosing\n")
    return folder / f"{name}.wav"


@pytest.fixture(scope="module")
def stem_set(tmp_path_factory):
    """Three songs in the musdb7 layout."""
    folder = tmp_path_factory.mktemp("stems")
    for seed, (name, voiced) in enumerate(VOICED.items()):
        write_stem_song(folder, name, voiced, seed)
    return folder


def test_musdb7_layout_vocals_are_mix_minus_accompaniment(stem_set):
    stems = stems_of(stem_set / "alpha.wav")
    assert stems.accompaniment == (stem_set / "alpha (accompaniment).wav",) and stems.vocals is None
    assert stems_of(stem_set / "alpha (accompaniment).wav") is None  # an accompaniment has no stems
    audio = read_stems(stems)
    np.testing.assert_allclose(audio.vocals, 0.5 * _voice(SONG_S, VOICED["alpha"], 0), atol=1e-6)
    # remix puts the vocals at the asked energy ratio over the accompaniment
    remixed = audio.remix(-6.0)
    vocal_part = remixed - audio.accompaniment
    ratio = 10 * np.log10(np.mean(vocal_part.astype(np.float64) ** 2) / np.mean(audio.accompaniment ** 2.0))
    assert ratio == pytest.approx(-6.0, abs=1e-3)


def test_level_rule_finds_the_voiced_stretches(stem_set):
    features = FeatureConfig()
    for name, voiced in VOICED.items():
        audio = read_stems(stems_of(stem_set / f"{name}.wav"))
        found = vocal_activity(audio.vocals, features=features)
        truth = intervals_to_targets(voiced, len(found), features.frames_per_second)
        # frames near an edge may go either way (a frame spans 46 ms); everything else agrees
        assert np.mean(found == truth) > 0.97, name


def test_misaligned_accompaniment_is_refused_naming_it(tmp_path):
    mix = write_stem_song(tmp_path, "late", VOICED["beta"], 3, accompaniment_shift=40)
    with pytest.raises(DatasetError, match=r"late \(accompaniment\)\.wav is 40 samples .* sample-aligned"):
        read_stems(stems_of(mix))


def test_stems_of_different_length_or_rate_are_refused(tmp_path):
    mix = write_stem_song(tmp_path, "short", VOICED["beta"], 4)
    accompaniment = tmp_path / "short (accompaniment).wav"
    samples, _ = sf.read(accompaniment)
    sf.write(accompaniment, samples[:-100], SAMPLE_RATE)
    with pytest.raises(DatasetError, match=r"differ in length: short\.wav 132300 samples .* 132200 samples"):
        read_stems(stems_of(mix))
    sf.write(accompaniment, samples, 44100)
    with pytest.raises(DatasetError, match=r"differ in sample rate: short\.wav 22050 Hz, .*44100 Hz"):
        read_stems(stems_of(mix))


def test_silent_vocals_are_refused(tmp_path):
    accompaniment = synth_song(SONG_S, [], seed=5)
    sf.write(tmp_path / "quiet.wav", accompaniment, SAMPLE_RATE, subtype="FLOAT")
    sf.write(tmp_path / "quiet (accompaniment).wav", accompaniment, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(DatasetError, match=r"vocals of quiet .* are silent"):
        read_stems(stems_of(tmp_path / "quiet.wav"))


def write_musdb_song(folder, voiced, seed, *, skip=()):
    """A MUSDB18-HQ song folder: mixture, vocals, drums, bass, other (.wav)."""
    folder.mkdir(parents=True)
    accompaniment = synth_song(SONG_S, [], seed=seed) * 0.5
    vocals = 0.5 * _voice(SONG_S, voiced, seed)
    parts = {"vocals": vocals, "drums": accompaniment * 0.2, "bass": accompaniment * 0.3, "other": accompaniment * 0.5}
    parts["mixture"] = sum(parts.values())
    for name, samples in parts.items():
        if name not in skip:
            sf.write(folder / f"{name}.wav", samples, SAMPLE_RATE, subtype="FLOAT")


def test_musdb_hq_layout_trains_without_label_files(tmp_path):
    for split, songs in (("train", ("alpha", "beta")), ("test", ("gamma",))):
        for seed, name in enumerate(songs):
            write_musdb_song(tmp_path / split / name, VOICED[name], seed)
    train, valid, description = resolve_training_data(tmp_path)
    assert [t.name for t in train] == ["alpha", "beta"] and not valid and "MUSDB18-HQ" in description
    assert all(t.label_path is None for t in train)
    from engine.cache import SpectrogramCache
    data = load_track(train[1], config=FeatureConfig(), cache=SpectrogramCache(tmp_path / "cache"))
    truth = intervals_to_targets(VOICED["beta"], len(data.targets), 70.0)
    assert np.mean(data.targets == truth) > 0.97  # labels from the vocal stem's level
    stems = stems_of(train[0].audio_path)
    assert [p.name for p in stems.accompaniment] == ["drums.wav", "bass.wav", "other.wav"]


def test_musdb_song_without_a_stem_and_stem_mp4_are_named(tmp_path):
    write_musdb_song(tmp_path / "train" / "broken", VOICED["beta"], 0, skip=("bass",))
    (tmp_path / "test").mkdir()
    with pytest.raises(DatasetError, match=r"broken: MUSDB18 song folder without its bass stem"):
        resolve_training_data(tmp_path)
    mp4 = tmp_path / "mp4"
    (mp4 / "train").mkdir(parents=True)
    (mp4 / "test").mkdir()
    (mp4 / "train" / "A Song.stem.mp4").write_bytes(b"\0" * 64)
    with pytest.raises(DatasetError, match=r"A Song\.stem\.mp4.*ffmpeg.*musdbconvert"):
        resolve_training_data(mp4)


@pytest.mark.parametrize("text, needle", [("-18,61", "61 dB is out of range"), ("-70", "-70 dB is out of range"),
                                          ("0,x", "'x' is not a number"), ("0,0", "listed twice")])
def test_levels_out_of_range_are_named(text, needle):
    with pytest.raises(DatasetError, match=needle):
        parse_levels_db(text, what="--gains")


def test_remix_ratio_range_is_checked():
    with pytest.raises(ConfigError, match="remix_min_ratio_db"):
        AugmentConfig(remix_probability=0.5, remix_min_ratio_db=-80.0)
    with pytest.raises(ConfigError, match="remix_probability"):
        AugmentConfig(remix_probability=1.5)
    assert AugmentConfig.parse("remix=0.5").describe() == "remix p=0.5"
