"""Prediction on Ray: the same outputs and manifest as plain predict, resuming, a corrupt file
among good ones, an interrupted run, an unreachable cluster. One local Ray instance (2 CPUs) is
shared by the module: starting Ray costs seconds."""

import json
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.audio import AudioWarning
from engine.batch_predict import BatchDone, FileOutcome, export_info, find_audio_files, plan_outputs, predict_files
from engine.checkpoint import VoiceModel, load_model, save_model
from engine.cli import main
from engine.cluster_predict import (
    CANCEL_GRACE_S,
    ClusterStart,
    FilePredictor,
    _cluster_plan,
    _ManifestRecorder,
    _stop_in_flight,
    finished_files,
    predict_files_on_ray,
)
from engine.config import ModelConfig, PredictConfig
from engine.errors import ClusterError, ConfigError
from engine.export import MANIFEST_NAME
from engine.ray_cluster import probe_address, split_address
from engine.signals import Terminated
from tests.synth import write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
FP32 = PredictConfig(precision="fp32")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    network = VoiceModel.create(model_config=SMALL, seed=2)
    network.threshold = 0.5
    network.metadata = {"name": "tiny"}
    save_model(path, network)
    return path


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Three short songs in a tree (one truncated: it warns) and one corrupt file."""
    root = tmp_path_factory.mktemp("songs")
    write_song(root / "a.wav", 3.0, [(0.5, 2.0)], seed=1)
    write_song(root / "sub" / "b.flac", 4.0, [(1.0, 3.0)], seed=2)
    truncated = write_song(root / "sub" / "deeper" / "c.flac", 6.0, [(1.0, 2.0)], seed=3)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (root / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really audio" * 20)
    return root


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    signal.signal(signal.SIGTERM, sigterm_handler)  # ray.init's sys.exit handler must not leak into later tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST_NAME}


def manifest_without_times(folder: Path) -> dict:
    """The manifest with timestamps dropped and outputs relative to ``folder``."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest.pop("created_utc")
    for entry in manifest["files"]:
        entry.pop("created_utc")
        if entry["output"] is not None:
            entry["output"] = Path(entry["output"]).relative_to(folder).as_posix()
    return manifest


@pytest.mark.slow  # starts a local Ray instance (~20 s)
def test_ray_gives_plain_predicts_outputs_and_manifest_and_a_rerun_skips_the_done_files(
        local_ray, model_path, songs, tmp_path, capsys):
    model = load_model(model_path)
    info = export_info(model)
    files, _ = find_audio_files([songs])
    truncated = "c.flac: unreadable after"
    with pytest.warns(AudioWarning, match=truncated):
        list(predict_files(model, files, fmt="lab", out_dir=tmp_path / "plain", info=info, config=FP32))

    out = tmp_path / "ray"
    with pytest.warns(AudioWarning, match=truncated):  # raised in a worker, shown here
        records = list(predict_files_on_ray(model_path, files, fmt="lab", out_dir=out, info=info, config=FP32,
                                            address="local", workers=2))
    start, outcomes, done = records[0], records[1:-1], records[-1]
    assert isinstance(start, ClusterStart) and (start.total, start.skipped, start.workers) == (4, 0, 2)
    assert all(isinstance(o, FileOutcome) for o in outcomes) and isinstance(done, BatchDone)
    assert sorted(o.done for o in outcomes) == [1, 2, 3, 4]
    assert [o.source.name for o in done.failures] == ["broken.wav"] and "broken.wav" in done.failures[0].error
    assert outputs(out) == outputs(tmp_path / "plain") and len(outputs(out)) == 3
    assert manifest_without_times(out) == manifest_without_times(tmp_path / "plain")
    assert done.manifests == (out / MANIFEST_NAME,)

    # The same command again, from the command line: only the corrupt file is tried again.
    written = {p: p.stat().st_mtime_ns for p in out.glob("*.pred.lab")}
    capsys.readouterr()
    code = main(["predict", "--ray-address", "local", "--workers", "2", "--precision", "fp32",
                 "--model", str(model_path), "--out", str(out), str(songs)])
    err = capsys.readouterr().err
    assert code == 1  # the corrupt file still fails
    assert "skipping 3 of 4 file(s) already predicted" in err and "error:" in err and "broken.wav" in err
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.pred.lab")} == written
    by_source = lambda m: sorted(m["files"], key=lambda e: e["source"])  # noqa: E731 - the retried entry moves last
    assert by_source(manifest_without_times(out)) == by_source(manifest_without_times(tmp_path / "plain"))


