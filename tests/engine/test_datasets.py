"""Tests of dataset discovery (folders, the real Jamendo lists), splits and track loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.cache import SpectrogramCache
from engine.config import FeatureConfig
from engine.datasets import (
    DatasetWarning,
    Track,
    find_tracks,
    is_jamendo_layout,
    load_jamendo,
    load_track,
    load_tracks,
    resolve_dataset,
    resolve_training_data,
    scan_folder,
    split_tracks,
)
from engine.errors import ConfigError, DatasetError
from tests.synth import write_song

JAMENDO_LABELS = Path("/work/shared/data/jamendo-labels")
needs_jamendo = pytest.mark.skipif(not (JAMENDO_LABELS / "filelists").is_dir(),
                                   reason="real Jamendo label files not available")
CONFIG = FeatureConfig()


def touch_audio(path: Path, duration_s: float = 0.1) -> Path:
    """A tiny real audio file (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(22050 * duration_s), np.float32), 22050)
    return path


def make_tracks(n: int) -> list[Track]:
    return [Track(f"song{i:02d}", Path(f"/x/song{i:02d}.wav"), Path(f"/x/song{i:02d}.lab")) for i in range(n)]


# -- folders of audio + labels -------------------------------------------------------------------

@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "data"
    write_song(folder / "a.wav", 1.0, [(0.2, 0.6)], sample_rate=44100, channels=2)
    write_song(folder / "b.flac", 1.0, [(0.1, 0.3)], label_suffix=".txt")
    write_song(folder / "c.wav", 1.0, [], label_suffix=None)  # no labels
    (folder / "d.lab").write_text("0 1 nosing\n")  # labels without audio
    (folder / "notes.txt").write_text("just notes")  # not reported as orphan labels
    write_song(folder / "e.ogg", 1.0, [(0.0, 0.5)])
    (folder / "e.txt").write_text("0\t1\tsing\n")  # .lab wins over .txt
    touch_audio(folder / "e.wav")  # same name, other extension: the lossless one wins
    (folder / "._a.wav").write_bytes(b"\0" * 10)  # macOS sidecar: ignored
    write_song(folder / "sub" / "f.wav", 1.0, [(0.2, 0.4)])
    return folder


def test_scan_folder_pairs_and_reports(mixed_folder):
    tracks, report = scan_folder(mixed_folder)
    assert [t.name for t in tracks] == ["a", "b", "e"]
    assert [t.label_path.name for t in tracks] == ["a.lab", "b.txt", "e.lab"]
    assert tracks[2].audio_path.name == "e.wav"
    assert [p.name for p in report.unlabelled_audio] == ["c.wav"]
    assert [p.name for p in report.orphan_labels] == ["d.lab"]
    assert [p.name for p in report.duplicate_audio] == ["e.ogg"]
    assert not report.is_clean and "c.wav" in report.summary() and "d.lab" in report.summary()


def test_predictions_are_never_ground_truth_nor_orphan_labels(mixed_folder, tmp_path):
    for name in ("a.pred.lab", "b.pred.txt", "c.pred.lab", "gone.pred.lab", "e-2.pred.curve.csv"):
        (mixed_folder / name).write_text("0 1 sing\n")
    tracks, report = scan_folder(mixed_folder, require_labels=False)
    assert [(t.name, t.label_path and t.label_path.name) for t in tracks] == \
        [("a", "a.lab"), ("b", "b.txt"), ("c", None), ("e", "e.lab")]
    assert [p.name for p in report.orphan_labels] == ["d.lab"]
    root = tmp_path / "corpus"  # a Jamendo labels folder with a prediction in it
    (root / "labels").mkdir(parents=True)
    (root / "filelists").mkdir()
    for name in "abc":
        (root / "labels" / f"{name}.lab").write_text("0 1 sing\n")
    (root / "labels" / "a.pred.lab").write_text("0 1 nosing\n")
    for split, name in (("train", "a"), ("valid", "b"), ("test", "c")):
        (root / "filelists" / split).write_text(f"{name}.ogg\n")
    corpus = load_jamendo(root, require_audio=False)
    assert corpus.unlisted_labels == [] and corpus.listed["train"] == ["a"]


