"""Spectrogram cache speed: a miss (decode, compute, reserve + write), a hit in a new process
(hash, map, NaN check of every value) and the NaN check alone, for one N-minute file.

    python bench/cache_speed.py [--minutes 10]

Wall-clock seconds on this machine; the hit runs in a fresh process, as a new command would.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HIT = """
import sys, time
from engine.cache import SpectrogramCache
from engine.config import FeatureConfig
t = time.perf_counter()
cache = SpectrogramCache(sys.argv[1])
cache.linear(sys.argv[2], FeatureConfig()); cache.log_mel(sys.argv[2], FeatureConfig())
print(time.perf_counter() - t)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    from engine import cache as cache_module
    from engine.cache import SpectrogramCache, _verified_finite
    from engine.config import FeatureConfig

    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "noise.flac"
        rng = np.random.default_rng(0)
        sf.write(str(audio), (0.1 * rng.standard_normal(int(args.minutes * 60 * 22050))).astype(np.float32), 22050)
        root = Path(tmp) / "cache"
        start = time.perf_counter()
        cache = SpectrogramCache(root)
        linear = cache.linear(audio, FeatureConfig())
        cache.log_mel(audio, FeatureConfig())
        miss_s = time.perf_counter() - start
        hit_s = float(subprocess.run([sys.executable, "-c", HIT, str(root), str(audio)], check=True,
                                     capture_output=True, text=True).stdout)
        path = next(root.glob("*/*.linear.npy"))
        mapped = np.load(path, mmap_mode="r")
        cache_module._verified_memo.clear()  # the write remembered it as checked
        start = time.perf_counter()
        _verified_finite(path, mapped)
        check_s = time.perf_counter() - start
    print(f"{args.minutes:g} min of audio, linear {linear.nbytes / 1e6:.0f} MB:")
    print(f"  miss (decode, compute, write both entries): {miss_s:.2f} s")
    print(f"  hit in a new process (hash, map, check):    {hit_s:.3f} s")
    print(f"  NaN/inf check of the linear entry:          {1000 * check_s:.1f} ms")


if __name__ == "__main__":
    main()
