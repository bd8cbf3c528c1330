"""Dialogs of the svgui window: export, shortcut reference, messages (errors and questions)."""