def test_scan_folder_options(mixed_folder):
    tracks, _ = scan_folder(mixed_folder, require_labels=False)
    assert [(t.name, t.label_path) for t in tracks if t.name == "c"] == [("c", None)]
    tracks, _ = scan_folder(mixed_folder, recursive=True)
    assert [t.name for t in tracks] == ["a", "b", "e", "sub/f"]


def test_find_tracks_warns_about_skipped_files_and_fails_without_labels(mixed_folder, tmp_path):
    with pytest.warns(DatasetWarning, match="c.wav"):
        assert len(find_tracks(mixed_folder)) == 3
    empty = tmp_path / "unlabelled"
    touch_audio(empty / "x.wav")
    with pytest.raises(DatasetError, match="no audio files with labels.*unlabelled.*x.wav"):
        find_tracks(empty)
    with pytest.raises(DatasetError, match="not found: .*nowhere"):
        find_tracks(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="not a folder"):
        scan_folder(mixed_folder / "a.wav")


# -- the Jamendo corpus --------------------------------------------------------------------------

@needs_jamendo
def test_real_jamendo_lists_without_audio():
    assert is_jamendo_layout(JAMENDO_LABELS)
    corpus = load_jamendo(JAMENDO_LABELS, require_audio=False)
    assert {s: len(n) for s, n in corpus.listed.items()} == {"train": 61, "valid": 16, "test": 16}
    names = [n for names in corpus.listed.values() for n in names]
    assert len(set(names)) == 93
    assert all((JAMENDO_LABELS / "labels" / f"{n}.lab").is_file() for n in names)
    assert "03 - Si Dieu" in corpus.listed["test"]  # the entry with an unknown extension
    assert corpus.listed["train"][:2] == ["01 - 01 Les Jardins Japonais", "01 - 10min"]
    assert corpus.unlisted_labels == []
    assert all(tracks == [] for tracks in corpus.splits.values())
    assert {s: len(m) for s, m in corpus.missing_audio.items()} == {"train": 61, "valid": 16, "test": 16}
    assert "0 of 61 train" in corpus.report
    with pytest.raises(DatasetError, match=r"audio missing for 93 of 93 .*found 0.*and 83 more"):
        load_jamendo(JAMENDO_LABELS)


@pytest.fixture
def jamendo_root(tmp_path) -> Path:
    """The real labels and lists, linked into a folder where audio can be added."""
    if not (JAMENDO_LABELS / "filelists").is_dir():
        pytest.skip("real Jamendo label files not available")
    root = tmp_path / "jamendo"
    root.mkdir()
    (root / "labels").symlink_to(JAMENDO_LABELS / "labels")
    (root / "filelists").symlink_to(JAMENDO_LABELS / "filelists")
    return root


def test_jamendo_finds_audio_by_name_anywhere(jamendo_root):
    touch_audio(jamendo_root / "01 - 10min.ogg")  # listed as .mp3
    touch_audio(jamendo_root / "audio" / "03 - Si Dieu.flac")  # listed with an unknown extension
    touch_audio(jamendo_root / "test" / "03 - School.wav")
    touch_audio(jamendo_root / "audio" / "01 - Aura.wav")
    touch_audio(jamendo_root / "audio" / "01 - Aura.ogg")  # the listed extension wins
    corpus = load_jamendo(jamendo_root, require_audio=False)
    found = {t.name: t.audio_path.relative_to(jamendo_root).as_posix()
             for tracks in corpus.splits.values() for t in tracks}
    assert found == {"01 - 10min": "01 - 10min.ogg", "03 - Si Dieu": "audio/03 - Si Dieu.flac",
                     "03 - School": "test/03 - School.wav", "01 - Aura": "audio/01 - Aura.ogg"}
    assert [t.name for t in corpus.splits["test"]] == ["03 - School", "03 - Si Dieu"]  # list order
    assert len(corpus.missing_audio["train"]) == 59 and "01 - 10min" not in corpus.missing_audio["train"]
    assert corpus.splits["train"][0].label_path.name == "01 - 10min.lab"
    with pytest.raises(DatasetError, match="audio missing for 89 of 93 .*found 4"):
        load_jamendo(jamendo_root)