def test_finished_files_need_the_same_model_settings_format_and_an_existing_output(model_path, songs, tmp_path):
    model = load_model(model_path)
    info = export_info(model)
    files = [songs / "a.wav", songs / "sub" / "b.flac"]
    out = tmp_path / "out"
    list(predict_files(model, files, fmt="lab", out_dir=out, info=info, config=FP32))
    plan = plan_outputs(files, fmt="lab", out_dir=out)
    assert finished_files(plan, fmt="lab", info=info) == {0, 1}
    assert finished_files(plan, fmt="lab", info=export_info(model, threshold=0.3)) == set()
    assert finished_files(plan, fmt="lab", info=export_info(model, tta=True)) == set()
    other_sha = type(info)(**{**info.to_dict(), "model_sha256": "0" * 64})
    assert finished_files(plan, fmt="lab", info=other_sha) == set()
    assert finished_files(plan_outputs(files, fmt="csv", out_dir=out), fmt="csv", info=info) == set()
    (out / "b.pred.lab").unlink()
    assert finished_files(plan, fmt="lab", info=info) == {0}


def test_workers_follow_the_clusters_gpus_else_its_cpus():
    def cluster(cpus, gpus=0):
        return SimpleNamespace(cluster_resources=lambda: {"CPU": cpus, "GPU": gpus})

    assert _cluster_plan(cluster(16), device="auto", workers=None, threads=None)[:3] == ("cpu", 16, 1)
    assert _cluster_plan(cluster(16), device="auto", workers=None, threads=4)[:3] == ("cpu", 4, 4)
    device, workers, _, request = _cluster_plan(cluster(64, 8), device="auto", workers=None, threads=None)
    assert (device, workers, request["num_gpus"]) == ("cuda", 8, 1)
    assert _cluster_plan(cluster(64, 8), device="cpu", workers=3, threads=None)[:2] == ("cpu", 3)
    with pytest.raises(ConfigError, match="has no GPUs"):
        _cluster_plan(cluster(4), device="cuda", workers=None, threads=None)
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        _cluster_plan(cluster(4), device="auto", workers=0, threads=None)


