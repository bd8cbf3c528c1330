"""The CNN of SPEC §3 and its fully-convolutional form of SPEC §6."""

import pytest
import torch

from engine.config import ModelConfig
from engine.model import SingingVoiceCNN, count_parameters, excerpt_logits, fcn_logits

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


def make(config=ModelConfig(), seed=0):
    net = SingingVoiceCNN(config)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net.eval()


def test_paper_network_has_1408225_parameters_and_the_specified_shapes():
    net = make()
    assert count_parameters(net) == 1_408_225
    assert (net.pooled_frames, net.pooled_bands) == (11, 7)
    assert net.fc1.in_features == 64 * 11 * 7 == 4928
    assert [net.conv1.out_channels, net.conv2.out_channels, net.conv3.out_channels,
            net.conv4.out_channels] == [64, 32, 128, 64]
    assert net(torch.randn(3, 1, 115, 80)).shape == (3,)


def test_initialisation_is_orthogonal_with_zero_biases_and_seeded():
    net = make(seed=3)
    for layer in (net.conv1, net.conv2, net.conv3, net.conv4, net.fc1, net.fc2):
        w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-4)
        assert torch.count_nonzero(layer.bias) == 0
    assert torch.equal(make(seed=3).fc1.weight, net.fc1.weight)
    assert not torch.equal(make(seed=4).fc1.weight, net.fc1.weight)


def test_leaky_relu_slope_is_one_hundredth():
    net = make()
    x = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.equal(net._act(x), torch.tensor([-0.02, 0.0, 3.0]))


@pytest.mark.parametrize("n_frames", [1, 2, 9, 10, 57, 200])
def test_fully_convolutional_equals_excerpt_wise_on_random_weights_and_input(n_frames):
    torch.manual_seed(n_frames)
    net = make(seed=n_frames)
    padded = torch.randn(2, 1, n_frames + 114, 80) * 2
    fcn = fcn_logits(net, padded)
    ref = excerpt_logits(net, padded)
    assert fcn.shape == ref.shape == (2, n_frames)
    assert (fcn - ref).abs().max() <= 1e-5
    assert (torch.sigmoid(fcn) - torch.sigmoid(ref)).abs().max() <= 1e-5


def test_fully_convolutional_form_works_for_other_widths():
    net = make(SMALL, seed=1)
    padded = torch.randn(1, 1, 40 + 114, 80)
    assert (fcn_logits(net, padded) - excerpt_logits(net, padded)).abs().max() <= 1e-5


def test_excerpt_wise_path_is_each_excerpt_classified_alone():
    net = make(SMALL)
    padded = torch.randn(1, 1, 5 + 114, 80)
    with torch.no_grad():
        third = net(padded[:, :, 2:2 + 115])
    assert torch.allclose(excerpt_logits(net, padded)[0, 2], third[0], atol=1e-6)


def test_fully_convolutional_needs_one_excerpt_of_input():
    with pytest.raises(ValueError, match="at least 115"):
        fcn_logits(make(SMALL), torch.randn(1, 1, 100, 80))


def test_dropout_is_active_only_in_training_mode():
    net = make(SMALL)
    x = torch.randn(4, 1, 115, 80)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        net.train()
        assert not torch.equal(net(x), net(x))


def _thesis_with_statistics(first_conv: str, seed: int = 0) -> SingingVoiceCNN:
    """A thesis network whose batch norms hold statistics and affine parameters far from identity."""
    net = make(ModelConfig(architecture="thesis", first_conv=first_conv), seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in net.bn.values():
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=g) * 3)
            bn.running_var.copy_(torch.rand(n, generator=g) * 4 + 0.1)
            bn.weight.copy_(torch.randn(n, generator=g))
            bn.bias.copy_(torch.randn(n, generator=g))
    return net


@pytest.mark.parametrize("first_conv", ["plain", "zero-mean"])
def test_evaluation_folds_the_thesis_batch_norms_into_the_weights_and_keeps_the_logits(first_conv, monkeypatch):
    import engine.model as model_module
    net = _thesis_with_statistics(first_conv)
    excerpts = torch.randn(4, 1, 115, 80) * 3 + 1
    padded = torch.randn(1, 1, 30 + 114, 80) * 3
    calls = []
    original = model_module._batch_norm
    monkeypatch.setattr(model_module, "_batch_norm", lambda bn, x: calls.append(bn) or original(bn, x))
    folded, folded_fcn = net(excerpts), fcn_logits(net, padded)
    assert calls == []  # evaluation: no batch-norm pass at all
    monkeypatch.setattr(SingingVoiceCNN, "_folds_batch_norm", lambda self, x: False)
    unfolded, unfolded_fcn = net(excerpts), fcn_logits(net, padded)
    assert len(calls) == 2 * 7  # conv1..conv5, fc1, fc2 in each of the two calls
    scale = unfolded.abs().max()
    assert (folded - unfolded).abs().max() <= 1e-5 * scale
    assert (folded_fcn - unfolded_fcn).abs().max() <= 1e-5 * unfolded_fcn.abs().max()


def test_training_mode_keeps_the_batch_statistics(monkeypatch):
    import engine.model as model_module
    net = _thesis_with_statistics("zero-mean").train()
    calls = []
    original = model_module._batch_norm
    monkeypatch.setattr(model_module, "_batch_norm", lambda bn, x: calls.append(bn) or original(bn, x))
    net(torch.randn(4, 1, 115, 80))
    assert len(calls) == 7
