"""Fine-tuning (train --init): the parent's normalization kept, the parent recorded, the loss lowered."""

import numpy as np
import pytest
import torch

from engine import train as train_module
from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, load_model, read_header, save_model
from engine.cli import main
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, TrainConfig
from engine.datasets import find_tracks, load_tracks
from engine.errors import ConfigError, DatasetError
from engine.fileio import file_sha256
from engine.finetune import (
    FINETUNE_LR_FACTOR,
    TuneOptions,
    finetune_config,
    lineage,
    parent_augment,
    parent_augment_for,
)
from engine.normalize import Normalization, compute_normalization
from engine.predict import predict_linear
from engine.train import checkpoint_path_for, train
from tests.cli_helpers import assert_one_line_error
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
FEATURES = FeatureConfig()


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    rng = np.random.default_rng(7)
    for i in range(3):
        write_song(root / "mine" / f"song{i}.flac", 12.0, random_voiced(12.0, rng), seed=70 + i)
    write_song(root / "silent" / "a.flac", 8.0, [], seed=80)
    write_song(root / "silent" / "b.flac", 8.0, [], seed=81)
    return root


@pytest.fixture(scope="module")
def data(songs):
    return load_tracks(find_tracks(songs / "mine"), config=FEATURES, cache=SpectrogramCache())


@pytest.fixture(scope="module")
def parent(tmp_path_factory, data):
    """A 'trained' parent: its own normalization statistics (not those of the fine-tuning data)."""
    own = compute_normalization(d.log_mel for d in data)  # shifted: the parent saw other music
    model = VoiceModel.create(model_config=SMALL, features=FEATURES, seed=3,
                              normalization=Normalization(own.mean + 0.3, own.std * 1.2))
    model.threshold = 0.4
    model.metadata = {"name": "parent-net", "data": "the parent's corpus", "updates": 123,
                      "train_config": {"learning_rate": 0.02, "batch_size": 8},
                      "augment": {"max_pitch": 0.2, "description": "pitch ±20 %"}}
    return save_model(tmp_path_factory.mktemp("parent") / "parent.safetensors", model)


def _loss(model, data) -> float:
    """Mean binary cross-entropy of the whole-file predictions against the 0.02/0.98 training targets."""
    losses = []
    for d in data:
        p = torch.from_numpy(predict_linear(model, d.linear)).double().clamp(1e-6, 1 - 1e-6)
        target = torch.from_numpy(d.targets).double() * 0.96 + 0.02
        losses.append(torch.nn.functional.binary_cross_entropy(p, target).item())
    return float(np.mean(losses))


def test_finetuning_keeps_the_normalization_records_the_parent_and_lowers_the_loss(parent, data, tmp_path):
    out = tmp_path / "child.safetensors"
    assert finetune_config(parent).learning_rate == pytest.approx(0.02 * FINETUNE_LR_FACTOR)  # the parent's, lowered
    config = finetune_config(parent, updates=100, batch_size=16, validate_every=0, checkpoint_every=0)
    records = list(train(train_data=data[:2], valid_data=data[2:], out_path=out, config=config,
                         features=FEATURES, init_from=parent, data_description="my corrections", name="child"))
    assert records[-1].finished and records[-1].update == 100
    before, child = load_model(parent), load_model(out)
    np.testing.assert_array_equal(child.normalization.mean, before.normalization.mean)
    np.testing.assert_array_equal(child.normalization.std, before.normalization.std)
    assert child.model_config == SMALL and child.features == before.features
    recorded = child.metadata["parent"]
    assert recorded["file"] == "parent.safetensors" and recorded["sha256"] == file_sha256(parent)
    assert recorded["name"] == "parent-net" and recorded["data"] == "the parent's corpus"
    assert lineage(child.metadata) == ["parent-net", "child"]
    assert _loss(child, data[:2]) < _loss(before, data[:2])


def test_a_grandchild_records_the_whole_lineage(parent, data, tmp_path):
    config = finetune_config(parent, updates=2, validate_every=0, checkpoint_every=0)
    child, grandchild = tmp_path / "child.safetensors", tmp_path / "grandchild.safetensors"
    list(train(train_data=data[:2], valid_data=(), out_path=child, config=config, init_from=parent, name="c1"))
    list(train(train_data=data[:2], valid_data=(), out_path=grandchild, config=config, init_from=child, name="c2"))
    meta = read_header(grandchild)["metadata"]
    assert lineage(meta) == ["parent-net", "c1", "c2"]
    assert meta["parent"]["sha256"] == file_sha256(child)
    # no validation files: the parent's threshold stays (not one fitted to the two files just trained on)
    assert meta["threshold_source"] == "parent" and read_header(grandchild)["threshold"] == pytest.approx(0.4)


def test_fewer_than_two_labelled_files_are_refused(parent, data, tmp_path):
    with pytest.raises(DatasetError, match="at least 2 labelled files, got 1"):
        list(train(train_data=data[:1], out_path=tmp_path / "c.safetensors", init_from=parent,
                   config=TrainConfig(updates=2)))
    assert not (tmp_path / "c.safetensors").exists()