def test_an_unreachable_cluster_fails_fast_naming_the_address(model_path, songs, tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    code = main(["predict", "--ray-address", address, "--model", str(model_path), "--out", str(tmp_path / "o"),
                 str(songs / "a.wav")])
    assert code == 1 and time.monotonic() - start < 10
    assert f"error: cannot reach the Ray cluster at {address}" in capsys.readouterr().err
    with pytest.raises(ClusterError, match="no-such-host.invalid:6379"):
        probe_address("no-such-host.invalid:6379")
    from engine.experiments.executors import run_on_ray
    with pytest.raises(ClusterError, match=f"cannot reach the Ray cluster at {address}"):  # studies too
        next(run_on_ray(None, [], None, address=address))
    assert time.monotonic() - start < 10
    assert split_address("ray://head:10001") == ("head", 10001) and split_address("local") is None
    with pytest.raises(ConfigError, match="HOST:PORT"):
        split_address("head")


def test_workers_without_a_ray_address_is_a_usage_error(model_path, songs, tmp_path, capsys):
    code = main(["predict", "--workers", "2", "--model", str(model_path), "--out", str(tmp_path / "o"),
                 str(songs / "a.wav")])
    assert code == 1 and "--workers and --threads are for --ray-address" in capsys.readouterr().err



class TroubledPredictor(FilePredictor):
    """Dies on a file named crash.* (as a worker out of memory would) and takes its time over slow.*."""

    def predict(self, source, target, replace):
        if Path(source).stem == "crash":
            os._exit(1)
        if Path(source).stem == "slow":
            time.sleep(CANCEL_GRACE_S + 3)
        return super().predict(source, target, replace)


@pytest.mark.slow  # a local Ray instance
def test_a_dead_worker_is_replaced_and_sigterm_keeps_the_finished_files_only(local_ray, model_path, songs, tmp_path):
    model = load_model(model_path)
    info = export_info(model)
    crash, slow = tmp_path / "crash.wav", tmp_path / "slow.wav"
    shutil.copyfile(songs / "a.wav", crash)
    shutil.copyfile(songs / "a.wav", slow)
    files = [crash, songs / "a.wav", slow, songs / "sub" / "b.flac"]
    out = tmp_path / "out"
    run = predict_files_on_ray(model_path, files, fmt="lab", out_dir=out, info=info, config=FP32,
                               address="local", workers=1, worker_class=TroubledPredictor)
    assert isinstance(next(run), ClusterStart)
    died = next(run)
    assert died.source == crash and "the worker died predicting it" in died.error
    assert next(run).source == songs / "a.wav"  # from the replacement worker, which now sleeps over slow.wav
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(Terminated):
        next(run)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [(Path(e["source"]).name, e["error"] is None) for e in manifest["files"]] == [("crash.wav", False),
                                                                                          ("a.wav", True)]
    assert sorted(p.name for p in out.iterdir()) == ["a.pred.lab", MANIFEST_NAME]  # no temporaries either
    plan = plan_outputs(files, fmt="lab", out_dir=out)
    assert finished_files(plan, fmt="lab", info=info) == {1}  # the next run does crash, slow and b


def test_the_manifest_is_written_as_results_arrive_in_input_order(model_path, songs, tmp_path):
    model = load_model(model_path)
    info = export_info(model)
    files = [songs / "a.wav", songs / "sub" / "b.flac"]
    out = tmp_path / "out"
    plan = plan_outputs(files, fmt="lab", out_dir=out)
    outcomes = list(predict_files(model, files, fmt="lab", out_dir=tmp_path / "plain", info=info, config=FP32))[:2]
    recorder = _ManifestRecorder(plan, fmt="lab", info=info)
    recorder.add(1, outcomes[1])  # b finishes first: written at once, the manifest being small
    assert [Path(e["source"]).name for e in json.loads((out / MANIFEST_NAME).read_text())["files"]] == ["b.flac"]
    recorder.next_write_s = time.monotonic() + 3600  # as if the last write had been slow
    recorder.add(0, outcomes[0])
    assert len(json.loads((out / MANIFEST_NAME).read_text())["files"]) == 1 and recorder.dirty
    recorder.write()
    assert [Path(e["source"]).name for e in json.loads((out / MANIFEST_NAME).read_text())["files"]] == \
        ["a.wav", "b.flac"]


def test_stopping_records_the_files_that_finish_within_the_grace_time(model_path, songs, tmp_path):
    model = load_model(model_path)
    info = export_info(model)
    files = [songs / "a.wav", songs / "sub" / "b.flac"]
    plan = plan_outputs(files, fmt="lab", out_dir=tmp_path / "out")
    finished = FileOutcome(0, 2, files[0], plan.targets[0], 3.0, 0.5)
    plan.targets[0].parent.mkdir()
    plan.targets[0].write_text("0.000000 3.000000 nosing\n")
    (tmp_path / "out" / ".b.pred.a1b2c3d4.tmp.lab").write_text("half")  # a killed write's temporary
    fake_ray = SimpleNamespace(wait=lambda refs, num_returns, timeout: (["done"], ["running"]),
                               get=lambda ref: (finished, [("UserWarning", "dropped")]))
    pending = {"done": ("actor", 0), "running": ("actor", 1), "starting": ("actor", None)}
    recorder = _ManifestRecorder(plan, fmt="lab", info=info)
    _stop_in_flight(fake_ray, pending, recorder, plan)
    assert list(recorder.outcomes) == [0] and recorder.dirty
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.pred.lab"]
