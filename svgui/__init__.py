"""svgui desktop application (PySide6 + pyqtgraph) on top of the Qt-free ``engine`` package."""
