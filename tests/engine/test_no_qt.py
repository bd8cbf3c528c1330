"""The engine never imports Qt (DESIGN.md, after napari's import-linter contract)."""

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
