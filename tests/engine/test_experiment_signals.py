"""SIGTERM in a study: an interrupted run keeps its checkpoint in the study folder and the next call
continues it, in this process and in worker processes (issue 13 item 8)."""

import multiprocessing
import os
import signal
import threading
import time

import pytest

from engine.checkpoint import load_training_state
from engine.experiments import executors
from engine.experiments.plan import plan_from_dict
from engine.experiments.runner import run_study
from engine.experiments.store import StudyStore
from engine.signals import Terminated
from engine.train import checkpoint_path_for
from tests.synth import write_song

PLAN = {"name": "sig", "repetitions": 1,
        "data": {"kind": "folder", "path": "songs", "valid_fraction": 0.25, "test_fraction": 0.25},
        "train": {"updates": 8, "batch_size": 8, "validate_every": 0, "checkpoint_every": 0},
        "model": {"conv_channels": [4, 4, 8, 4], "dense_units": [16, 8]}}


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    for i in range(8):
        write_song(root / "songs" / f"song{i}.wav", 3.0, [(0.4 + 0.1 * i, 2.2)], seed=i)
    return root


def _plan(songs, **train):
    return plan_from_dict({**PLAN, "train": {**PLAN["train"], **train}}, base=songs)


def _only_record(out, plan):
    (run,) = plan.runs()
    return StudyStore(out).record(run)


def test_sigterm_in_the_study_process_keeps_the_checkpoint_and_the_next_call_continues(songs):
    plan = _plan(songs)
    (run,) = plan.runs()

    def stop_at_update_3(event):
        if event.kind == "progress" and event.progress.update == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # what a cluster scheduler sends
    out = songs / "interrupted"
    before = signal.getsignal(signal.SIGTERM)  # not always the default: Ray installs its own
    with pytest.raises(Terminated):
        run_study(plan, out, threads=1, on_event=stop_at_update_3)
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
    work = StudyStore(out).run_dir(run) / f"training-{plan.fingerprint(run)}"
    checkpoint = checkpoint_path_for(work / "model.safetensors")
    assert load_training_state(checkpoint)[1]["update"] == 3
    assert _only_record(out, plan) is None  # not finished

    result = run_study(plan, out, threads=1)
    assert result.finished == [run.run_id]
    record = _only_record(out, plan)
    assert record["status"] == "ok" and record["resumed_at_update"] == 3
    assert not work.exists()  # the training folder goes once the run is stored
    straight = run_study(plan, songs / "straight", threads=1)
    assert straight.finished == [run.run_id]
    assert record["evaluations"] == _only_record(songs / "straight", plan)["evaluations"]  # bit-exact resume


def test_sigterm_to_a_worker_process_saves_its_checkpoint_and_is_recorded(songs, tmp_path):
    plan = _plan(songs, updates=1_000_000, checkpoint_every=50)
    (run,) = plan.runs()
    work = tmp_path / "work"
    checkpoint = checkpoint_path_for(work / "model.safetensors")
    outcomes = executors.run_in_processes(plan, [run], plan.fingerprint, workers=1, threads=1,
                                          work_dir=lambda r: str(work))
    deadline = time.monotonic() + 120

    def sigterm_when_training() -> None:  # the first scheduled checkpoint shows training is under way
        while not checkpoint.is_file():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2.0)  # updates of a few milliseconds: well past update 50 by now
        (worker,) = multiprocessing.active_children()
        os.kill(worker.pid, signal.SIGTERM)

    killer = threading.Thread(target=sigterm_when_training)
    killer.start()
    (done, record, model), = list(outcomes)
    killer.join()
    assert done == run and model is None
    assert record["status"] == "failed" and "Terminated" in record["error"]
    assert load_training_state(checkpoint)[1]["update"] > 50  # saved at the SIGTERM, not only at 50
    assert not multiprocessing.active_children()
