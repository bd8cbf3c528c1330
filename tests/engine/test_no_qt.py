"""The engine never imports Qt (DESIGN.md, after napari's import-linter contract), nor do the app's job
modules that run in worker threads and processes. pyproject's import-linter contracts check the same
statically; this checks what really gets loaded at run time."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6", "svgui")

SCRIPT = f"""
import importlib, json, pkgutil, sys
import engine
imported = []
for info in pkgutil.walk_packages(engine.__path__, prefix="engine."):
    importlib.import_module(info.name)
    imported.append(info.name)
forbidden = {FORBIDDEN!r}
loaded = sorted(name for name in sys.modules if name.split(".")[0] in forbidden)
print(json.dumps({{"imported": imported, "loaded": loaded}}))
"""


def test_importing_every_engine_module_loads_no_qt():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {f"engine.{p.stem}" for p in (REPO / "engine").glob("*.py") if p.stem != "__init__"}
    assert expected <= set(report["imported"])  # every module really was imported
    assert report["loaded"] == [], f"engine pulled in {report['loaded']}"


QT_FREE_APP_MODULES = ("svgui.tasks", "svgui.model_jobs", "svgui.improve_jobs", "svgui.augment_audio",
                       "svgui.augment_sources")


def test_the_apps_job_modules_load_no_qt():
    script = (f"import importlib, json, sys\n"
              f"for name in {QT_FREE_APP_MODULES!r}: importlib.import_module(name)\n"
              f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN[:-1]!r})))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{', '.join(QT_FREE_APP_MODULES)} pulled in {loaded}"
