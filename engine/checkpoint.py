"""One self-describing model file: weights, every config, normalization, threshold, metadata.

Stored as safetensors (tensors + a JSON header), which holds no code: loading a model never
unpickles anything. Training checkpoints are model files with extra ``train.*`` tensors and a
``training`` JSON entry, so a cancelled run's checkpoint loads and predicts like any model.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize

from engine.config import (
    AugmentConfig,
    EvalConfig,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
)
from engine.errors import ConfigError, ModelFileError, OutputWriteError, OverwriteRefused
from engine.fileio import atomic_open, ensure_writable_folder, file_sha256
from engine.model import SingingVoiceCNN
from engine.model_limits import check_eval_bounds, check_feature_bounds, expected_shapes
from engine.normalize import Normalization

FORMAT_NAME = "svgui-model"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".safetensors"


@dataclass
class VoiceModel:
    """A trained (or freshly initialised) detector with everything needed to use it."""

    network: SingingVoiceCNN
    normalization: Normalization
    features: FeatureConfig = field(default_factory=FeatureConfig)
    threshold: float = 0.5
    eval_config: EvalConfig = field(default_factory=EvalConfig)
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def model_config(self) -> ModelConfig:
        return self.network.config

    @property
    def name(self) -> str:
        return self.metadata.get("name") or (self.path.stem if self.path else "unsaved model")

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @classmethod
    def create(cls, *, model_config: ModelConfig = ModelConfig(), features: FeatureConfig = FeatureConfig(),
               normalization: Normalization | None = None, seed: int = 0) -> "VoiceModel":
        """A new network with the paper's orthogonal initialisation drawn from ``seed``."""
        network = SingingVoiceCNN(model_config, n_mels=features.n_mels)
        network.reset_parameters(torch.Generator().manual_seed(seed))
        return cls(network, normalization or Normalization.identity(features.n_mels), features)


def save_model(path: str | os.PathLike, model: VoiceModel, *, half: bool = False,
               training_tensors: dict[str, torch.Tensor] | None = None,
               training_info: dict[str, Any] | None = None) -> Path:
    """Atomically write ``model`` (and optional training state) to ``path``.

    ``half`` stores the weights as float16 (for a small bundled model); they load as float32.
    """
    path = Path(path)
    weight_dtype = torch.float16 if half else torch.float32
    tensors = {f"network.{k}": v.detach().to("cpu", weight_dtype).contiguous()
               for k, v in model.network.state_dict().items()}
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise ModelFileError(f"refusing to save {path}: the weights contain NaN or infinity")
    tensors["normalization.mean"] = torch.from_numpy(model.normalization.mean.copy())
    tensors["normalization.std"] = torch.from_numpy(model.normalization.std.copy())
    for key, value in (training_tensors or {}).items():
        tensors[f"train.{key}"] = value.detach().cpu().contiguous()
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "features": config_to_dict(model.features),
        "model": config_to_dict(model.model_config),
        "eval": config_to_dict(model.eval_config),
        "threshold": float(model.threshold),
        "metadata": model.metadata,
    }
    if training_info is not None:
        header["training"] = training_info
    text = json.dumps(header, default=_json_default)
    # To bytes first, then our own atomic writer: a full disk is an OutputWriteError (not a raw
    # SafetensorError), the file is fsynced, and its mode follows the umask or the replaced file.
    data = serialize(tensors, metadata={"svgui": text})
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (Path,)):
        return str(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a model file")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a model file, validated, without loading the weights."""
    path = Path(path)
    _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        # Only now look at the magic bytes, to say what the foreign file is: a safetensors
        # header length can itself start with 0x80.
        raise ModelFileError(f"{path}: {_describe_foreign(path)} ({exc})") from None
    if "svgui" not in meta:
        raise ModelFileError(f"{path}: a safetensors file, but not an svgui model (no svgui header)")
    try:
        header = json.loads(meta["svgui"])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: damaged model header ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: damaged model header (a JSON {_json_kind(header)}, not an object)")
    if header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: not an svgui model file (format {header.get('format')!r})")
    if header.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {header.get('version')} is not supported "
                             f"(this svgui reads version {FORMAT_VERSION})")
    _check_header_types(path, header)
    return header


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null", int: "number",
            float: "number", dict: "object"}.get(type(value), type(value).__name__)


