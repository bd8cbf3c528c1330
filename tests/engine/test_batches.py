"""Augmented training batches on synthesized songs, and training with augmentation (SPEC §4–5)."""

import dataclasses

import numpy as np
import pytest
import torch

from engine.augment import augment_excerpts, draw_augmentations
from engine.batches import AugmentedBatches, ExcerptBatches
from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, load_model, load_training_state
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, TrainConfig, config_to_dict
from engine.datasets import find_tracks, load_tracks
from engine.errors import DatasetError
from engine.features import linear_to_mel, log_compress
from engine.normalize import compute_normalization
from engine.preview import cut_excerpt
from engine.train import checkpoint_path_for, train
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
FEATURES = FeatureConfig()
FRAMES, CENTRE = 115, 57
LOW, HIGH = 0.02, 0.98
CPU = torch.device("cpu")
PAPER_MIX = dataclasses.replace(AugmentConfig.paper(), mix_probability=0.5)


def _folder(root, n_songs, seed, duration_s=14.0):
    rng = np.random.default_rng(seed)
    for i in range(n_songs):
        write_song(root / f"song{seed}_{i}.flac", duration_s, random_voiced(duration_s, rng), seed=seed * 100 + i)
    return load_tracks(find_tracks(root), config=FEATURES, cache=SpectrogramCache())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """5 training songs of 14 s and 2 validation songs (as in test_train)."""
    root = tmp_path_factory.mktemp("songs")
    return _folder(root / "train", 5, seed=1), _folder(root / "valid", 2, seed=2)


@pytest.fixture(scope="module")
def model(data):
    normalization = compute_normalization(t.log_mel for t in data[0])
    return VoiceModel.create(model_config=SMALL, normalization=normalization, seed=0)


def batches(data, model, augment, seed=0):
    return AugmentedBatches(data[0], model, CPU, LOW, HIGH, augment=augment, seed=seed)


def locate(batches_, tracks):
    """Map every start of ``batches_.starts`` to (track index, first frame in that track).

    The starts of each file form one contiguous run, in file order: n - 114 positions per file.
    """
    places, i = {}, 0
    for t, track in enumerate(tracks):
        run = len(track.linear) - FRAMES + 1
        first = int(batches_.starts[i])
        assert torch.equal(batches_.starts[i:i + run], torch.arange(first, first + run))
        places.update({first + k: (t, k) for k in range(run)})
        i += run
    assert i == len(batches_.starts)
    return places


def expected_targets(places, tracks, starts):
    return torch.tensor([HIGH if tracks[places[int(s)][0]].targets[places[int(s)][1] + CENTRE] else LOW
                         for s in starts], dtype=torch.float32)


def edge_starts(places, tracks):
    """The first and the last valid start of every file."""
    firsts = [s for s, (t, k) in places.items() if k == 0]
    lasts = [s for s, (t, k) in places.items() if k == len(tracks[t].linear) - FRAMES]
    return torch.tensor(sorted(firsts + lasts))


# --- AugmentedBatches ----------------------------------------------------------------------------------

def test_batches_have_the_network_shape_and_central_frame_targets(data, model):
    source = batches(data, model, AugmentConfig.paper(), seed=3)
    places = locate(source, data[0])
    starts = source.starts[torch.randperm(len(source.starts), generator=torch.Generator().manual_seed(0))[:32]]
    excerpts, targets = source.batch(starts)
    assert excerpts.shape == (32, 1, FRAMES, FEATURES.n_mels) and excerpts.dtype == torch.float32
    assert excerpts.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(excerpts).all()
    assert torch.equal(targets, expected_targets(places, data[0], starts))
    assert (targets == LOW).any() and (targets == HIGH).any()  # both classes in the sample