def test_jamendo_follows_linked_audio_folders_once(jamendo_root, tmp_path):
    touch_audio(tmp_path / "elsewhere" / "01 - Aura.mp3")
    (jamendo_root / "audio").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "loop").symlink_to(jamendo_root)  # a cycle must not hang the scan
    corpus = load_jamendo(jamendo_root, require_audio=False)
    assert [t.audio_path for t in corpus.splits["train"]] == [jamendo_root / "audio" / "01 - Aura.mp3"]


def write_all_jamendo_audio(root: Path) -> None:
    corpus = load_jamendo(root, require_audio=False)
    for names in corpus.listed.values():
        for name in names:
            (root / "audio").mkdir(exist_ok=True)
            (root / "audio" / f"{name}.ogg").write_bytes(b"")  # only names matter here


def test_jamendo_official_split_for_training(jamendo_root):
    write_all_jamendo_audio(jamendo_root)
    train, valid, description = resolve_training_data(jamendo_root, valid_fraction=0.3)
    assert (len(train), len(valid)) == (61, 16)
    assert description == f"Jamendo corpus at {jamendo_root}: 61 train / 16 valid (official split)"
    assert len(resolve_dataset(jamendo_root)) == 93


@pytest.mark.parametrize("problem, message", [
    ("overlap", r"more than once: a \(in train, test\)"),
    ("twice", r"more than once: b \(in valid\)"),
    ("empty", "filelists/valid lists no songs"),
    ("unlabelled", "without labels/<name>.lab: zzz"),
    ("missing_list", "cannot read filelists/test"),
])
def test_jamendo_split_is_verified(tmp_path, problem, message):
    root = tmp_path / "corpus"
    (root / "labels").mkdir(parents=True)
    (root / "filelists").mkdir()
    for name in "abc":
        (root / "labels" / f"{name}.lab").write_text("0 1 sing\n")
    lists = {"train": "a.ogg\n", "valid": "b.mp3\n", "test": "c.ogg\n"}
    if problem == "overlap":
        lists["test"] += "a.mp3\n"
    elif problem == "twice":
        lists["valid"] += "b.ogg\n"
    elif problem == "empty":
        lists["valid"] = "\n"
    elif problem == "unlabelled":
        lists["train"] += "zzz.ogg\n"
    for split, text in lists.items():
        if not (problem == "missing_list" and split == "test"):
            (root / "filelists" / split).write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_jamendo(root, require_audio=False)


# -- splits --------------------------------------------------------------------------------------

def test_split_is_deterministic_disjoint_and_complete():
    tracks = make_tracks(20)
    train, valid = split_tracks(tracks, valid_fraction=0.2, seed=3)
    assert len(valid) == 4 and len(train) == 16
    assert {t.name for t in train}.isdisjoint({t.name for t in valid})
    assert sorted(train + valid, key=lambda t: t.name) == tracks
    assert split_tracks(list(reversed(tracks)), valid_fraction=0.2, seed=3) == (train, valid)
    others = [split_tracks(tracks, valid_fraction=0.2, seed=s)[1] for s in range(4, 8)]
    assert any(o != valid for o in others)


def test_split_edge_cases():
    assert split_tracks(make_tracks(5), valid_fraction=0.0, seed=0) == (make_tracks(5), [])
    train, valid = split_tracks(make_tracks(2), valid_fraction=0.01, seed=0)
    assert len(train) == 1 and len(valid) == 1
    train, valid = split_tracks(make_tracks(3), valid_fraction=0.99, seed=0)
    assert len(train) == 1 and len(valid) == 2
    assert split_tracks(make_tracks(1), valid_fraction=0.5, seed=0) == (make_tracks(1), [])
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ConfigError, match="valid_fraction"):
            split_tracks(make_tracks(5), valid_fraction=bad, seed=0)


