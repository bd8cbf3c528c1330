"""Shared test set-up: offscreen Qt, no GPU, a private spectrogram cache and settings store."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Keep the on-disk spectrogram cache of a test run away from the user's."""
    os.environ["SVGUI_CACHE_DIR"] = str(tmp_path_factory.mktemp("spectrogram-cache"))
    # and the precision calibration of engine/precision.py (auto) likewise
    os.environ["SVGUI_PRECISION_CACHE"] = str(tmp_path_factory.mktemp("precision-cache") / "precision.json")
