"""Numeric precision of the network: ``auto | fp32 | bf16 | fp16``, resolved per device and workload.

``auto`` never guesses from the CPU's name alone. On a CPU it picks bf16 only where the CPU
runs bf16 natively (AMX or AVX-512 BF16, Arm BF16) *and* a one-off calibration on this machine
timed it faster than fp32; the outcome is cached per machine in the user cache folder (a cache
that cannot be read or written only costs a new calibration). On CUDA it picks bf16 where the
GPU supports it. fp16 is CUDA-only and never chosen by ``auto`` (it needs loss scaling).

An explicit ``bf16`` on a CPU without native support still runs, emulated: torch's own bf16
kernels do the rest of the network, but its bf16 convolutions on such CPUs are a slow reference
path (8x an fp32 update), so convolutions run on bf16 values in fp32 arithmetic, which is what
bf16 hardware does (bf16 operands, fp32 sums, bf16 results). That keeps emulated bf16 near fp32
speed, so its training quality can be measured on any machine.
Features, augmentation and the loss stay fp32 in every precision: autocast covers the network.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from engine.config import PRECISIONS
from engine.errors import ConfigError
from engine.timing import best_time_s

WORKLOADS = ("predict", "train")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags (Linux /proc/cpuinfo) that mean bf16 matrix arithmetic in hardware.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
# bf16 must beat fp32 by this factor in calibration: timing noise must not flip the choice.
CALIBRATION_MARGIN = 1.1
CALIBRATION_VERSION = 1

_memo: dict[tuple[str, str], "PrecisionChoice"] = {}


def ieee_fp32_on_gpus() -> None:
    """fp32 means IEEE fp32 on CUDA too: cuDNN's default TF32 convolutions (a 10-bit mantissa)
    would move probabilities by about 1e-3 and break the FCN = excerpt-wise equality that fp32
    promises. GPU speed comes from bf16/fp16 autocast, which this does not touch."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = getattr(torch.backends.cuda, "matmul", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9: one API, never both
        conv.fp32_precision = "ieee"
        matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


ieee_fp32_on_gpus()  # every network run imports this module


@dataclass(frozen=True)
class PrecisionChoice:
    """What a requested precision became on one device, and why (shown by the CLI and the app)."""

    requested: str
    precision: str     # fp32 | bf16 | fp16
    device_type: str   # cpu | cuda | mps
    native: bool       # bf16/fp16 run in hardware (always True for fp32)
    note: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]


def check_precision(name: str) -> str:
    """The canonical name, or a ConfigError listing the choices."""
    key = str(name).strip().lower()
    if key not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r} (use {', '.join(PRECISIONS)})")
    return key


def cpu_features() -> dict:
    """What this CPU offers for bf16: torch's SIMD level and the relevant /proc/cpuinfo flags."""
    flags: set[str] = set()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("flags", "features") and not flags:
                flags = set(value.split())
            elif key == "model name" and not model:
                model = value.strip()
    except OSError:  # not Linux: only torch's own detection is left
        pass
    capability = torch.backends.cpu.get_cpu_capability()
    found = sorted(f for f in NATIVE_BF16_FLAGS + ("amx_tile", "avx512f", "avx2") if f in flags)
    native = any(f in flags for f in NATIVE_BF16_FLAGS) or "AMX" in capability.upper()
    return {"model": model, "torch_capability": capability, "flags": found, "native_bf16": native}


def describe_cpu_features(features: dict | None = None) -> str:
    """'AVX2; flags avx2; no native bf16' for the bench output and the app."""
    f = features or cpu_features()
    flags = ", ".join(f["flags"]) or "none of interest"
    return f"{f['torch_capability']}; flags {flags}; {'native' if f['native_bf16'] else 'no native'} bf16"


def cuda_bf16_supported(device: torch.device) -> bool:
    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch without the keyword
        return bool(torch.cuda.is_bf16_supported())


def autocast(precision: "str | PrecisionChoice", device: torch.device | str):
    """The context that runs the network in ``precision`` (a no-op for fp32)."""
    name = precision.precision if isinstance(precision, PrecisionChoice) else precision
    if name == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    context = torch.autocast(device_type, dtype=DTYPES[name])
    if device_type != "cpu" or name != "bf16":
        return context
    native = precision.native if isinstance(precision, PrecisionChoice) else _cpu_has_native_bf16()
    if native:
        return context
    stack = contextlib.ExitStack()
    stack.enter_context(context)
    stack.enter_context(Bf16ConvolutionsInFp32())
    return stack


@functools.cache
def _cpu_has_native_bf16() -> bool:
    return bool(cpu_features()["native_bf16"])