def test_resolve_training_data_for_folders(tmp_path):
    train_dir, valid_dir = tmp_path / "train", tmp_path / "valid"
    for i in range(10):
        write_song(train_dir / f"t{i}.wav", 0.1, [])
    for i in range(2):
        write_song(valid_dir / f"v{i}.wav", 0.1, [])
    train, valid, description = resolve_training_data(train_dir, valid_fraction=0.2, seed=0)
    assert (len(train), len(valid)) == (8, 2)
    assert description == f"folder {train_dir}: 10 files, 2 held out for validation (seed 0)"
    train, valid, description = resolve_training_data(train_dir, valid_path=valid_dir, valid_fraction=0.2)
    assert (len(train), len(valid)) == (10, 2)
    assert description == f"folder {train_dir}: 10 files; validation: folder {valid_dir}: 2 files"
    assert resolve_training_data(train_dir)[1:] == ([], f"folder {train_dir}: 10 files, no validation")
    with pytest.raises(DatasetError, match="both the training and the validation"):
        resolve_training_data(train_dir, valid_path=train_dir)
    assert resolve_dataset(valid_dir) == find_tracks(valid_dir)


# -- loading -------------------------------------------------------------------------------------

def expected_targets(voiced, n_frames: int) -> np.ndarray:
    times_s = np.arange(n_frames) / 70.0
    return np.array([any(a <= t < b for a, b in voiced) for t in times_s])


@pytest.mark.parametrize("label_suffix", [".lab", ".txt"])
def test_load_track_targets_follow_label_times(tmp_path, label_suffix):
    voiced = [(0.5, 1.2), (2.0, 2.6)]
    write_song(tmp_path / "song.wav", 3.0, voiced, sample_rate=44100, channels=2, label_suffix=label_suffix)
    if label_suffix == ".txt":  # a real Audacity export: tabs, voiced regions only
        (tmp_path / "song.txt").write_text("".join(f"{a:.6f}\t{b:.6f}\tsinging\n" for a, b in voiced))
    [track] = find_tracks(tmp_path)
    data = load_track(track, config=CONFIG, cache=SpectrogramCache(tmp_path / "cache"))
    n_frames = (3 * 22050 - 1024) // 315 + 1
    assert data.linear.shape == (n_frames, CONFIG.n_bins)
    assert data.log_mel.shape == (n_frames, CONFIG.n_mels)
    assert data.duration_s == pytest.approx(3.0, abs=1e-4)
    assert data.targets.dtype == bool
    np.testing.assert_array_equal(data.targets, expected_targets(voiced, n_frames))
    assert data.targets[35] and not data.targets[34] and data.targets[83] and not data.targets[84]


def test_load_tracks_reports_progress_and_keeps_unlabelled(tmp_path):
    write_song(tmp_path / "a.wav", 1.0, [(0.0, 0.5)])
    write_song(tmp_path / "b.wav", 1.0, [], label_suffix=None)
    tracks, _ = scan_folder(tmp_path, require_labels=False)
    progress = []
    loaded = load_tracks(tracks, config=CONFIG, cache=SpectrogramCache(tmp_path / "cache"),
                         on_progress=lambda done, total, track: progress.append((done, total, track.name)))
    assert progress == [(1, 2, "a"), (2, 2, "b")]
    assert loaded[0].targets.sum() > 0 and loaded[1].targets is None


def test_copied_dataset_reuses_the_cache(tmp_path, monkeypatch):
    import engine.audio
    write_song(tmp_path / "one" / "a.wav", 1.0, [(0.0, 0.5)])
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    calls = []
    real = engine.audio.load_audio
    monkeypatch.setattr(engine.audio, "load_audio", lambda p, **kw: calls.append(p) or real(p, **kw))
    cache = SpectrogramCache(tmp_path / "cache")
    load_tracks(find_tracks(tmp_path / "one") + find_tracks(tmp_path / "two"), config=CONFIG, cache=cache)
    assert len(calls) == 1  # same content, same key