def test_batches_are_the_training_code_applied_to_zero_padded_source_excerpts(data, model):
    """Every excerpt equals augment_excerpts on the file's own frames, zeros beyond its edges."""
    config, seed = AugmentConfig(max_pitch=0.3, max_stretch=0.3, max_filter_db=10, max_loudness_db=3), 5
    source_frames = config.source_frames(FRAMES)
    aug = batches(data, model, config, seed=seed)
    places = locate(aug, data[0])
    starts = edge_starts(places, data[0])
    excerpts, targets = aug.batch(starts)
    draw = draw_augmentations(config, len(starts), generator=torch.Generator().manual_seed(seed),
                              n_partners=len(aug.partners), frames=FRAMES, n_mels=FEATURES.n_mels)
    cut = torch.stack([cut_excerpt(data[0][places[int(s)][0]].linear, places[int(s)][1] + CENTRE, source_frames)
                       for s in starts])
    expected = augment_excerpts(cut, draw, config=config, features=FEATURES, normalization=model.normalization)
    torch.testing.assert_close(excerpts[:, 0], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(targets, expected_targets(places, data[0], starts))
    # Reading the neighbouring file instead of zeros would change the excerpts that stretch slower
    # than 1 (they read the outermost source rows): the zeros are not a no-op.
    margin = source_frames // 2 - CENTRE
    leaky = cut.clone()
    for row, s in enumerate(starts):
        t, k = places[int(s)]
        if k == 0 and t > 0:
            leaky[row, :margin] = torch.from_numpy(np.array(data[0][t - 1].linear[-margin:]))
        elif k > 0 and t + 1 < len(data[0]):
            leaky[row, -margin:] = torch.from_numpy(np.array(data[0][t + 1].linear[:margin]))
    wrong = augment_excerpts(leaky, draw, config=config, features=FEATURES, normalization=model.normalization)
    slow = (draw.stretch_factor < 0.95) & (leaky != cut).flatten(1).any(1)
    assert slow.any()
    assert ((wrong[slow] - excerpts[slow, 0]).abs().flatten(1).max(1).values > 0.01).all()


def test_without_warp_the_batches_equal_the_plain_excerpt_batches(data, model):
    tiny = AugmentConfig(noise_sigma=1e-6)
    assert tiny.enabled and tiny.source_frames(FRAMES) == FRAMES  # no stretch: no margin between files
    aug = batches(data, model, tiny)
    plain = ExcerptBatches(data[0], model, CPU, LOW, HIGH)
    assert torch.equal(aug.starts, plain.starts)
    starts = torch.cat([plain.starts[:8], plain.starts[-8:], plain.starts[1000:1016]])
    (x_aug, y_aug), (x_plain, y_plain) = aug.batch(starts), plain.batch(starts)
    assert x_aug.shape == x_plain.shape
    torch.testing.assert_close(x_aug, x_plain, atol=1e-4, rtol=1e-5)
    assert torch.equal(y_aug, y_plain)


def test_the_partner_pool_holds_exactly_the_non_voice_centres(data, model):
    aug = batches(data, model, PAPER_MIX)
    places = locate(aug, data[0])
    pool = {int(p) for p in aug.partners}
    non_voice = {s for s, (t, k) in places.items() if not data[0][t].targets[k + CENTRE]}
    assert pool == non_voice
    assert 0 < len(pool) < len(places)


def test_mixing_keeps_the_label_and_blends_with_the_chosen_non_voice_excerpt(data, model):
    config, seed = AugmentConfig(mix_probability=1.0), 7
    aug = batches(data, model, config, seed=seed)
    places = locate(aug, data[0])
    voiced = [s for s, (t, k) in places.items() if data[0][t].targets[k + CENTRE]]
    starts = torch.tensor(voiced[::max(1, len(voiced) // 16)][:16])
    excerpts, targets = aug.batch(starts)
    assert torch.equal(targets, torch.full((len(starts),), HIGH))  # A's label, though B has no voice
    draw = draw_augmentations(config, len(starts), generator=torch.Generator().manual_seed(seed),
                              n_partners=len(aug.partners), frames=FRAMES, n_mels=FEATURES.n_mels)
    assert (draw.mix_partner >= 0).all()
    chosen = [places[int(aug.partners[int(i)])] for i in draw.mix_partner]
    assert not any(data[0][t].targets[k + CENTRE] for t, k in chosen)
    a = torch.stack([cut_excerpt(data[0][places[int(s)][0]].linear, places[int(s)][1] + CENTRE, FRAMES)
                     for s in starts])
    b = torch.stack([cut_excerpt(data[0][t].linear, k + CENTRE, FRAMES) for t, k in chosen])
    f = draw.mix_fraction[:, None, None]
    expected = model.normalization.apply(log_compress(linear_to_mel((1 - f) * a + f * b, FEATURES), FEATURES))
    torch.testing.assert_close(excerpts[:, 0], expected, atol=1e-5, rtol=1e-5)
    plain, _ = ExcerptBatches(data[0], model, CPU, LOW, HIGH).batch(starts)
    assert (excerpts - plain).abs().max() > 0.1  # the mix did change the excerpts


def test_mixing_needs_excerpts_without_voice_at_their_centre(data, model):
    all_voice = [dataclasses.replace(t, targets=np.ones_like(t.targets)) for t in data[0]]
    with pytest.raises(DatasetError, match="mixing needs training excerpts without voice"):
        AugmentedBatches(all_voice, model, CPU, LOW, HIGH, augment=PAPER_MIX, seed=0)
    # without mixing the same data are fine
    AugmentedBatches(all_voice, model, CPU, LOW, HIGH, augment=AugmentConfig.paper(), seed=0)


def test_files_shorter_than_one_excerpt_are_skipped_and_none_long_enough_is_an_error(data, model):
    short = [dataclasses.replace(t, linear=t.linear[:100], log_mel=t.log_mel[:100], targets=t.targets[:100])
             for t in data[0]]
    with pytest.raises(DatasetError, match="at least one excerpt long"):
        AugmentedBatches(short, model, CPU, LOW, HIGH, augment=AugmentConfig.paper(), seed=0)
    mixed = [short[0], data[0][1], short[2]]
    aug = AugmentedBatches(mixed, model, CPU, LOW, HIGH, augment=AugmentConfig.paper(), seed=0)
    assert len(aug.starts) == len(data[0][1].linear) - FRAMES + 1


def test_the_same_seed_gives_the_same_batches_and_the_generator_state_restores_them(data, model):
    a, b, c = (batches(data, model, PAPER_MIX, seed=s) for s in (1, 1, 2))
    starts = a.starts[:16]
    first = a.batch(starts)[0]
    assert torch.equal(first, b.batch(starts)[0])
    assert (first - c.batch(starts)[0]).abs().max() > 0.1
    state = a.state()
    second = a.batch(starts)[0]
    assert (second - first).abs().max() > 0.1  # the next batch draws new values
    b.load_state(state)
    assert torch.equal(b.batch(starts)[0], second)


# --- training with augmentation --------------------------------------------------------------------------

def _train(data, out, augment, **overrides):
    settings = dict(updates=20, batch_size=8, validate_every=0, checkpoint_every=0, seed=0)
    settings.update(overrides)
    return train(train_data=data[0], valid_data=data[1], out_path=out, config=TrainConfig(**settings),
                 model_config=SMALL, data_description="synthetic", augment=augment)


@pytest.mark.slow
def test_a_short_augmented_run_still_learns_and_records_the_augmentation(data, tmp_path):
    out = tmp_path / "model.safetensors"
    records = list(_train(data, out, PAPER_MIX, updates=150, batch_size=16))
    assert records[-1].finished and records[-1].update == 150
    valid_targets = np.concatenate([d.targets for d in data[1]])
    chance = min(valid_targets.mean(), 1 - valid_targets.mean())
    assert chance > 0.3
    assert records[-1].validation.error < 0.5 * chance, (records[-1].validation, chance)
    meta = load_model(out).metadata
    assert meta["augment"] == {**config_to_dict(PAPER_MIX),
                               "description": "pitch ±30 %, stretch ±30 %, filter ±10 dB, mix p=0.5"}


def test_resuming_an_augmented_run_reproduces_the_uninterrupted_weights(data, tmp_path):
    config = dataclasses.replace(PAPER_MIX, dropout_probability=0.1, noise_sigma=0.1)
    full_out = tmp_path / "full.safetensors"
    list(_train(data, full_out, config, checkpoint_every=5))
    out = tmp_path / "cut.safetensors"
    run = _train(data, out, config, checkpoint_every=5)
    for progress in run:
        if progress.update == 12:
            break
    run.close()
    ckpt = checkpoint_path_for(out)
    state, info = load_training_state(ckpt)
    assert info["update"] == 12 and info["augment"] == config_to_dict(config)
    assert "augment_rng" in state
    # resuming needs no augment argument: the checkpoint carries it, generator state included
    resumed = list(train(train_data=data[0], valid_data=data[1], out_path=out, resume_from=ckpt,
                         config=TrainConfig(updates=20, batch_size=8)))
    assert resumed[0].update == 13 and resumed[-1].finished
    a, b = load_model(full_out), load_model(out)
    for key, value in a.network.state_dict().items():
        torch.testing.assert_close(b.network.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)
    assert b.metadata["augment"]["max_pitch"] == 0.3 and b.metadata["augment"]["noise_sigma"] == 0.1


def test_without_the_restored_generator_state_a_resumed_run_would_differ(data, tmp_path):
    """The resume test above has teeth: a fresh augmentation generator changes the weights."""
    full_out = tmp_path / "full.safetensors"
    list(_train(data, full_out, PAPER_MIX, updates=8, checkpoint_every=4))
    out = tmp_path / "cut.safetensors"
    run = _train(data, out, PAPER_MIX, updates=8, checkpoint_every=4)
    for progress in run:
        if progress.update == 4:
            break
    run.close()
    ckpt = checkpoint_path_for(out)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AugmentedBatches, "load_state", lambda self, state: None)
        list(train(train_data=data[0], valid_data=data[1], out_path=out, resume_from=ckpt,
                   config=TrainConfig(updates=8, batch_size=8)))
    a, b = load_model(full_out).network.state_dict(), load_model(out).network.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 1e-5


def test_prefetched_batches_and_their_checkpoint_state_equal_the_in_line_ones(data, model):
    from engine.batches import BatchStream
    from engine.sampler import ExcerptSampler

    streams = []
    for prefetch in (False, True):
        source = batches(data, model, AugmentConfig.paper(), seed=3)
        streams.append(BatchStream(source, ExcerptSampler(source.starts, seed=5), 8, prefetch=prefetch))
    try:
        for _ in range(3):
            states = [s.state() for s in streams]  # what a checkpoint taken now would store
            assert states[0].keys() == states[1].keys()
            for key in states[0]:
                assert torch.equal(states[0][key], states[1][key]), key
            (a, ta), (b, tb) = (s.next() for s in streams)
            assert torch.equal(a, b) and torch.equal(ta, tb)
    finally:
        for s in streams:
            s.close()
