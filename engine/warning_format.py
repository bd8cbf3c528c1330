"""Warnings print as one line, ``warning: <message>``: users need the message, not our source line."""

from __future__ import annotations

import sys
import warnings


def format_warning(message, category, filename, lineno, line=None) -> str:
    """A ``warnings.formatwarning`` without the file name, line number and code line Python adds."""
    return f"warning: {message}\n"


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print through tqdm, so that a warning raised under a progress bar gets a line of its own.

    Inside ``warnings.catch_warnings(record=True)`` (tests, the app's label loading) the warning
    is recorded as usual, not printed.
    """
    recorder = getattr(warnings, "_showwarnmsg_impl", None)
    if recorder is not None and getattr(recorder, "__name__", "") != "_showwarnmsg_impl":
        recorder(warnings.WarningMessage(message, category, filename, lineno, file, line))
        return
    stream = file if file is not None else sys.stderr
    text = format_warning(message, category, filename, lineno, line)
    try:
        from tqdm import tqdm
    except ImportError:
        stream.write(text)
        return
    tqdm.write(text.rstrip("\n"), file=stream)


def use_plain_warnings() -> None:
    """Print every warning of this process as ``warning: <message>`` (the CLI and the app call it first)."""
    warnings.formatwarning = format_warning
    warnings.showwarning = show_warning
