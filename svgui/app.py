"""Entry point of the `svgui` desktop application."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    # The desktop window is the subject of a later issue; until it lands, say so plainly
    # instead of opening an empty window.
    print("svgui: the desktop application is not in this version yet; use `svgui-engine` "
          "(train, predict, evaluate, bench) meanwhile. See README.md.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
