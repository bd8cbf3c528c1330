"""The worker contract: yields are progress, the generator's return value is the result."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject, Signal

from svgui.tasks import drain, result_of
from svgui.workers import Worker, WorkerRegistry, running_threads


class Recorder(QObject):
    """Slots in the GUI thread that note what arrived, and in which thread."""

    def __init__(self, worker: Worker):
        super().__init__()
        self.progress, self.results, self.errors, self.cancels = [], [], [], 0
        self.threads: set[int] = set()
        worker.progress.connect(self.on_progress)
        worker.finished.connect(self.on_finished)
        worker.failed.connect(self.on_failed)
        worker.cancelled.connect(self.on_cancelled)

    def on_progress(self, item):
        self.threads.add(threading.get_ident())
        self.progress.append(item)

    def on_finished(self, result):
        self.threads.add(threading.get_ident())
        self.results.append(result)

    def on_failed(self, exc):
        self.errors.append(exc)

    def on_cancelled(self):
        self.cancels += 1


def counting(n: int):
    for i in range(n):
        yield i / n
    return "the result"


def run(qtbot, registry: WorkerRegistry, worker: Worker) -> Recorder:
    recorder = Recorder(worker)
    with qtbot.waitSignal(worker.done, timeout=5000):
        registry.start(worker)
    qtbot.waitUntil(lambda: not registry._workers, timeout=5000)  # forgotten once its thread ended
    return recorder


def test_yields_are_progress_and_the_return_value_is_the_result(qtbot):
    recorder = run(qtbot, WorkerRegistry(), Worker(counting, 4))
    assert recorder.progress == [0.0, 0.25, 0.5, 0.75]  # the result is not sent as progress
    assert recorder.results == ["the result"] and not recorder.errors and recorder.cancels == 0
    assert recorder.threads == {threading.get_ident()}  # bound slots run in the GUI thread
    assert not running_threads()


def test_a_plain_functions_return_value_is_the_result(qtbot):
    recorder = run(qtbot, WorkerRegistry(), Worker(sum, [1, 2, 3]))
    assert recorder.results == [6] and recorder.progress == []


def test_an_error_is_sent_by_failed_with_its_traceback_and_nothing_else(qtbot):
    def broken():
        yield 1
        raise ValueError("bad value 7")

    recorder = run(qtbot, WorkerRegistry(), Worker(broken))
    assert recorder.progress == [1] and recorder.results == [] and recorder.cancels == 0
    [exc] = recorder.errors
    assert isinstance(exc, ValueError) and "bad value 7" in exc.traceback_text


def test_cancel_stops_between_yields_runs_the_finally_and_sends_cancelled(qtbot):
    release, cleaned = threading.Event(), threading.Event()

    def endless():
        try:
            while True:
                yield "step"
                release.wait(5)
        finally:
            cleaned.set()  # training saves its checkpoint here

    registry = WorkerRegistry()
    worker = Worker(endless)
    recorder = Recorder(worker)
    registry.start(worker)
    qtbot.waitUntil(lambda: bool(recorder.progress), timeout=5000)
    worker.cancel()
    release.set()
    qtbot.waitUntil(lambda: recorder.cancels == 1, timeout=5000)
    assert cleaned.is_set() and recorder.results == [] and recorder.errors == []
    qtbot.waitUntil(lambda: not running_threads(), timeout=5000)


def test_stop_all_cancels_and_joins_every_thread(qtbot):
    started = threading.Semaphore(0)

    def waiting():
        started.release()
        while True:
            yield None

    registry = WorkerRegistry()
    for _ in range(3):
        registry.run(waiting)
    for _ in range(3):
        assert started.acquire(timeout=5)
    assert len(registry.active) == 3
    assert registry.stop_all(timeout_ms=5000)
    assert not running_threads()


def test_the_registry_forgets_finished_workers_in_the_gui_thread(qtbot, monkeypatch):
    # QThread.finished is emitted from the worker's thread; the registry must not change its
    # list there while the GUI thread reads or appends to it.
    forgotten_in: list[int] = []
    forget = WorkerRegistry._forget

    def recording_forget(self, worker):
        forgotten_in.append(threading.get_ident())
        forget(self, worker)
    monkeypatch.setattr(WorkerRegistry, "_forget", recording_forget)
    registry = WorkerRegistry()
    for n in range(8):
        registry.run(counting, n)
    qtbot.waitUntil(lambda: not registry._workers, timeout=5000)
    assert forgotten_in == [threading.get_ident()] * 8


def test_a_lambda_on_a_workers_signal_runs_in_the_worker_thread(qtbot):
    """Why GUI code connects bound methods of GUI-thread objects, never lambdas (PySide6 behaviour)."""
    ran_in: list[int] = []

    class Emitter(Worker):
        ping = Signal()

    worker = Emitter(lambda: worker.ping.emit())
    worker.ping.connect(lambda: ran_in.append(threading.get_ident()))
    with qtbot.waitSignal(worker.done, timeout=5000):
        WorkerRegistry().start(worker)
    assert ran_in and ran_in[0] != threading.get_ident()


def test_result_of_adapts_an_engine_generator_whose_last_record_is_the_result():
    closed = []

    def engine_style():
        try:
            yield 1
            yield 2
            yield "done"
        finally:
            closed.append(True)

    progress, result = drain(result_of(engine_style(), str))
    assert (progress, result, closed) == ([1, 2], "done", [True])
    adapted = result_of(engine_style(), str)
    assert next(adapted) == 1
    adapted.close()  # the worker cancelling: the engine generator's finally runs at once
    assert closed == [True, True]


@pytest.mark.parametrize("n", [0, 3])
def test_drain_returns_the_progress_and_the_result(n):
    progress, result = drain(counting(n))
    assert len(progress) == n and result == "the result"
