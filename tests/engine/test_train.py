"""Training (SPEC §4): a real short run on synthesized songs, cancel, resume, divergence."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cache import SpectrogramCache
from engine.checkpoint import load_model, load_training_state
from engine.config import ModelConfig, TrainConfig
from engine.datasets import find_tracks, load_tracks
from engine.errors import DatasetError, TrainingDiverged
from engine.evaluate import evaluate
from engine.predict import predict_linear
from engine.train import checkpoint_path_for, train
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


def _folder(root, n_songs, seed, duration_s=14.0):
    rng = np.random.default_rng(seed)
    for i in range(n_songs):
        write_song(root / f"song{seed}_{i}.flac", duration_s, random_voiced(duration_s, rng), seed=seed * 100 + i)
    return load_tracks(find_tracks(root), config=__import__("engine.config").config.FeatureConfig(),
                       cache=SpectrogramCache())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    return _folder(root / "train", 5, seed=1), _folder(root / "valid", 2, seed=2)


def _run(data, out, **overrides):
    train_data, valid_data = data
    settings = dict(updates=30, validate_every=0, checkpoint_every=0, seed=0)
    settings.update(overrides)
    return train(train_data=train_data, valid_data=valid_data, out_path=out, config=TrainConfig(**settings),
                 model_config=SMALL, data_description="synthetic")


@pytest.mark.slow
def test_a_few_hundred_updates_learn_the_synthetic_voices_far_better_than_chance(data, tmp_path):
    out = tmp_path / "model.safetensors"
    records = list(_run(data, out, updates=300, validate_every=100))
    validations = [r.validation for r in records if r.validation is not None]
    assert [v.update for v in validations[:3]] == [100, 200, 300]
    assert records[-1].finished and records[-1].update == 300
    valid_targets = np.concatenate([d.targets for d in data[1]])
    chance = min(valid_targets.mean(), 1 - valid_targets.mean())
    assert chance > 0.3
    assert records[-1].validation.error < 0.5 * chance
    # the saved model reproduces the reported figures through the public prediction path
    model = load_model(out)
    probabilities = [predict_linear(model, d.linear) for d in data[1]]
    result = evaluate(probabilities, [d.targets for d in data[1]], ["a", "b"], threshold=model.threshold)
    assert result.pooled.error == pytest.approx(records[-1].validation.error, abs=1e-9)
    assert model.metadata["updates"] == 300 and model.metadata["seed"] == 0
    assert model.metadata["threshold_source"] == "validation"
    assert model.metadata["data"] == "synthetic"
    assert model.metadata["validation"]["error"] == pytest.approx(result.pooled.error)
    assert {"svgui", "torch", "numpy", "python"} <= set(model.metadata["software"])
    assert not checkpoint_path_for(out).exists()


def test_progress_records_follow_the_learning_rate_schedule(data, tmp_path):
    records = list(_run(data, tmp_path / "m.safetensors", updates=25, lr_decay_every=10))
    assert [r.update for r in records[:-1]] == list(range(1, 26))
    rates = [r.learning_rate for r in records[:-1]]
    assert rates[0] == rates[9] == 0.01
    assert rates[10] == pytest.approx(0.0085) and rates[20] == pytest.approx(0.01 * 0.85 ** 2)
    assert all(math.isfinite(r.loss) and r.loss > 0 for r in records)
    assert all(b.elapsed_s >= a.elapsed_s for a, b in zip(records, records[1:]))
    assert records[-1].finished and records[-1].validation is not None


def test_cancel_keeps_a_loadable_checkpoint_and_resume_gives_the_uninterrupted_result(data, tmp_path):
    full_out = tmp_path / "full.safetensors"
    list(_run(data, full_out, updates=20, checkpoint_every=5))
    out = tmp_path / "cut.safetensors"
    run = _run(data, out, updates=20, checkpoint_every=5)
    for progress in run:
        if progress.update == 12:
            break
    run.close()  # what a GUI's Cancel or Ctrl+C does
    ckpt = checkpoint_path_for(out)
    assert ckpt.exists() and not out.exists()
    assert load_model(ckpt).network(torch.zeros(1, 1, 115, 80)).shape == (1,)
    _, info = load_training_state(ckpt)
    assert info["update"] == 12
    resumed = list(train(train_data=data[0], valid_data=data[1], out_path=out, resume_from=ckpt,
                         config=TrainConfig(updates=20)))
    assert resumed[0].update == 13 and resumed[-1].finished
    a, b = load_model(full_out).network.state_dict(), load_model(out).network.state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_a_diverging_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(data, tmp_path):
    out = tmp_path / "m.safetensors"
    with pytest.raises(TrainingDiverged, match="loss became"):
        for _ in _run(data, out, updates=200, learning_rate=1e5, lr_decay=1.0, checkpoint_every=1):
            pass
    ckpt = checkpoint_path_for(out)
    assert ckpt.exists()
    assert all(torch.isfinite(v).all() for v in load_model(ckpt).network.state_dict().values())


def test_training_without_validation_data_picks_the_threshold_on_the_training_files(data, tmp_path):
    out = tmp_path / "m.safetensors"
    list(train(train_data=data[0], out_path=out, config=TrainConfig(updates=5, validate_every=0),
               model_config=SMALL))
    meta = load_model(out).metadata
    assert meta["threshold_source"] == "training" and meta["validation"] is None
    assert meta["threshold_figures"]["n_frames"] == sum(len(d.targets) for d in data[0])


def test_files_shorter_than_one_excerpt_cannot_train(tmp_path):
    short = _folder(tmp_path / "short", 1, seed=3, duration_s=1.0)
    with pytest.raises(DatasetError, match="excerpt"):
        list(train(train_data=short, out_path=tmp_path / "m.safetensors", config=TrainConfig(updates=2),
                   model_config=SMALL))


# --- the output file and the checkpoints of other runs -----------------------------------------

def test_a_file_that_is_not_a_model_is_never_replaced(data, tmp_path):
    from engine.errors import OverwriteRefused
    song = tmp_path / "song.safetensors"
    song.write_bytes(b"ID3 not a model at all" * 100)
    for overwrite in (False, True):
        with pytest.raises(OverwriteRefused, match="is not an svgui model: it is never replaced"):
            next(train(train_data=data[0], out_path=song, config=TrainConfig(updates=2), model_config=SMALL,
                       overwrite=overwrite))
    assert song.read_bytes() == b"ID3 not a model at all" * 100


def test_an_existing_model_is_replaced_only_with_overwrite(data, tmp_path):
    from engine.errors import OverwriteRefused
    out = tmp_path / "m.safetensors"
    list(_run(data, out, updates=2))
    before = out.read_bytes()
    with pytest.raises(OverwriteRefused, match="already holds a model; pass --overwrite"):
        next(_run(data, out, updates=2))
    assert out.read_bytes() == before
    list(train(train_data=data[0], out_path=out, config=TrainConfig(updates=3, validate_every=0),
               model_config=SMALL, overwrite=True))
    assert load_model(out).metadata["updates"] == 3


@pytest.mark.parametrize("name", ["model.flac", "model"])
def test_the_output_must_be_named_as_a_model(data, tmp_path, name):
    from engine.errors import ConfigError
    with pytest.raises(ConfigError, match="must end in .safetensors"):
        next(_run(data, tmp_path / name))
    assert not (tmp_path / name).exists()


def test_an_unwritable_output_folder_is_refused_at_once(data, tmp_path):
    from engine.errors import OutputWriteError
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OutputWriteError, match="cannot write"):
        next(_run(data, tmp_path / "file" / "m.safetensors"))


def test_check_model_output_creates_the_folder_and_leaves_nothing_behind(tmp_path):
    from engine.checkpoint import check_model_output
    out = check_model_output(tmp_path / "new" / "deeper" / "m.safetensors")
    assert out.parent.is_dir() and list(out.parent.iterdir()) == []


def _cancelled_run(data, out, at=7, **overrides):
    run = _run(data, out, updates=20, checkpoint_every=5, **overrides)
    for progress in run:
        if progress.update == at:
            break
    run.close()


def test_a_new_run_keeps_an_older_runs_checkpoint_and_writes_its_own_elsewhere(data, tmp_path):
    out = tmp_path / "m.safetensors"
    _cancelled_run(data, out)  # run A, interrupted: its checkpoint stays at the usual name
    usual = checkpoint_path_for(out)
    a_bytes = usual.read_bytes()
    a_id = load_training_state(usual)[1]["run_id"]
    assert len(a_id) == 16

    records = list(_run(data, out, updates=12, checkpoint_every=5))  # run B, fresh, same output name
    assert "belongs to another training run and is kept" in records[0].note
    assert all(not r.note for r in records[1:])
    own = {Path(r.checkpoint_path).name for r in records if r.checkpoint_path and not r.finished}
    assert len(own) == 1 and re.fullmatch(r"m\.checkpoint-[0-9a-f]{16}\.safetensors", own.pop())
    assert usual.read_bytes() == a_bytes  # A's checkpoint untouched...
    assert not any(p.name.startswith("m.checkpoint-") for p in tmp_path.iterdir())  # ...B's own deleted

    # A can still be resumed; finishing deletes its own checkpoint, as it is this run's.
    resumed = list(train(train_data=data[0], valid_data=data[1], out_path=out, resume_from=usual,
                         config=TrainConfig(updates=20), overwrite=True))
    assert resumed[0].note == "" and resumed[-1].finished
    assert not usual.exists()


def test_a_resumed_run_keeps_its_run_id(data, tmp_path):
    out = tmp_path / "m.safetensors"
    _cancelled_run(data, out, at=7)
    ckpt = checkpoint_path_for(out)
    run_id = load_training_state(ckpt)[1]["run_id"]
    run = train(train_data=data[0], valid_data=data[1], out_path=out, resume_from=ckpt,
                config=TrainConfig(updates=20))
    for progress in run:
        if progress.update == 11:
            break
    run.close()
    assert load_training_state(ckpt)[1]["run_id"] == run_id


def test_a_foreign_file_at_the_checkpoint_name_is_kept(data, tmp_path):
    out = tmp_path / "m.safetensors"
    usual = checkpoint_path_for(out)
    usual.write_bytes(b"my notes, not a checkpoint")
    records = list(_run(data, out, updates=6, checkpoint_every=5))
    assert "is kept" in records[0].note
    assert usual.read_bytes() == b"my notes, not a checkpoint"


def test_a_crafted_checkpoint_with_wrong_momentum_is_a_clear_error(data, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from engine.errors import ModelFileError
    out = tmp_path / "m.safetensors"
    _cancelled_run(data, out)
    ckpt = checkpoint_path_for(out)
    with safe_open(str(ckpt), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(ckpt))
    tensors["train.momentum.0"] = torch.zeros(3)
    save_file(tensors, str(ckpt), metadata=meta)
    with pytest.raises(ModelFileError, match="damaged checkpoint .momentum 0 has shape"):
        list(train(train_data=data[0], valid_data=data[1], out_path=out, resume_from=ckpt,
                   config=TrainConfig(updates=20)))


def test_a_full_disk_at_a_checkpoint_stops_with_a_clean_error_and_keeps_the_last_one(data, tmp_path, monkeypatch):
    import errno

    from engine import fileio
    from engine.errors import OutputWriteError
    out = tmp_path / "m.safetensors"
    real_fsync, calls = fileio.os.fsync, []

    def fsync_then_full(fd):
        calls.append(fd)
        if len(calls) > 1:  # the first checkpoint fits, the disk is full after it
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(fileio.os, "fsync", fsync_then_full)
    with pytest.raises(OutputWriteError, match="No space left on device"):
        list(_run(data, out, updates=20, checkpoint_every=5))
    ckpt = checkpoint_path_for(out)
    assert load_training_state(ckpt)[1]["update"] == 5  # the last good checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]  # no temporary file, no model


def test_a_checkpoint_asking_for_a_huge_batch_is_refused(data, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from engine.errors import ModelFileError
    out = tmp_path / "m.safetensors"
    _cancelled_run(data, out)
    ckpt = checkpoint_path_for(out)
    with safe_open(str(ckpt), framework="pt") as handle:
        meta = dict(handle.metadata())
    header = json.loads(meta["svgui"])
    header["training"]["config"]["batch_size"] = 10**9
    meta["svgui"] = json.dumps(header)
    save_file(load_file(str(ckpt)), str(ckpt), metadata=meta)
    with pytest.raises(ModelFileError, match="batch_size = 1000000000 is outside"):
        next(train(train_data=data[0], out_path=out, resume_from=ckpt, config=TrainConfig(updates=20)))
