"""SIGTERM handled like Ctrl+C, so a scheduler's stop saves a training checkpoint as Ctrl+C does.

Cluster schedulers (Slurm, Kubernetes, ``timeout``) end a job with SIGTERM and, after a grace
period, SIGKILL. Python's default for SIGTERM is to die at once, skipping every ``finally``; here
it raises ``Terminated`` (a KeyboardInterrupt) in the main thread instead, so the code that saves
a checkpoint on Ctrl+C runs unchanged.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, the first SIGTERM or SIGINT raises (Terminated or KeyboardInterrupt).

    Later ones are ignored until the block ends: a second signal must not abort the checkpoint
    that the first one is saving (a pool's parent terminates a worker that Ctrl+C already
    interrupted). Outside the main thread, where Python cannot install handlers, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted = False

    def handle(signum, frame) -> None:
        nonlocal interrupted
        if interrupted:
            return
        interrupted = True
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    # A signal the process was started to ignore (SIGINT of a background job) stays ignored.
    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
