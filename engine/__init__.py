"""svgui engine: singing voice detection after Schlüter & Grill (ISMIR 2015), in torch.

Never imports Qt: usable from scripts, the command line and the GUI alike.
"""

__version__ = "0.1.0"
