"""Training (SPEC §4) as a generator of progress records: iterate to train, stop iterating to cancel.

``for progress in train(...): show(progress)`` is the whole command-line loop; the GUI wraps the
same generator in a worker thread. Closing the generator early (cancel) saves a checkpoint in
``finally``, and ``resume_from=`` continues from one with the same sampler, weights and RNGs.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import platform
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import engine
from engine.batches import AugmentedBatches, BatchStream, ExcerptBatches
from engine.checkpoint import (
    VoiceModel,
    check_model_output,
    checkpoint_run_id,
    load_model,
    load_training_state,
    save_model,
    training_augment,
)
from engine.config import (
    AugmentConfig,
    EvalConfig,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
)
from engine.datasets import TrackData
from engine.devices import pick_device
from engine.errors import ConfigError, DatasetError, ModelFileError, TrainingDiverged
from engine.evaluate import find_best_threshold
from engine.finetune import (
    DEFAULT_TUNE,
    TuneOptions,
    check_features,
    check_finetune_data,
    freeze_layers,
    parent_record,
)
from engine.frontend import training_normalization
from engine.model_limits import check_batch_size_bound
from engine.optim import load_optimizer_state, make_optimizer, optimizer_state
from engine.precision import autocast, choose_precision
from engine.predict import predict_linear
from engine.sampler import BalancedSampler, ExcerptSampler


@dataclass(frozen=True)
class ValidationFigures:
    """Error at the best threshold on the validation files after ``update`` updates."""

    update: int
    threshold: float
    error: float
    recall: float
    specificity: float
    n_frames: int

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TrainProgress:
    """One step of training, small enough to cross threads as a signal argument."""

    update: int
    total_updates: int
    loss: float
    learning_rate: float
    elapsed_s: float
    validation: ValidationFigures | None = None
    checkpoint_path: str | None = None
    finished: bool = False
    note: str = ""  # something the user should know, e.g. another run's checkpoint kept (first record)

    @property
    def remaining_s(self) -> float:
        return self.elapsed_s / self.update * (self.total_updates - self.update) if self.update else math.nan


LOSS_READ_EVERY_UPDATES = 25  # on a GPU; progress still arrives for every update, 25 at a time


def checkpoint_path_for(out_path: str | os.PathLike, run_id: str | None = None) -> Path:
    """model.safetensors → model.checkpoint.safetensors (or model.checkpoint-RUNID.safetensors), beside it."""
    out_path = Path(out_path)
    tag = f"-{run_id}" if run_id else ""
    return out_path.with_name(f"{out_path.stem}.checkpoint{tag}{out_path.suffix or '.safetensors'}")


def own_checkpoint_path(out_path: str | os.PathLike, run_id: str,
                        resume_from: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Where run ``run_id`` writes its checkpoints, and a note when another run's checkpoint is kept.

    The usual name unless a checkpoint of another run (or a file that is not one of ours) is there:
    that one is never overwritten nor deleted, and this run uses ``NAME.checkpoint-RUNID``.
    """
    usual = checkpoint_path_for(out_path)
    if not (usual.exists() or usual.is_symlink()) or checkpoint_run_id(usual) == run_id:
        return usual, ""
    if resume_from is not None and Path(resume_from).exists() and usual.samefile(resume_from):
        return usual, ""  # resuming an older checkpoint without a run id: it becomes this run's
    own = checkpoint_path_for(out_path, run_id)
    return own, (f"{usual} belongs to another training run and is kept; this run's checkpoints go to "
                 f"{own.name}")


