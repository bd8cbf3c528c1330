"""Views of the open document and the panels beside them.

The document views (``spectrogram_view``, ``probability_view``, ``waveform_view``) take the
Document in ``__init__`` and follow its signals; only main_window composes them, e.g.
``probability.plot.setXLink(spectrogram.plot)``. Nothing is imported here so that importing one
panel does not pull in the others.
"""
