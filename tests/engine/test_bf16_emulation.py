"""Emulated bf16 on CPUs without bf16 kernels: convolutions on bf16 values in fp32 arithmetic give
torch's own bf16 results (which take a slow reference path there), and only inside bf16 autocast."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from engine import precision as precision_module
from engine.precision import Bf16ConvolutionsInFp32, autocast

BF16_STEP = 2.0 ** -7  # relative spacing of bf16 numbers: one rounding step


def _conv_cases():
    generator = torch.Generator().manual_seed(0)
    x2 = torch.randn(4, 3, 20, 16, generator=generator, requires_grad=True)
    w2 = torch.randn(5, 3, 3, 3, generator=generator, requires_grad=True)
    b2 = torch.randn(5, generator=generator, requires_grad=True)
    x1 = torch.randn(2, 4, 30, generator=generator, requires_grad=True)
    w1 = torch.randn(6, 4, 5, generator=generator, requires_grad=True)
    return [(F.conv2d, (x2, w2, b2), {"padding": 1}), (F.conv2d, (x2, w2), {"bias": b2, "stride": 2}),
            (F.conv1d, (x1, w1), {})]


def _run(conv, args, kwargs, emulate: bool):
    for tensor in (*args, *kwargs.values()):
        if isinstance(tensor, torch.Tensor):
            tensor.grad = None
    mode = Bf16ConvolutionsInFp32() if emulate else contextlib.nullcontext()
    with torch.autocast("cpu", dtype=torch.bfloat16), mode:
        y = conv(*args, **kwargs)
    (y.float() ** 2).sum().backward()
    grads = [t.grad.clone() for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    return y.detach(), grads


@pytest.mark.parametrize("case", range(3))
def test_emulated_convolutions_give_torchs_bf16_results(case):
    conv, args, kwargs = _conv_cases()[case]
    reference, reference_grads = _run(conv, args, kwargs, emulate=False)
    emulated, emulated_grads = _run(conv, args, kwargs, emulate=True)
    assert emulated.dtype == reference.dtype == torch.bfloat16
    # Both round the same fp32 sums; a sum that lies at a rounding boundary may land one step apart.
    torch.testing.assert_close(emulated.float(), reference.float(), rtol=BF16_STEP, atol=1e-6)
    assert (emulated == reference).float().mean() > 0.95
    with torch.no_grad():
        fp32 = conv(*[a.detach() for a in args], **{k: v.detach() if isinstance(v, torch.Tensor) else v
                                                     for k, v in kwargs.items()})
    assert (emulated.float() - fp32).abs().max() > 0  # really bf16, not fp32 in disguise
    for got, want in zip(emulated_grads, reference_grads):
        assert got.dtype == want.dtype == torch.float32
        assert ((got - want).norm() / want.norm()) < 4 * BF16_STEP  # the order of fp32 sums differs


def test_the_emulation_touches_nothing_outside_bf16_autocast():
    conv, args, kwargs = _conv_cases()[0]
    with torch.no_grad():
        fp32 = conv(*args, **kwargs)
        with Bf16ConvolutionsInFp32():
            assert torch.equal(conv(*args, **kwargs), fp32)
        with autocast("bf16", "cpu"), torch.autocast("cpu", enabled=False):
            assert torch.equal(conv(*args, **kwargs), fp32)
        x, weight = args[0][..., :3], args[1][0, 0]  # other ops stay torch's own bf16 kernels
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reference = F.linear(x, weight)
        with torch.autocast("cpu", dtype=torch.bfloat16), Bf16ConvolutionsInFp32():
            assert torch.equal(F.linear(x, weight), reference)


@pytest.mark.parametrize("native", [False, True])
def test_autocast_emulates_only_where_the_cpu_has_no_bf16(monkeypatch, native):
    monkeypatch.setattr(precision_module, "_cpu_has_native_bf16", lambda: native)
    modes = []

    def record(self, func, types, args=(), kwargs=None):
        modes.append(func)
        return func(*args, **(kwargs or {}))
    monkeypatch.setattr(Bf16ConvolutionsInFp32, "__torch_function__", record)
    conv, args, kwargs = _conv_cases()[0]
    with torch.no_grad(), autocast("bf16", "cpu"):
        assert conv(*args, **kwargs).dtype == torch.bfloat16
    assert bool(modes) is (not native)
    choice = precision_module.PrecisionChoice("bf16", "bf16", "cpu", native, "")
    modes.clear()
    with torch.no_grad(), autocast(choice, "cpu"):  # a resolved choice says itself whether it is native
        conv(*args, **kwargs)
    assert bool(modes) is (not native)
    modes.clear()
    with torch.no_grad(), autocast("fp32", "cpu"):
        conv(*args, **kwargs)
    assert modes == []