def test_files_without_voice_are_refused_or_named(parent, songs, data, tmp_path):
    silent = load_tracks(find_tracks(songs / "silent"), config=FEATURES, cache=SpectrogramCache())
    with pytest.raises(DatasetError, match="none of the 2 fine-tuning file.* has voice.*a, b"):
        list(train(train_data=silent, out_path=tmp_path / "c.safetensors", init_from=parent,
                   config=TrainConfig(updates=2)))
    records = list(train(train_data=[*silent[:1], *data[:1]], out_path=tmp_path / "d.safetensors", init_from=parent,
                         config=TrainConfig(updates=2, validate_every=0, checkpoint_every=0)))
    assert "no voice in the labels of a" in records[0].note


def test_data_with_other_features_is_refused(parent, data, tmp_path):
    other = FeatureConfig(n_mels=64)
    with pytest.raises(ConfigError, match="features differ from the model's: n_mels 64 \\(model: 80\\)"):
        list(train(train_data=data, out_path=tmp_path / "c.safetensors", init_from=parent, features=other,
                   config=TrainConfig(updates=2)))


def test_cli_init_uses_the_short_schedule_and_the_parents_augmentation(parent, songs, tmp_path, capsys):
    out = tmp_path / "cli-child.safetensors"
    code = main(["train", "--init", str(parent), "--train", str(songs / "mine"), "--out", str(out),
                 "--updates", "3", "--batch-size", "8", "--device", "cpu", "--precision", "fp32"])
    assert code == 0, capsys.readouterr().err
    meta = read_header(out)["metadata"]
    assert meta["train_config"]["learning_rate"] == pytest.approx(0.002)
    assert meta["train_config"]["validate_every"] == 100 and meta["augment"]["max_pitch"] == 0.2
    assert meta["tune"] == {"freeze": "features", "balance": True}  # the measured default recipe
    assert meta["parent"]["file"] == "parent.safetensors"
    assert parent_augment(parent) == AugmentConfig(max_pitch=0.2)
    assert "fine-tuning" in capsys.readouterr().err
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert f"fine-tuned from: parent-net (parent.safetensors, sha256 {file_sha256(parent)})" in info
    assert "lineage: parent-net -> cli-child" in info
    assert "fine-tuning: convolutional layers frozen, voiced/unvoiced excerpts balanced" in info


