"""The one place that makes threads: run engine functions and generators off the GUI thread.

A worker wraps a callable (or a generator function, whose yields become ``progress``) in a
QThread. Results and errors cross threads only through signals; cancelling sets a flag that is
checked between yields (a generator's ``finally`` then runs, e.g. training saves a checkpoint).
Every live thread is registered so the application can stop and join them all on close.
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
        last = None
        try:
            for item in generator:
                last = item
                self.progress.emit(item)
                self._pause.wait()
                if self._cancel.is_set():
                    break
        finally:
            generator.close()  # runs the generator's finally (checkpoint on cancel)
        return last


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
        thread.finished.connect(lambda w=worker: self._forget(w))
        self._workers.append(worker)
        thread.start()
        return worker

    def run(self, fn: Callable[..., Any], *args, **kwargs) -> Worker:
        return self.start(Worker(fn, *args, **kwargs))

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