def _check_header_types(path: Path, header: dict[str, Any]) -> None:
    """Each entry has the JSON type the readers expect, so none of them meets a list for a dict."""
    for key in ("features", "model"):
        if key not in header:
            raise ModelFileError(f"{path}: model file lacks '{key}'")
    for key in ("features", "model", "eval", "metadata", "training"):
        if key in header and not isinstance(header[key], dict) and not (key == "metadata" and header[key] is None):
            raise ModelFileError(f"{path}: damaged model header ('{key}' is a JSON {_json_kind(header[key])}, "
                                 f"not an object)")
    threshold = header.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ModelFileError(f"{path}: invalid model settings (the threshold must be a number, got "
                             f"{str(threshold)[:40]!r})")
    if not 0.0 <= threshold <= 1.0:  # also refuses NaN
        raise ModelFileError(f"{path}: threshold {threshold} is outside [0, 1]")
    training = header.get("training")
    if training is not None:
        for key, kind in (("update", int), ("elapsed_s", (int, float))):
            value = training.get(key)
            if isinstance(value, bool) or not isinstance(value, kind) or not value >= 0:
                raise ModelFileError(f"{path}: damaged checkpoint (training {key} {str(value)[:40]!r})")
        if not isinstance(training.get("config"), dict) or not isinstance(training.get("augment") or {}, dict):
            raise ModelFileError(f"{path}: damaged checkpoint (training config or augment is not an object)")


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> VoiceModel:
    """Load and validate a model file; anything that is not one of ours is a ModelFileError."""
    path = Path(path)
    header = read_header(path)
    try:
        features = config_from_dict(FeatureConfig, header["features"])
        model_config = config_from_dict(ModelConfig, header["model"])
        eval_config = config_from_dict(EvalConfig, header.get("eval", {}))
    except (ConfigError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: invalid model settings ({exc})") from None
    threshold = float(header["threshold"])
    # Everything is checked against the limits and the file's own tensor table before a single
    # weight is read or the network is built.
    check_feature_bounds(path, features)
    check_eval_bounds(path, eval_config)
    expected = {f"network.{k}": s for k, s in expected_shapes(path, model_config, features.n_mels).items()}
    expected.update({"normalization.mean": (features.n_mels,), "normalization.std": (features.n_mels,)})
    _check_tensor_table(path, expected)
    tensors = _load_tensors(path, prefix=("network.", "normalization."))
    try:
        normalization = Normalization(tensors.pop("normalization.mean").numpy(),
                                      tensors.pop("normalization.std").numpy())
    except (ConfigError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: invalid normalization ({exc})") from None
    state = {k[len("network."):]: v.float() for k, v in tensors.items()}
    for key, value in state.items():
        if not torch.isfinite(value).all():
            raise ModelFileError(f"{path}: weight {key} contains NaN or infinity")
    network = SingingVoiceCNN(model_config, n_mels=features.n_mels)
    network.load_state_dict(state)
    network.eval()
    return VoiceModel(network.to(device), normalization, features, threshold, eval_config,
                      dict(header.get("metadata") or {}), path)


def load_training_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The ``train.*`` tensors and ``training`` info of a checkpoint (ModelFileError if none)."""
    header = read_header(path)
    if "training" not in header:
        raise ModelFileError(f"{path}: a finished model, not a training checkpoint (nothing to resume)")
    tensors = _load_tensors(Path(path), prefix=("train.",))
    return {k[len("train."):]: v for k, v in tensors.items()}, header["training"]


@dataclass(frozen=True)
class ResumeSettings:
    """What a training checkpoint keeps when it is resumed: its features and augmentation."""

    features: FeatureConfig
    augment: AugmentConfig
    update: int  # updates done so far


def training_augment(training: dict[str, Any]) -> AugmentConfig:
    """The augmentation recorded in a checkpoint's ``training`` entry (none for older files)."""
    return config_from_dict(AugmentConfig, training.get("augment") or {})


def read_resume_settings(path: str | os.PathLike) -> ResumeSettings:
    """A checkpoint's resume settings from its header only, before any data is read."""
    header = read_header(path)
    training = header.get("training") or {}
    return ResumeSettings(features=config_from_dict(FeatureConfig, header["features"]),
                          augment=training_augment(training), update=int(training.get("update", 0)))


def check_model_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Make sure a model can be written to ``path`` without destroying anything; before long work.

    A file there that is not an svgui model (a song, a document) is never replaced, whatever
    ``overwrite`` says; an existing model only with ``overwrite``. The folder is created if
    missing and must accept a new file (OutputWriteError otherwise).
    """
    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        raise ConfigError(f"a model file name must end in {MODEL_SUFFIX}, got {path.name!r}")
    if path.is_dir():
        raise OutputWriteError(path, "it is a folder")
    if path.exists() or path.is_symlink():
        try:
            read_header(path)
        except ModelFileError:
            raise OverwriteRefused([path], f"{path} exists and is not an svgui model: it is never replaced; "
                                           f"choose another output file") from None
        if not overwrite:
            raise OverwriteRefused([path], f"{path} already holds a model; pass --overwrite to replace it")
    ensure_writable_folder(path.parent)
    return path


def checkpoint_run_id(path: str | os.PathLike) -> str | None:
    """The training run a checkpoint belongs to; None when it is missing, unreadable or has no run id."""
    try:
        run_id = (read_header(path).get("training") or {}).get("run_id")
    except (ModelFileError, OSError):
        return None
    return run_id if isinstance(run_id, str) and run_id else None


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: model file is empty")


def _describe_foreign(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head.startswith(b"PK\x03\x04"):
        return ("a zip archive such as a pickled PyTorch file (torch.save), not an svgui model; svgui never unpickles "
                "files because that can run arbitrary code")
    if head[8:9] == b"{":  # safetensors: an 8-byte little-endian header length (may start with 0x80), then JSON
        return "a damaged safetensors file (its header does not parse)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # pickle PROTO opcode
        return ("a pickled PyTorch file (or other Python pickle), not an svgui model; svgui never unpickles files "
                "because that can run arbitrary code")
    return "not an svgui model file"


WEIGHT_DTYPES = ("F32", "F16", "BF16")


def _check_tensor_table(path: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """The file's network and normalization tensors are exactly ``expected`` (names, shapes, float types)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            table = {k: (tuple(handle.get_slice(k).get_shape()), handle.get_slice(k).get_dtype())
                     for k in handle.keys() if k.startswith(("network.", "normalization."))}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: damaged model file ({exc})") from None
    if set(table) != set(expected):
        missing, extra = sorted(set(expected) - set(table)), sorted(set(table) - set(expected))
        if missing and set(missing) <= {"normalization.mean", "normalization.std"}:
            raise ModelFileError(f"{path}: model file lacks {missing[0]!r}")
        raise ModelFileError(f"{path}: weights do not match the network (differing: {(missing + extra)[:4]})")
    for key, (shape, dtype) in table.items():
        if shape != expected[key] and key.startswith("normalization."):
            raise ModelFileError(f"{path}: normalization has {math.prod(shape)} bands, features have "
                                 f"{expected[key][0]}")
        if shape != expected[key]:
            raise ModelFileError(f"{path}: weight {key.removeprefix('network.')} has shape {shape}, "
                                 f"expected {expected[key]}")
        if dtype not in WEIGHT_DTYPES:
            raise ModelFileError(f"{path}: tensor {key} has type {dtype}, expected a float type")


def _load_tensors(path: Path, *, prefix: tuple[str, ...]) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: damaged model file ({exc})") from None


def describe_model(path: str | os.PathLike) -> str:
    """A few human-readable lines about a model file (for `svgui-engine info` and the GUI)."""
    header = read_header(path)
    meta = header.get("metadata") or {}
    lines = [f"model: {path}", f"threshold: {header['threshold']:.4f}", f"recipe: {describe_recipe(header)}"]
    for key in ("created", "data", "updates", "seed", "augment", "precision", "validation", "software"):
        if key in meta:
            lines.append(f"{key}: {json.dumps(meta[key]) if isinstance(meta[key], (dict, list)) else meta[key]}")
    parent = meta.get("parent")
    if isinstance(parent, dict):  # a fine-tuned model (engine.finetune)
        from engine.finetune import TuneOptions, lineage

        lines.append(f"fine-tuned from: {parent.get('name')} ({parent.get('file')}, sha256 {parent.get('sha256')})")
        lines.append("lineage: " + " -> ".join(lineage(meta)))
        if isinstance(meta.get("tune"), dict):  # models fine-tuned before the options existed have none
            try:
                lines.append(f"fine-tuning: {TuneOptions.from_dict(meta['tune']).describe()}")
            except ConfigError:
                lines.append(f"fine-tuning: {json.dumps(meta['tune'])}")
    return "\n".join(lines)


def describe_recipe(header: dict[str, Any]) -> str:
    """'paper network, fixed input normalization, plain first convolution, sgd-nesterov' from a
    header (a file from before the variants has the paper's: its model entry lacks the fields)."""
    model = {f: header.get("model", {}).get(f, getattr(ModelConfig, f))
             for f in ("architecture", "input_norm", "first_conv")}
    train = (header.get("metadata") or {}).get("train_config") or (header.get("training") or {}).get("config") or {}
    optimizer = train.get("optimizer", TrainConfig.optimizer) if isinstance(train, dict) else TrainConfig.optimizer
    return (f"{model['architecture']} network, {model['input_norm']} input normalization, "
            f"{model['first_conv']} first convolution, {optimizer}")


__all__ = ["VoiceModel", "save_model", "load_model", "load_training_state", "read_header", "ResumeSettings",
           "read_resume_settings", "training_augment",
           "describe_model", "describe_recipe", "file_sha256", "check_model_output", "checkpoint_run_id", "MODEL_SUFFIX"]
