"""GUI test set-up: row-major images as the app uses, and no test may leave a thread running.

"QThread: Destroyed while thread is still running" is the classic crash of Qt apps, so every
svgui test fails if it leaves behind a running QThread, a busy QThreadPool or a new Python thread.
QThreads are found through the registry of svgui.workers (``threading.enumerate`` does not list
threads started by Qt).
"""

from __future__ import annotations

import threading
import time

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QCoreApplication, QThread, QThreadPool

pg.setConfigOptions(imageAxisOrder="row-major")

GRACE_S = 2.0  # threads told to stop inside the test may take a moment to finish


def _running_qthreads() -> list[QThread]:
    # svgui.workers is the one place that makes threads, and it keeps a registry of them
    # (scanning gc.get_objects() for QThreads would cost a second per test with torch loaded).
    from svgui.workers import running_threads
    return running_threads()


def _leftovers(python_threads_before: set[int]) -> list[str]:
    names = [f"QThread {type(t).__name__}" for t in _running_qthreads()]
    names += [f"Python thread {t.name}" for t in threading.enumerate()
              if t.ident not in python_threads_before and t.is_alive() and not t.daemon]
    active = QThreadPool.globalInstance().activeThreadCount()
    if active:
        names.append(f"{active} QThreadPool task(s)")
    return names


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private settings store, no audio device, and dialogs answered instead of shown."""
    from svgui.dialogs import messages
    monkeypatch.setenv("SVGUI_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("SVGUI_NO_AUDIO", "1")
    monkeypatch.setattr(messages, "NO_MODAL", True)
    monkeypatch.setattr(messages, "recorded", [])
    monkeypatch.setattr(messages, "answers", {"save_changes": messages.DISCARD, "recover_autosave": False})
    return tmp_path


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """Fail the test if it leaves a thread running (after a short grace period)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + GRACE_S
    leftovers = _leftovers(before)
    while leftovers and time.monotonic() < deadline:
        if QCoreApplication.instance() is not None:
            QCoreApplication.processEvents()
        time.sleep(0.02)
        leftovers = _leftovers(before)
    assert not leftovers, f"test left threads running: {', '.join(leftovers)}"
