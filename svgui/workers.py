"""The one place that makes threads: run engine functions and generators off the GUI thread.

A worker wraps a callable in a QThread. The contract is superqt's: for a generator function
every ``yield`` is a ``progress`` signal (and a pause/cancel point) and the generator's
``return`` value (``StopIteration.value``) is the result, sent by ``finished(result)``; the last
yield is never the result. A plain function's return value is the result. Results and errors
cross threads only through signals; cancelling sets a flag checked between yields (the
generator's ``finally`` then runs, e.g. training saves a checkpoint). Every live thread is
registered so the application can stop and join them all on close.

We keep this module rather than depend on superqt (``thread_worker``/``GeneratorWorker``): the
contract is the same, and what the app needs besides it (a registry per window that cancels and
joins exactly its own threads on close, a pause that blocks between yields, ``running_threads``
for the tests' "no thread left running" check) is here in ~170 lines without a new dependency.
superqt runs jobs on the shared global QThreadPool, whose threads outlive each job.

Thread affinity (PySide6 6.11, tested in tests/svgui/test_workers.py): a lambda or other plain
callable connected to a signal runs in the thread of the signal's sender object, so one
connected to a Worker's signals runs in the worker thread. Connect GUI code to bound methods of
QObjects that live in the GUI thread; the registry itself does so for ``QThread.finished``.
"""

from __future__ import annotations

import inspect
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

_THREADS: "weakref.WeakSet[QThread]" = weakref.WeakSet()


def running_threads() -> list[QThread]:
    """Every QThread this module started that is still running (tests check none is left)."""
    alive = []
    for thread in list(_THREADS):
        try:
            if thread.isRunning():
                alive.append(thread)
        except RuntimeError:  # its C++ object is gone
            continue
    return alive


class Worker(QObject):
    """Runs ``fn(*args, **kwargs)`` in its own thread; emits exactly one of finished/failed/cancelled."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)     # the exception (EngineError for user-caused problems)
    cancelled = Signal()
    done = Signal()             # after any of the three, when the thread is about to end

    def __init__(self, fn: Callable[..., Any], *args, **kwargs):
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._cancel = threading.Event()
        self._pause = threading.Event()
        self._pause.set()
        self.thread: QThread | None = None
        self.description = getattr(fn, "__name__", "work")

    def cancel(self) -> None:
        self._cancel.set()
        self._pause.set()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._pause.clear()
        else:
            self._pause.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(*self._args, **self._kwargs)
            if inspect.isgenerator(result):
                result = self._drain(result)
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        except Exception as exc:  # noqa: BLE001 - every error crosses to the GUI as a signal
            exc.traceback_text = traceback.format_exc()
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(exc)
        finally:
            self.done.emit()

    def _drain(self, generator) -> Any:
        """Yields go out as progress; the ``return`` value is the result (None when cancelled)."""
        try:
            while True:
                try:
                    item = next(generator)
                except StopIteration as stop:
                    return stop.value
                self.progress.emit(item)
                self._pause.wait()
                if self._cancel.is_set():
                    return None
        finally:
            generator.close()  # runs the generator's finally (checkpoint on cancel)


class WorkerRegistry(QObject):
    """Starts workers in threads and stops them all on shutdown."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._workers: list[Worker] = []

    def start(self, worker: Worker) -> Worker:
        thread = QThread()
        _THREADS.add(thread)
        worker.moveToThread(thread)
        worker.thread = thread
        thread.started.connect(worker.run)
        # Direct: quit from the worker's own thread, so that a GUI thread blocked in wait()
        # (closing the app) does not have to run a queued quit() first.
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        # A bound slot of this GUI-thread object: queued into the GUI thread, so ``_workers`` is
        # only ever changed there (see the module docstring on lambdas).
        thread.finished.connect(self._thread_finished)
        self._workers.append(worker)
        thread.start()
        return worker

    def run(self, fn: Callable[..., Any], *args, **kwargs) -> Worker:
        return self.start(Worker(fn, *args, **kwargs))

    @Slot()
    def _thread_finished(self) -> None:
        thread = self.sender()
        for worker in [w for w in self._workers if w.thread is thread]:
            self._forget(worker)

    def _forget(self, worker: Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker.thread is not None:
            worker.thread.deleteLater()

    @property
    def active(self) -> list[Worker]:
        return [w for w in self._workers if w.thread is not None and w.thread.isRunning()]

    def stop_all(self, timeout_ms: int = 10_000) -> bool:
        """Cancel every worker and wait for its thread; True if all ended in time."""
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        ok = True
        for worker in workers:
            if worker.thread is not None and worker.thread.isRunning():
                ok &= worker.thread.wait(timeout_ms)
        return ok
