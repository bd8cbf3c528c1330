"""Speed benchmark of the engine (the figures the README quotes).

Run: python bench/speed.py [--seconds 180] [--excerpt-seconds 180] [--memory-hours 1]
Same as `svgui-engine bench`; prints the report and the machine it ran on.
"""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
