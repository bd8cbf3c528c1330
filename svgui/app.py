"""Entry point of the `svgui` desktop application: QApplication, pyqtgraph options, main()."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.audio import is_audio_path
from engine.fileio import open_problem
from engine.resources import resource_dir
from engine.warning_format import use_plain_warnings

SCREENSHOT_TIMEOUT_S = 120
DEMO_SONG = "jamendolyrics_Fantasma_-_Los_Rombos_5-35s.flac"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="svgui", description="Singing voice detection: view, annotate, predict.")
    parser.add_argument("paths", nargs="*", type=Path, metavar="FILE_OR_FOLDER",
                        help="audio files or a folder (default on first start: the bundled demo)")
    parser.add_argument("--model", type=Path, help="model file to use (default: the last used or the bundled one)")
    parser.add_argument("--screenshot", type=Path, metavar="OUT.png",
                        help="open the file, wait until spectrogram and predictions are shown, save a "
                             "screenshot of the window and exit")
    parser.add_argument("--size", default="1400x860", help="window size for --screenshot (WxH)")
    return parser.parse_args(argv)


def demo_paths() -> tuple[Path | None, Path | None]:
    root = resource_dir()
    folder = root / "demo" if root else None
    if folder is None or not folder.is_dir():
        return None, None
    song = folder / DEMO_SONG
    return folder, song if song.is_file() else None


def create_application(argv: list[str]):
    """The QApplication with the project's pyqtgraph options (set once, before any view)."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv)
    app.setOrganizationName("svgui")
    app.setApplicationName("svgui")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k")
    return app


def main(argv: list[str] | None = None) -> int:
    use_plain_warnings()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    missing = [p for p in args.paths if not p.exists()]
    for path in missing:
        print(f"{'error' if args.screenshot else 'warning'}: {path}: {_missing_reason(path)}", file=sys.stderr)
    if args.screenshot and missing:
        return 1  # a script asked for a picture of a file that is not there: say so, and fast
    app = create_application([sys.argv[0]])
    from svgui import settings as prefs
    from svgui.main_window import MainWindow

    settings = prefs.make_settings()
    model_path, model_problem = _usable_model(args.model)
    window = MainWindow(settings, model_path=model_path)
    files = [p for p in args.paths if p.is_file()]
    folders = [p for p in args.paths if p.is_dir()]
    if not args.paths and (args.screenshot or not prefs.recent_files(settings)):
        folder, song = demo_paths()  # first start: a song with voice regions at once
        folders, files = ([folder] if folder else []), ([song] if song else [])
    for folder in folders:
        window.open_folder(folder)
        if not files:
            files = sorted(p for p in folder.iterdir() if is_audio_path(p))[:1]
    if args.screenshot:
        return _screenshot(app, window, files[:1], args.screenshot, args.size)
    window.show()
    if model_problem is not None:
        from svgui.dialogs.messages import show_error
        window.statusBar().showMessage(f"--model not loaded: {model_problem}; using the bundled model", 15_000)
        show_error(window, "Cannot load model", f"{model_problem}\n\nThe bundled model is used instead.")
    if missing:
        from svgui.dialogs.messages import show_error
        listed = "\n".join(f"{p}: {_missing_reason(p)}" for p in missing)
        show_error(window, "Files not found", f"Not opened (given on the command line):\n{listed}")
    if files:
        window.open_file(files[0])
    return app.exec()


def _usable_model(path: Path | None):
    """``--model PATH`` if it loads; else the bundled model and the reason (also printed on stderr)."""
    if path is None:
        return None, None
    from engine.checkpoint import load_model
    from engine.errors import EngineError
    from engine.resources import bundled_model_path

    try:
        load_model(path)  # checked here so a bad file can be named; the window loads it again (milliseconds)
    except EngineError as exc:
        print(f"warning: --model not loaded: {exc}; using the bundled model", file=sys.stderr)
        return bundled_model_path(), exc
    return path, None


def _missing_reason(path: Path) -> str:
    try:
        path.stat()
    except OSError as exc:
        return open_problem(path, exc, not_found="no such file or folder")
    return "no such file or folder"  # gone since it was checked


def _screenshot(app, window, files, out: Path, size: str) -> int:
    """Show the window, wait for spectrogram (and predictions when a model exists), save, quit.

    A file that fails to open or to predict ends it at once: exit status 1, the reason on stderr,
    no picture.
    """
    from PySide6.QtCore import QTimer

    from svgui.dialogs import messages
    messages.NO_MODAL = True  # nobody is there to close a message box

    width, height = (int(v) for v in size.lower().split("x"))
    window.resize(width, height)
    window.show()
    status = {"code": 0}

    def finish() -> None:
        QTimer.singleShot(300, lambda: (window.grab().save(str(out)), app.quit()))

    window.predictionsShown.connect(finish)
    if window.model is None:
        window.fileShown.connect(lambda _: finish())
    window.busyChanged.connect(lambda busy: None)

    def failed(reason: str) -> None:
        print(f"error: {reason}", file=sys.stderr)
        status.update(code=1)
        app.quit()

    window.openFailed.connect(failed)
    window.predictionFailed.connect(lambda reason: failed(f"prediction failed: {reason}"))
    if files:
        window.open_file(files[0])
    else:
        finish()
    QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, lambda: failed(
        f"nothing was shown within {SCREENSHOT_TIMEOUT_S} s; no screenshot written"))  # never hang a script
    app.exec()
    window.workers.stop_all()
    window.document.undo_stack.setClean()
    window.close()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