def find_checkpoints(out_path: str | os.PathLike) -> list[Path]:
    """The checkpoints of runs writing ``out_path`` (usual name and per-run names), newest first."""
    usual = checkpoint_path_for(out_path)
    found = [p for p in usual.parent.glob(f"{glob.escape(usual.stem)}*{usual.suffix}")
             if p == usual or p.stem.startswith(f"{usual.stem}-")]
    return sorted((p for p in found if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)


def validate(model: VoiceModel, tracks: Sequence[TrackData], update: int, eval_config: EvalConfig) -> ValidationFigures:
    """Predict the validation files and score them at the best threshold of the grid."""
    was_training = model.network.training
    probabilities = [predict_linear(model, t.linear) for t in tracks]
    model.network.train(was_training)
    threshold, counts = find_best_threshold(probabilities, [t.targets for t in tracks], config=eval_config)
    return ValidationFigures(update, float(threshold), counts.error, counts.recall, counts.specificity,
                             counts.n_frames)


def software_versions() -> dict[str, str]:
    return {"svgui": engine.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def train(*, train_data: Sequence[TrackData], valid_data: Sequence[TrackData] = (),
          out_path: str | os.PathLike, config: TrainConfig = TrainConfig(),
          model_config: ModelConfig = ModelConfig(), features: FeatureConfig = FeatureConfig(),
          eval_config: EvalConfig = EvalConfig(), device: str | None = None,
          resume_from: str | os.PathLike | None = None, data_description: str = "",
          name: str = "", augment: AugmentConfig = AugmentConfig(),
          overwrite: bool = False, init_from: str | os.PathLike | None = None,
          tune: TuneOptions | None = None) -> Iterator[TrainProgress]:
    """Train a network and write it to ``out_path``; yields a TrainProgress after every update.

    The final model carries the threshold chosen on ``valid_data`` (on ``train_data`` when no
    validation data are given, recorded as such). Raises TrainingDiverged on a non-finite loss,
    DatasetError when no file is long enough; either way the last good checkpoint stays on disk.
    An existing file at ``out_path`` is replaced only if it is a model and ``overwrite`` is set.
    Each run has a random run id, stored in its checkpoints; at the end it deletes only its own.
    ``init_from`` fine-tunes a trained model (``engine.finetune``): its weights, normalization, network
    and evaluation settings; ``features`` must be the model's, and the new file records its parent.
    ``tune`` (``engine.finetune.TuneOptions``): frozen layers and balanced sampling; with ``init_from``
    the default is ``engine.finetune.DEFAULT_TUNE``, else none of them; a resumed run keeps its own.
    """
    if not train_data:
        raise DatasetError("no training files given")
    out_path = check_model_output(out_path, overwrite=overwrite)
    torch_device = pick_device(device)

    # 1. Model, normalization and training state: fresh from the seed, from a checkpoint, or from a parent.
    parent, notes = None, []
    if resume_from is not None and init_from is not None:
        raise ConfigError("resume a fine-tuning run from its checkpoint alone (it records its parent)")
    if resume_from is not None:
        model = load_model(resume_from, device=torch_device)
        state, info = load_training_state(resume_from)
        config = config_from_dict(TrainConfig, {**info["config"], "updates": config.updates})
        check_batch_size_bound(resume_from, config.batch_size)  # a crafted checkpoint must not ask for gigabytes
        augment = training_augment(info)
        start_update, elapsed_before = int(info["update"]), float(info["elapsed_s"])
        features, eval_config = model.features, model.eval_config
        run_id = str(info.get("run_id") or secrets.token_hex(8))  # a resumed run goes on as the same run
        parent = model.metadata.get("parent")
        tune = TuneOptions.from_dict(info.get("tune"))
    elif init_from is not None:
        # Fine-tuning: the parent's weights and normalization (the first layer expects inputs
        # standardized with its statistics); a fresh optimizer and schedule.
        model = load_model(init_from, device=torch_device)
        check_features(init_from, model.features, features)
        notes = check_finetune_data(init_from, model.features, train_data, valid_data)
        parent, eval_config = parent_record(init_from), model.eval_config
        state, start_update, elapsed_before = {}, 0, 0.0
        run_id = secrets.token_hex(8)
    else:
        # Statistics of the training features after the recipe's input normalization (engine.frontend).
        normalization = training_normalization((t.log_mel for t in train_data), model_config, features)
        model = VoiceModel.create(model_config=model_config, features=features,
                                  normalization=normalization, seed=config.seed)
        model.network.to(torch_device)
        model.eval_config = eval_config
        state, start_update, elapsed_before = {}, 0, 0.0
        run_id = secrets.token_hex(8)
    if tune is None:
        tune = DEFAULT_TUNE if init_from is not None else TuneOptions()
    if tune.freeze != "none" and init_from is None and resume_from is None:
        raise ConfigError(f"freezing the {tune.freeze} layers needs a trained model to start from (--init)")
    ckpt_path, note = own_checkpoint_path(out_path, run_id, resume_from)
    note = "; ".join(filter(None, [*notes, note]))
    # An older checkpoint without a run id that this run resumes is this run's own as well.
    adopted = resume_from is not None and ckpt_path.exists() and checkpoint_run_id(ckpt_path) is None
    if start_update >= config.updates:
        raise ConfigError(f"the checkpoint already has {start_update} updates; ask for more than that")
    network = model.network
    # Channels-last: oneDNN's fastest CPU convolution layout (1.14x per update measured on a
    # 2-core AVX2 EPYC), and the tensor-core layout on CUDA.
    network.to(memory_format=torch.channels_last)
    network.train()
    frozen_eval = freeze_layers(network, tune.freeze)  # their batch norms keep the parent's statistics
    for module in frozen_eval:
        module.eval()
    # A resumed run keeps the precision it started with (its config comes from the checkpoint).
    precision = choose_precision(config.precision, torch_device, workload="train")
    scaler = torch.amp.GradScaler(torch_device.type) if precision.precision == "fp16" else None
    # Reading the loss back is a host sync: on a GPU, read the losses of several updates at once.
    sync_every = 1 if torch_device.type == "cpu" else LOSS_READ_EVERY_UPDATES

    # 2. Data on the device (linear spectrograms when augmenting); excerpt order from a seeded sampler.
    if augment.enabled:
        data = AugmentedBatches(train_data, model, torch_device, config.target_low, config.target_high,
                                augment=augment, seed=config.seed + 1)
    else:
        data = ExcerptBatches(train_data, model, torch_device, config.target_low, config.target_high)
    sampler = ExcerptSampler(data.starts, seed=config.seed)
    if tune.balance:
        voiced = data.centre_voiced()
        if voiced.all() or not voiced.any():  # one class only: nothing to balance
            notes.append("no balancing: every training excerpt is " + ("voiced" if voiced.any() else "unvoiced")
                         + " at its centre")
            note = "; ".join(filter(None, [note, notes[-1]]))
        else:
            sampler = BalancedSampler(data.starts, voiced, seed=config.seed)
    parameters = [p for p in network.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, parameters)
    torch.manual_seed(config.seed)  # dropout masks
    if state:
        try:  # a damaged or crafted checkpoint is one clear error, not a traceback mid-training
            sampler.load_state(state)
            if isinstance(data, AugmentedBatches):
                data.load_state(state)
            load_optimizer_state(optimizer, config, parameters, state)
            torch.set_rng_state(state["torch_rng"])
            if torch_device.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"], torch_device)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ModelFileError(f"{resume_from}: damaged checkpoint ({exc})") from None

    # On a CPU the next batch is built in a thread while this one trains (faster on 2 cores).
    batches = BatchStream(data, sampler, config.batch_size, prefetch=torch_device.type == "cpu")

    def training_state(update: int, elapsed: float) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = dict(batches.state())  # sampler and augmentation RNGs before the next batch
        tensors.update(optimizer_state(optimizer, config, parameters))
        tensors["torch_rng"] = torch.get_rng_state()
        if torch_device.type == "cuda":
            tensors["cuda_rng"] = torch.cuda.get_rng_state(torch_device)
        return tensors, {"update": update, "elapsed_s": round(elapsed, 3), "config": config_to_dict(config),
                         "augment": config_to_dict(augment), "run_id": run_id, "tune": tune.to_dict()}

    def describe(update: int, elapsed: float, validation: ValidationFigures | None, source: str) -> dict:
        return {
            "name": name or out_path.stem,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "updates": update, "seed": config.seed, "train_config": config_to_dict(config),
            "augment": {**config_to_dict(augment), "description": augment.describe()}, "data": data_description,
            "train_files": [t.track.name for t in train_data], "valid_files": [t.track.name for t in valid_data],
            "validation": validation.to_dict() if validation and source == "validation" else None,
            "threshold_source": source, "threshold_figures": validation.to_dict() if validation else None,
            "device": str(torch_device), "precision": precision.precision,
            "elapsed_s": round(elapsed, 1), "software": software_versions(),
            **({"parent": parent} if parent else {}),
            **({"tune": tune.to_dict()} if parent or tune != TuneOptions() else {}),
        }

    def save_checkpoint(update: int, elapsed: float, validation: ValidationFigures | None) -> None:
        if not all(torch.isfinite(p).all() for p in network.parameters()):
            return  # keep the previous, good checkpoint
        tensors, info = training_state(update, elapsed)
        if validation is not None:
            model.threshold = validation.threshold
        model.metadata = describe(update, elapsed, validation, "validation" if validation else "none")
        save_model(ckpt_path, model, training_tensors=tensors, training_info=info)

    # 3. The loop: one SGD step per batch, validation and checkpoints on their schedules.
    started = time.perf_counter()
    update, saved_update, last_validation, completed = start_update, start_update, None, False
    pending: list[tuple[int, torch.Tensor, float, float]] = []  # (update, loss, lr, elapsed) not yet read
    try:
        while update < config.updates:
            learning_rate = config.learning_rate_at(update)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            excerpts, targets = batches.next()
            with autocast(precision, torch_device):  # the network only; the loss stays fp32
                logits = network(excerpts)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            update += 1
            pending.append((update, loss.detach(), learning_rate, elapsed_before + time.perf_counter() - started))
            validate_now = bool(valid_data and config.validate_every and update % config.validate_every == 0)
            checkpoint_now = bool(config.checkpoint_every and update % config.checkpoint_every == 0
                                  and update < config.updates)
            if len(pending) < sync_every and not (validate_now or checkpoint_now or update == config.updates):
                continue
            losses = torch.stack([p[1] for p in pending]).float().tolist()  # the one host sync
            for (at, *_), value in zip(pending, losses):
                if not math.isfinite(value):
                    raise TrainingDiverged(f"the training loss became {value} at update {at}; "
                                           "try a lower learning rate (the last checkpoint is kept)")
            elapsed = pending[-1][3]
            validation = checkpoint = None
            if validate_now:
                validation = last_validation = validate(model, valid_data, update, eval_config)
                for module in frozen_eval:  # validate() put the whole network back in training mode
                    module.eval()
            if checkpoint_now:
                save_checkpoint(update, elapsed, last_validation)
                saved_update, checkpoint = update, str(ckpt_path)
            records, pending, loss_value = pending, [], losses[-1]
            for (at, _, rate, at_s), value in zip(records[:-1], losses):
                yield TrainProgress(at, config.updates, value, rate, at_s, note=note)
                note = ""
            yield TrainProgress(update, config.updates, loss_value, learning_rate, elapsed, validation, checkpoint,
                                note=note)
            note = ""
        completed = True
    finally:
        if not completed and update > saved_update:
            save_checkpoint(update, elapsed_before + time.perf_counter() - started, last_validation)
        batches.close()

    # 4. Threshold on validation data (or the training data) for the final weights, then save.
    source = "validation" if valid_data else "training"
    if parent is not None and not valid_data:
        # Fine-tuning without validation files keeps the parent's threshold (chosen on its held-out
        # data): one picked on the few files just fitted would be both optimistic and noisy.
        source = "parent"
        final = validate(model, train_data, update, dataclasses.replace(eval_config, thresholds=(model.threshold,)))
    else:
        final = validate(model, valid_data or train_data, update, eval_config)
    model.threshold = final.threshold
    elapsed = elapsed_before + time.perf_counter() - started
    model.metadata = describe(update, elapsed, final, source)
    network.eval()
    check_model_output(out_path, overwrite=True)  # a file that appeared meanwhile and is not a model stays
    save_model(out_path, model)
    if ckpt_path.exists() and (checkpoint_run_id(ckpt_path) == run_id or adopted):
        ckpt_path.unlink()  # only this run's own checkpoint, never another run's
    yield TrainProgress(update, config.updates, loss_value, learning_rate, elapsed,
                        final, str(out_path), finished=True)
