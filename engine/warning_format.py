"""Warnings print as one line, ``warning: <message>``: users need the message, not our source line."""

from __future__ import annotations

import warnings


def format_warning(message, category, filename, lineno, line=None) -> str:
    """A ``warnings.formatwarning`` without the file name, line number and code line Python adds."""
    return f"warning: {message}\n"


def use_plain_warnings() -> None:
    """Print every warning of this process as ``warning: <message>`` (the CLI and the app call it first)."""
    warnings.formatwarning = format_warning
