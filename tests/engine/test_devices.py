"""The engine on every device torch sees: the CPU here and in CI, and a CUDA GPU where there is one.

On a machine with a GPU, ``bash bench/device_check.sh`` runs this file there (the cuda cases are
skipped elsewhere), then the GPU timings of issue 11.
"""

import numpy as np
import pytest
import torch

from engine.augment import augment_excerpts, draw_augmentations
from engine.checkpoint import VoiceModel, load_model
from engine.config import AugmentConfig, ModelConfig, TrainConfig
from engine.predict import predict_samples
from engine.train import checkpoint_path_for, train
from tests.engine.test_variants import FEATURES, TINY, _model, make_songs
from tests.synth import synth_song

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="torch sees no CUDA GPU"))]
RECIPES = [dict(), dict(architecture="thesis", first_conv="zero-mean"), dict(input_norm="instance"),
           dict(architecture="thesis", input_norm="pcen")]


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    return make_songs(tmp_path_factory.mktemp("device-songs"))


def _model_on(device: str, recipe: dict, songs) -> VoiceModel:
    model = _model(recipe, songs)  # tiny, untrained, batch norms with real statistics, eval mode
    model.network.to(device)
    return model


def test_fp32_is_ieee_fp32_on_gpus_too():
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        assert conv.fp32_precision == "ieee" and torch.backends.cuda.matmul.fp32_precision == "ieee"
    else:
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: "-".join(r.values()) or "paper")
@pytest.mark.parametrize("device", DEVICES)
def test_fp32_prediction_is_exact_and_the_same_on_every_device(device, recipe, songs):
    """fp32 is IEEE fp32 on a GPU too (no TF32): FCN = excerpt-wise, and the GPU gives the CPU's numbers."""
    signal = synth_song(5.0, [(1.0, 3.2)], seed=7)
    model = _model_on(device, recipe, songs)
    fcn = predict_samples(model, signal, chunk_frames=50, precision="fp32")
    reference = predict_samples(model, signal, chunk_frames=10 ** 6, excerptwise=True, precision="fp32")
    np.testing.assert_allclose(fcn, reference, rtol=0, atol=1e-5)
    assert fcn.std() > 1e-4
    on_cpu = predict_samples(_model_on("cpu", recipe, songs), signal, precision="fp32")
    np.testing.assert_allclose(fcn, on_cpu, rtol=0, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_augmentation_runs_on_the_device_and_matches_the_cpu(device, songs):
    config = AugmentConfig(max_pitch=0.3, max_stretch=0.3, max_filter_db=10.0, max_loudness_db=10.0)
    model = _model_on("cpu", {}, songs)
    frames = config.source_frames(model.network.config.excerpt_frames)
    source = torch.from_numpy(np.array(songs[0].linear[:frames])).expand(8, -1, -1).contiguous()
    draw = draw_augmentations(config, 8, generator=torch.Generator().manual_seed(0))
    kwargs = dict(config=config, features=FEATURES, normalization=model.normalization)
    on_cpu = augment_excerpts(source, draw, **kwargs)
    on_device = augment_excerpts(source.to(device), draw, **kwargs)
    assert on_device.device.type == device
    torch.testing.assert_close(on_device.cpu(), on_cpu, rtol=1e-4, atol=1e-4)


PRECISIONS = ["fp32", "bf16", pytest.param("fp16", marks=pytest.mark.skipif(not CUDA, reason="fp16 is CUDA-only"))]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("device", DEVICES)
def test_training_runs_on_the_device_in_each_precision(device, precision, songs, tmp_path):
    if device == "cpu" and precision == "fp16":
        pytest.skip("fp16 is CUDA-only")
    out = tmp_path / "m.safetensors"
    steps = list(train(train_data=songs, out_path=out, device=device, model_config=ModelConfig(**TINY),
                       config=TrainConfig(updates=3, validate_every=0, checkpoint_every=0, seed=0,
                                          precision=precision),
                       augment=AugmentConfig.paper(), data_description="synthetic"))
    assert steps[-1].finished and all(np.isfinite(s.loss) for s in steps)
    model = load_model(out)  # on the CPU, whatever it trained on
    assert model.metadata["precision"] == precision
    assert model.metadata["device"].startswith(device)
    probabilities = predict_samples(model, synth_song(3.0, [(0.5, 2.0)], seed=2))
    assert np.isfinite(probabilities).all()


@pytest.mark.skipif(not CUDA, reason="the CPU case is tests/engine/test_train.py (slow)")
def test_a_resumed_gpu_training_gives_the_uninterrupted_result(songs, tmp_path):
    def run(out, **kwargs):
        return train(train_data=songs, out_path=out, device="cuda", model_config=ModelConfig(**TINY),
                     config=TrainConfig(updates=12, validate_every=0, checkpoint_every=4, seed=0, precision="fp32"),
                     augment=AugmentConfig.paper(), data_description="synthetic", **kwargs)
    full = tmp_path / "full.safetensors"
    list(run(full))
    cut = tmp_path / "cut.safetensors"
    steps = run(cut)
    for progress in steps:
        if progress.update == 6:
            break
    steps.close()
    list(train(train_data=songs, out_path=cut, device="cuda", resume_from=checkpoint_path_for(cut),
               config=TrainConfig(updates=12)))
    a, b = load_model(full).network.state_dict(), load_model(cut).network.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)