def test_a_parent_trained_with_remixing_fine_tunes_on_files_without_stems(data, songs, tmp_path, capsys):
    """The bundled model was trained with stem remixing; a user's corrected files have no stems."""
    model = VoiceModel.create(model_config=SMALL, features=FEATURES, seed=4,
                              normalization=compute_normalization(d.log_mel for d in data))
    model.metadata = {"name": "remixed-net", "augment": {"max_pitch": 0.2, "remix_probability": 0.5}}
    remixed = save_model(tmp_path / "remixed.safetensors", model)
    tracks = find_tracks(songs / "mine")
    augment, note = parent_augment_for(remixed, tracks)
    assert augment == AugmentConfig(max_pitch=0.2) and "none of the training files has stems" in note
    out = tmp_path / "child.safetensors"
    code = main(["train", "--init", str(remixed), "--train", str(songs / "mine"), "--out", str(out),
                 "--updates", "2", "--batch-size", "8", "--device", "cpu", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "leaves remixing out" in err and read_header(out)["metadata"]["augment"]["remix_probability"] == 0.0
    stems = tmp_path / "stems"  # with stems beside a mix, the parent's remixing is kept
    write_song(stems / "song.flac", 4.0, [(1.0, 3.0)], seed=90)
    write_song(stems / "song (accompaniment).flac", 4.0, [], seed=91)
    assert parent_augment_for(remixed, find_tracks(stems)) == (AugmentConfig(max_pitch=0.2, remix_probability=0.5), None)


def test_cli_init_with_one_file_is_one_clear_error(parent, songs, tmp_path, capsys):
    one = tmp_path / "one"
    write_song(one / "x.flac", 6.0, [(1.0, 3.0)], seed=5)
    code = main(["train", "--init", str(parent), "--train", str(one), "--out", str(tmp_path / "c.safetensors"),
                 "--updates", "3", "--device", "cpu"])
    assert_one_line_error(code, capsys.readouterr().err, "at least 2 labelled files", "x")


def test_frozen_features_keep_the_parents_convolutions_and_train_the_dense_layers(parent, data, tmp_path):
    out = tmp_path / "frozen.safetensors"
    config = finetune_config(parent, updates=6, batch_size=8, validate_every=3, checkpoint_every=0)
    list(train(train_data=data[:2], valid_data=data[2:], out_path=out, config=config, init_from=parent,
               tune=TuneOptions(freeze="features")))
    before, child = load_model(parent).network.state_dict(), load_model(out).network.state_dict()
    for name in before:
        if name.startswith("conv"):
            torch.testing.assert_close(child[name], before[name], rtol=0, atol=0, msg=name)
        else:
            assert not torch.equal(child[name], before[name]), f"{name} did not learn"
    assert read_header(out)["metadata"]["tune"] == {"freeze": "features", "balance": False}


def test_freezing_needs_a_trained_model(data, tmp_path):
    with pytest.raises(ConfigError, match="freezing the features layers needs a trained model"):
        next(train(train_data=data[:2], out_path=tmp_path / "m.safetensors", config=TrainConfig(updates=2),
                   model_config=SMALL, tune=TuneOptions(freeze="features")))
    with pytest.raises(ConfigError, match="freeze must be one of none, features, got 'conv'"):
        TuneOptions(freeze="conv")


def _voiced_shares(monkeypatch, parent, data, tmp_path, tune, augment=AugmentConfig()) -> list[float]:
    """The share of voiced targets in each training batch of a short fine-tuning run."""
    shares = []

    class Recording(train_module.BatchStream):
        def next(self):
            excerpts, targets = super().next()
            shares.append(float((targets > 0.5).float().mean()))
            return excerpts, targets

    monkeypatch.setattr(train_module, "BatchStream", Recording)
    config = finetune_config(parent, updates=8, batch_size=16, validate_every=0, checkpoint_every=0)
    list(train(train_data=data, out_path=tmp_path / f"b{tune.balance}{augment.enabled}.safetensors", config=config,
               init_from=parent, tune=tune, augment=augment))
    return shares


def test_balance_draws_voiced_and_unvoiced_excerpts_in_equal_shares(monkeypatch, parent, songs, data, tmp_path):
    # mostly unvoiced data: one song and two instrumentals
    silent = load_tracks(find_tracks(songs / "silent"), config=FEATURES, cache=SpectrogramCache())
    skewed = [data[0], *silent]
    plain = _voiced_shares(monkeypatch, parent, skewed, tmp_path, TuneOptions(balance=False))
    balanced = _voiced_shares(monkeypatch, parent, skewed, tmp_path, TuneOptions(balance=True))
    assert np.mean(plain) < 0.45 and len(set(plain)) > 1  # as the data come: about a quarter voiced
    assert balanced == [0.5] * len(balanced)
    assert read_header(tmp_path / "bTrueFalse.safetensors")["metadata"]["tune"]["balance"] is True
    # augmented batches (the paper's augmentation, as the bundled model's fine-tuning uses) likewise
    augmented = _voiced_shares(monkeypatch, parent, skewed, tmp_path, TuneOptions(balance=True),
                               augment=AugmentConfig(max_pitch=0.2, max_stretch=0.2))
    assert augmented == [0.5] * len(augmented)


def test_cli_freeze_and_balance_flags_are_recorded_and_freeze_needs_init(parent, songs, tmp_path, capsys):
    out = tmp_path / "flags.safetensors"
    code = main(["train", "--init", str(parent), "--train", str(songs / "mine"), "--out", str(out),
                 "--updates", "2", "--batch-size", "8", "--device", "cpu", "--freeze", "none", "--balance"])
    assert code == 0, capsys.readouterr().err
    assert read_header(out)["metadata"]["tune"] == {"freeze": "none", "balance": True}
    assert "all layers trained, voiced/unvoiced excerpts balanced" in capsys.readouterr().err
    code = main(["train", "--train", str(songs / "mine"), "--out", str(tmp_path / "scratch.safetensors"),
                 "--updates", "2", "--device", "cpu", "--freeze", "features"])
    assert_one_line_error(code, capsys.readouterr().err, "--freeze needs --init MODEL")


def test_a_resumed_frozen_run_stays_frozen(parent, data, tmp_path):
    out = tmp_path / "resumed.safetensors"
    config = finetune_config(parent, updates=6, batch_size=8, validate_every=0, checkpoint_every=0)
    steps = train(train_data=data[:2], out_path=out, config=config, init_from=parent,
                  tune=TuneOptions(freeze="features", balance=True))
    for record in steps:
        if record.update == 3:
            break
    steps.close()  # cancelled: the checkpoint keeps the tuning options with the optimizer state
    checkpoint = checkpoint_path_for(out)
    records = list(train(train_data=data[:2], out_path=out, config=TrainConfig(updates=6), resume_from=checkpoint))
    assert records[-1].update == 6
    child, before = load_model(out), load_model(parent)
    assert child.metadata["tune"] == {"freeze": "features", "balance": True}
    torch.testing.assert_close(child.network.conv1.weight, before.network.conv1.weight, rtol=0, atol=0)


def test_fine_tuning_files_sung_throughout_are_refused(parent, songs, tmp_path):
    sung = tmp_path / "sung"
    for i in range(2):
        write_song(sung / f"all{i}.flac", 6.0, [(0.0, 6.0)], seed=90 + i)
    data = load_tracks(find_tracks(sung), config=FEATURES, cache=SpectrogramCache())
    assert all(d.targets.all() for d in data)
    with pytest.raises(DatasetError, match="every frame of the 2 fine-tuning file.* is labelled voice.*all0, all1"):
        list(train(train_data=data, out_path=tmp_path / "c.safetensors", init_from=parent,
                   config=TrainConfig(updates=2)))
