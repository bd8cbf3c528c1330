"""Speed benchmark: features, fully-convolutional vs excerpt-wise prediction, memory, in one run.

Speeds are reported as multiples of real time and as ratios measured in the same process, since
absolute times on shared machines are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from engine.checkpoint import VoiceModel
from engine.config import FeatureConfig, PredictConfig
from engine.devices import pick_device
from engine.features import log_mel_spectrogram
from engine.precision import choose_precision, cpu_features, describe_cpu_features
from engine.predict import predict_samples
from engine.timing import best_time_s


def synth_music(duration_s: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Deterministic test signal: a few harmonic tones over noise (content does not matter for speed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * sample_rate), dtype=np.float64) / sample_rate
    signal = 0.05 * rng.standard_normal(len(t))
    for f0 in (110.0, 220.0 * 2 ** (4 / 12), 330.0):
        signal += 0.1 * np.sin(2 * np.pi * f0 * t * (1 + 0.002 * np.sin(2 * np.pi * 5 * t)))
    return (signal / np.abs(signal).max() * 0.9).astype(np.float32)


def machine_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "cpu_features": cpu_features()}


def run_speed_benchmark(*, seconds: float = 180.0, excerpt_seconds: float = 20.0,
                        memory_hours: float = 0.0, precision: str | None = None, device: str | None = "cpu") -> dict:
    """Time each stage on ``seconds`` of audio; the excerpt-wise reference on ``excerpt_seconds``.

    Prediction runs in fp32 and in ``precision`` (default: what ``auto`` picks) side by side;
    the exactness check (fully convolutional = excerpt-wise) is fp32.
    """
    features = FeatureConfig()
    torch_device = pick_device(device)
    model = VoiceModel.create(features=features)  # speed does not depend on the weights
    model.network.to(torch_device)
    auto = choose_precision("auto", torch_device).precision
    compared = choose_precision(precision or "auto", torch_device).precision
    samples = synth_music(seconds, features.sample_rate)
    short = samples[:int(excerpt_seconds * features.sample_rate)]
    report = {"machine": machine_description(), "device": str(torch_device), "audio_s": seconds,
              "excerpt_audio_s": excerpt_seconds, "precision_auto": auto, "precision_compared": compared}

    with tempfile.TemporaryDirectory() as tmp:
        flac = Path(tmp) / "bench.flac"
        stereo_44k = np.repeat(synth_music(seconds, 44100)[:, None], 2, axis=1)
        sf.write(flac, stereo_44k, 44100)
        from engine.audio import load_audio
        decode_s = best_time_s(lambda: load_audio(flac), 2)
    features_s = best_time_s(lambda: log_mel_spectrogram(samples, features), 3)
    fcn_s = best_time_s(lambda: predict_samples(model, samples), 2)
    tta_s = best_time_s(lambda: predict_samples(model, samples, pitch_factors=PredictConfig().tta_pitch_factors), 1)
    fcn_short_s = best_time_s(lambda: predict_samples(model, short), 2)
    excerpt_short_s = best_time_s(lambda: predict_samples(model, short, excerptwise=True), 1)
    check = np.abs(predict_samples(model, short[:features.sample_rate * 5])
                   - predict_samples(model, short[:features.sample_rate * 5], excerptwise=True)).max()
    if compared == "fp32":  # the very same code path: no second timing
        compared_s, compared_tta_s, compared_diff = fcn_s, tta_s, 0.0
    else:
        compared_s = best_time_s(lambda: predict_samples(model, samples, precision=compared), 2)
        compared_tta_s = best_time_s(lambda: predict_samples(model, samples, precision=compared,
                                                             pitch_factors=PredictConfig().tta_pitch_factors), 1)
        compared_diff = float(np.abs(predict_samples(model, short, precision=compared)
                                     - predict_samples(model, short)).max())
    report.update({
        "decode_resample_44k_stereo_x_realtime": seconds / decode_s,
        "features_x_realtime": seconds / features_s,
        "fcn_prediction_x_realtime": seconds / fcn_s,
        "fcn_tta5_prediction_x_realtime": seconds / tta_s,
        "excerptwise_prediction_x_realtime": excerpt_seconds / excerpt_short_s,
        "fcn_vs_excerptwise_speedup": excerpt_short_s / fcn_short_s,
        "fcn_vs_excerptwise_max_abs_diff": float(check),
        "fcn_prediction_fp32_x_realtime": seconds / fcn_s,
        "fcn_prediction_auto_x_realtime": seconds / compared_s,
        "fcn_tta5_prediction_auto_x_realtime": seconds / compared_tta_s,
        "fcn_prediction_auto_vs_fp32_speedup": fcn_s / compared_s,
        "fcn_prediction_auto_vs_fp32_max_abs_diff": compared_diff,
    })
    if memory_hours > 0:
        report["memory_hours"] = memory_hours
        report["peak_rss_mb_predicting"] = peak_memory_mb(memory_hours)
    return report


def peak_memory_mb(hours: float) -> float:
    """Peak resident memory of a fresh process that decodes and predicts a ``hours``-long FLAC."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.flac"
        sample_rate = FeatureConfig.sample_rate
        with sf.SoundFile(path, "w", samplerate=sample_rate, channels=2, format="FLAC") as out:
            block = np.repeat(synth_music(60.0, sample_rate)[:, None], 2, axis=1)
            for _ in range(int(round(hours * 60))):
                out.write(block)
        code = ("import resource, sys\n"
                "from engine.checkpoint import VoiceModel\n"
                "from engine.predict import predict_file\n"
                "p = predict_file(VoiceModel.create(), sys.argv[1])\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def format_report(report: dict) -> str:
    m = report["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)",
             f"cpu features: {describe_cpu_features(m['cpu_features'])}",
             f"precision: auto picks {report['precision_auto']} on {report['device']}; "
             f"fp32 vs {report['precision_compared']} below",
             f"audio: {report['audio_s']:.0f} s synthesized (excerpt-wise reference on {report['excerpt_audio_s']:.0f} s)",
             f"decode + resample (44.1 kHz stereo FLAC): {report['decode_resample_44k_stereo_x_realtime']:8.0f} x real time",
             f"features (STFT, mel, log):                {report['features_x_realtime']:8.0f} x real time",
             f"prediction, fully convolutional:          {report['fcn_prediction_x_realtime']:8.1f} x real time",
             f"prediction, fully convolutional, TTA x5:  {report['fcn_tta5_prediction_x_realtime']:8.1f} x real time",
             f"prediction, {report['precision_compared']:>4} (fp32 above):          "
             f"{report['fcn_prediction_auto_x_realtime']:8.1f} x real time "
             f"({report['fcn_prediction_auto_vs_fp32_speedup']:.2f}x fp32, max |diff| "
             f"{report['fcn_prediction_auto_vs_fp32_max_abs_diff']:.1e})",
             f"prediction, {report['precision_compared']:>4}, TTA x5:                "
             f"{report['fcn_tta5_prediction_auto_x_realtime']:8.1f} x real time",
             f"prediction, excerpt-wise:                 {report['excerptwise_prediction_x_realtime']:8.2f} x real time",
             f"fully convolutional vs excerpt-wise:      {report['fcn_vs_excerptwise_speedup']:8.1f} x faster "
             f"(max |diff| {report['fcn_vs_excerptwise_max_abs_diff']:.1e})"]
    if "peak_rss_mb_predicting" in report:
        lines.append(f"peak memory predicting {report['memory_hours']:g} h of audio: "
                     f"{report['peak_rss_mb_predicting']:8.0f} MB")
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(run_speed_benchmark(), indent=2))
