"""`svgui-engine cache info|clear`: what the spectrogram cache holds, and emptying it."""

from __future__ import annotations

import json
import os

from engine import cache_files
from engine.cache import SpectrogramCache


def cache_info(cache: SpectrogramCache) -> dict:
    """Folder, entries (one per audio file and feature setting), bytes held, limit, temporaries."""
    found = cache_files.scan(cache.root)
    return {
        "folder": str(cache.root),
        "entries": len(found.entry_files),
        "entry_bytes": sum(found.entry_bytes.values()),
        "temporary_files": len(found.temp_files),
        "temporary_bytes": sum(size for _, size in found.temp_files),
        "total_bytes": found.total_bytes,
        "limit_bytes": cache.max_bytes,
        "limit_source": cache_files.MAX_GB_ENV if os.environ.get(cache_files.MAX_GB_ENV, "").strip() else "default",
    }


def format_cache_info(info: dict) -> str:
    size = cache_files.format_bytes
    lines = [f"folder: {info['folder']}",
             f"entries: {info['entries']} ({size(info['entry_bytes'])})",
             f"total size: {size(info['total_bytes'])}",
             f"limit: {size(info['limit_bytes'])} ({info['limit_source']}; set {cache_files.MAX_GB_ENV} "
             "in GB to change it)"]
    if info["temporary_files"]:
        lines.insert(2, f"temporary files: {info['temporary_files']} ({size(info['temporary_bytes'])}); "
                        "those of finished processes go at the next write or `svgui-engine cache clear`")
    return "\n".join(lines)


def cache_command(args) -> int:
    cache = SpectrogramCache()
    if args.action == "info":
        info = cache_info(cache)
        print(json.dumps(info, indent=2) if args.json else format_cache_info(info))
        return 0
    entries = len(cache_files.scan(cache.root).entry_files)
    freed = cache.clear()
    print(f"removed {entries} {'entry' if entries == 1 else 'entries'} ({cache_files.format_bytes(freed)}) "
          f"from {cache.root}")
    return 0
