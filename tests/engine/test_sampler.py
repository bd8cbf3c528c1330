"""Tests of the excerpt sampler: without replacement, reshuffled, seeded, resumable."""

import pytest
import torch

from engine.errors import DatasetError
from engine.sampler import BalancedSampler, ExcerptSampler

N_STARTS = 101
STARTS = torch.arange(N_STARTS) * 7 + 3  # distinct values, not their indices


def draw(sampler: ExcerptSampler, n: int, sizes=(7, 3, 11, 5, 1)) -> torch.Tensor:
    """``n`` starts drawn in a cycle of odd batch sizes (crossing epoch boundaries mid-batch)."""
    out, k = [], 0
    while sum(len(b) for b in out) < n:
        size = min(sizes[k % len(sizes)], n - sum(len(b) for b in out))
        batch = sampler.next_batch(size)
        assert batch.shape == (size,)
        out.append(batch)
        k += 1
    return torch.cat(out)


def test_every_start_appears_once_per_epoch_and_reshuffles():
    sampler = ExcerptSampler(STARTS, seed=5)
    drawn = draw(sampler, 3 * N_STARTS)
    epochs = drawn.reshape(3, N_STARTS)
    for epoch in epochs:
        assert torch.equal(epoch.sort().values, STARTS)
    assert not torch.equal(epochs[0], epochs[1])
    assert not torch.equal(epochs[1], epochs[2])
    assert not torch.equal(epochs[0], STARTS)  # shuffled, not in order
    assert sampler.epoch == 2 and sampler.position == N_STARTS


def test_batch_crossing_the_epoch_boundary():
    sampler = ExcerptSampler(STARTS, seed=0)
    first = sampler.next_batch(N_STARTS - 2)
    crossing = sampler.next_batch(5)
    assert set(first.tolist()) | set(crossing[:2].tolist()) == set(STARTS.tolist())
    assert sampler.epoch == 1 and sampler.position == 3


def test_batch_larger_than_an_epoch():
    sampler = ExcerptSampler(torch.tensor([10, 20, 30]), seed=0)
    batch = sampler.next_batch(7)
    assert sorted(batch[:3].tolist()) == [10, 20, 30]
    assert sorted(batch[3:6].tolist()) == [10, 20, 30]
    assert sampler.epoch == 2


def test_same_seed_same_sequence_other_seed_other_sequence():
    a = draw(ExcerptSampler(STARTS, seed=11), 250)
    b = draw(ExcerptSampler(STARTS, seed=11), 250, sizes=(1, 9, 13))  # batch sizes don't matter
    c = draw(ExcerptSampler(STARTS, seed=12), 250)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_state_resumes_the_exact_sequence():
    reference = ExcerptSampler(STARTS, seed=3)
    expected = draw(reference, 400)

    sampler = ExcerptSampler(STARTS, seed=3)
    head = draw(sampler, 137)  # mid second epoch
    state = {k: v.clone() for k, v in sampler.state().items()}
    resumed = ExcerptSampler(STARTS, seed=999)  # a different seed: the state must win
    resumed.load_state(state)
    assert (resumed.position, resumed.epoch) == (sampler.position, sampler.epoch)
    tail = draw(resumed, 400 - 137)
    assert torch.equal(torch.cat([head, tail]), expected)
    # The original sampler, untouched by load_state, continues identically.
    assert torch.equal(draw(sampler, 400 - 137), tail)


def test_state_holds_only_tensors():
    state = ExcerptSampler(STARTS, seed=0).state()
    assert set(state) == {"sampler_order", "sampler_rng", "sampler_position"}
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_load_state_with_other_number_of_starts_is_a_dataset_error():
    state = ExcerptSampler(STARTS, seed=0).state()
    other = ExcerptSampler(STARTS[:-1], seed=0)
    with pytest.raises(DatasetError, match=f"{N_STARTS} excerpt positions.*{N_STARTS - 1}"):
        other.load_state(state)


def test_no_starts_is_an_error():
    with pytest.raises(ValueError, match="no excerpt positions"):
        ExcerptSampler(torch.zeros(0, dtype=torch.long), seed=0)


def test_balanced_sampler_draws_voiced_and_unvoiced_in_equal_shares_and_resumes():
    voiced = torch.zeros(N_STARTS, dtype=torch.bool)
    voiced[:10] = True  # 10 % voiced, as a tuning set of accompaniments would be (or 90 % the other way)
    sampler = BalancedSampler(STARTS, voiced, seed=4)
    batches = [sampler.next_batch(size) for size in (8, 7, 7, 32)]
    drawn = torch.cat(batches)
    is_voiced = torch.isin(drawn, STARTS[voiced])
    assert is_voiced.sum() == len(drawn) // 2  # odd batches alternate the extra excerpt: 4+4, 4+3, 3+4, 16+16
    assert [int(torch.isin(b, STARTS[voiced]).sum()) for b in batches] == [4, 4, 3, 16]
    # the rare class repeats (10 voiced starts, 27 voiced draws), each once per its own epoch
    assert torch.equal(drawn[is_voiced][:10].sort().values, STARTS[:10])
    state = sampler.state()
    resumed = BalancedSampler(STARTS, voiced, seed=99)
    resumed.load_state(state)
    assert torch.equal(sampler.next_batch(9), resumed.next_batch(9))


def test_balanced_sampler_needs_both_classes():
    with pytest.raises(DatasetError, match="needs both; these data have only voiced"):
        BalancedSampler(STARTS, torch.ones(N_STARTS, dtype=torch.bool), seed=0)