def _bf16_values(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """``tensor`` rounded to bf16 and held in fp32 (differentiable: its gradient is rounded too)."""
    return None if tensor is None else tensor.to(torch.bfloat16).to(torch.float32)


class Bf16ConvolutionsInFp32(TorchFunctionMode):
    """bf16 convolutions for CPUs without bf16 kernels, inside CPU bf16 autocast.

    torch sends them to a reference path there (``_slow_conv2d``: an update of the paper's
    network takes 8x its fp32 time). This rounds input, weight and bias to bf16, convolves them
    in fp32 with the fast kernels and rounds the result to bf16: bf16 hardware's arithmetic
    (bf16 operands, fp32 sums). The backward pass rounds the gradients to bf16 likewise, through
    the casts. Forward results equal torch's bf16 kernels (tested); gradients differ only in the
    order of the fp32 sums.
    """

    CONVOLUTIONS = (F.conv1d, F.conv2d)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in self.CONVOLUTIONS or not torch.is_autocast_enabled("cpu"):
            return func(*args, **kwargs)
        x, weight, *rest = args
        bias = rest.pop(0) if rest else kwargs.pop("bias", None)
        with torch.autocast("cpu", enabled=False):
            y = func(_bf16_values(x), _bf16_values(weight), _bf16_values(bias), *rest, **kwargs)
        return y.to(torch.bfloat16)


def choose_precision(requested: str, device: torch.device | str, *, workload: str = "predict") -> PrecisionChoice:
    """Resolve ``requested`` for ``device``; ``auto`` may calibrate once per machine (cached)."""
    requested = check_precision(requested)
    if workload not in WORKLOADS:
        raise ConfigError(f"unknown workload {workload!r} (use {', '.join(WORKLOADS)})")
    device = torch.device(device)
    kind = device.type
    if requested == "fp32":
        return PrecisionChoice("fp32", "fp32", kind, True, "fp32")
    if requested == "fp16":
        if kind != "cuda":
            raise ConfigError(f"fp16 runs only on a CUDA GPU, not on {kind}; use bf16 or fp32")
        return PrecisionChoice("fp16", "fp16", kind, True, "fp16 autocast (with loss scaling when training)")
    if kind == "cuda":
        native = cuda_bf16_supported(device)
        if requested == "bf16" and not native:
            raise ConfigError(f"{torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32")
        precision = "bf16" if native else "fp32"
        return PrecisionChoice(requested, precision, kind, True,
                               "bf16 autocast (GPU support)" if native else "fp32 (this GPU has no bf16)")
    if kind != "cpu":
        if requested == "bf16":
            raise ConfigError(f"bf16 is supported on cpu and cuda, not on {kind}")
        return PrecisionChoice("auto", "fp32", kind, True, f"fp32 (no bf16 path on {kind})")
    features = cpu_features()
    if requested == "bf16":
        if features["native_bf16"]:
            return PrecisionChoice("bf16", "bf16", kind, True, "bf16 autocast (native CPU support)")
        return PrecisionChoice("bf16", "bf16", kind, False,
                               f"bf16 emulated: this CPU ({features['torch_capability']}) has no AMX or "
                               "AVX-512 BF16, so it is no faster than fp32")
    if not features["native_bf16"]:
        return PrecisionChoice("auto", "fp32", kind, True,
                               f"fp32 (no native bf16 on this CPU: {features['torch_capability']})")
    key = (str(device), workload)
    if key not in _memo:
        _memo[key] = _calibrated_choice(workload, features)
    return _memo[key]


# ---- the one-off CPU calibration --------------------------------------------------------------

def calibration_cache_path() -> Path:
    """$SVGUI_PRECISION_CACHE, else $XDG_CACHE_HOME/svgui/precision.json, else ~/.cache/svgui/..."""
    if os.environ.get("SVGUI_PRECISION_CACHE"):
        return Path(os.environ["SVGUI_PRECISION_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "svgui" / "precision.json"


def machine_key(features: dict) -> str:
    """Calibrations hold for one CPU, torch build and thread count."""
    return (f"v{CALIBRATION_VERSION}|{features['model']}|{features['torch_capability']}|"
            f"torch {torch.__version__}|{torch.get_num_threads()} threads")


def _read_cache(path: Path) -> dict:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        return values if isinstance(values, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, values: dict) -> None:
    """Best effort: an unwritable cache folder means calibrating again next time, nothing worse."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(values, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def _calibrated_choice(workload: str, features: dict) -> PrecisionChoice:
    path, key = calibration_cache_path(), machine_key(features)
    cached = _read_cache(path).get(key, {}).get(workload)
    if not (isinstance(cached, dict) and cached.get("precision") in ("fp32", "bf16")):
        fp32_s, bf16_s = time_workload(workload, "fp32"), time_workload(workload, "bf16")
        cached = {"precision": "bf16" if bf16_s * CALIBRATION_MARGIN < fp32_s else "fp32",
                  "fp32_s": round(fp32_s, 5), "bf16_s": round(bf16_s, 5)}
        values = _read_cache(path)  # re-read: another process may have added its own entries
        values.setdefault(key, {})[workload] = cached
        _write_cache(path, values)
    ratio = cached.get("fp32_s", 0) / max(cached.get("bf16_s", 0), 1e-9)
    note = f"{cached['precision']} (calibrated {workload}: bf16 {ratio:.2f}x the speed of fp32)"
    return PrecisionChoice("auto", cached["precision"], "cpu", True, note)


def time_workload(workload: str, precision: str, *, repeats: int = 3, config=None) -> float:
    """Best-of-``repeats`` seconds of the paper's network (or ``config``'s) on the CPU: one FCN
    chunk or one training update."""
    import torch.nn.functional as F

    from engine.config import ModelConfig
    from engine.model import SingingVoiceCNN, fcn_logits

    config = config or ModelConfig()
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG (dropout masks) alone
        torch.manual_seed(0)
        network = SingingVoiceCNN(config).to(memory_format=torch.channels_last)
        padded = torch.randn(1, 1, 1024 + config.excerpt_frames - 1, 80)
        excerpts = torch.randn(32, 1, config.excerpt_frames, 80).contiguous(memory_format=torch.channels_last)
        targets = torch.rand(32)
    if workload == "predict":
        network.eval()

        def step() -> None:
            with autocast(precision, "cpu"):
                fcn_logits(network, padded)
    else:
        network.train()  # dropout draws from the global RNG: time the update in a fork of it
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-3)

        def step() -> None:
            with autocast(precision, "cpu"):
                logits = network(excerpts)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.random.fork_rng(devices=[]):
        step()  # warm-up: oneDNN builds its kernels on the first call
        return best_time_s(step, repeats)
