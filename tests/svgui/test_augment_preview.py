"""The augmentation preview: training code for the chosen seed, every control, grids, Figure 1 views,
edges of the file, audio approximations, the training hand-over and rate limiting."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PySide6.QtGui import QGuiApplication, QImage

from engine.config import AugmentConfig
from engine.features import linear_spectrogram
from engine.labels import intervals_to_targets
from engine.normalize import compute_normalization
from engine.preview import preview_excerpt
from engine.resources import resource_dir
from svgui.augment_audio import augmented_audio, original_audio, render_excerpt_wav, rendered_parts
from svgui.augment_sources import LazyLinearSpectrogram, augment_spec, crop_border
from svgui.document import Document
from svgui.playback import Player
from svgui.tasks import decode_and_analyse
from svgui.widgets import augment_preview
from svgui.widgets.augment_controls import KNOBS
from svgui.widgets.augment_preview import HINT, AugmentPreviewPanel
from tests.svgui.test_playback import FakeMediaPlayer

DEMO = "jamendolyrics_Fantasma_-_Los_Rombos_5-35s"
STRENGTHS = {"pitch": 30, "stretch": 30, "loudness": 10, "filter": 10, "mix": 1.0, "dropout": 0.2, "noise": 0.5,
             "remix": 1.0}


@lru_cache(maxsize=1)
def _demo():
    return decode_and_analyse(resource_dir() / "demo" / f"{DEMO}.flac")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SVGUI_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("SVGUI_NO_AUDIO", "1")
    return tmp_path


@pytest.fixture
def document(qtbot, env):
    decoded = _demo()
    doc = Document()
    doc.set_audio(decoded.path, decoded.samples, decoded.log_mel)
    doc.load_annotations(decoded.path.with_suffix(".lab"))
    return doc


def make_panel(qtbot, document, **kwargs) -> AugmentPreviewPanel:
    panel = AugmentPreviewPanel(document, **kwargs)
    qtbot.addWidget(panel)
    panel.resize(1200, 560)
    panel.show()
    return panel


@pytest.fixture
def panel(qtbot, document):
    panel = make_panel(qtbot, document)
    panel.set_time(14.0)
    panel.refresh_now()
    return panel


def shown(panel) -> np.ndarray:
    """The augmented picture as drawn (the ImageItem's data), [frames, n_mels]."""
    return panel.single.images[1].image.T.copy()


def test_the_panel_shows_the_clicked_excerpt_with_its_label(panel, document):
    fps = document.frames_per_second
    assert panel.centre_frame() == round(14.0 * fps)
    assert "14.00 s" in panel.header.text() and "centre: <b>voice</b>" in panel.header.text()
    np.testing.assert_array_equal(panel.single.images[0].image.T, panel.preview.original)
    np.testing.assert_array_equal(shown(panel), panel.preview.augmented)
    assert panel.preview.original.shape == (115, 80)
    # the same colour scale for both pictures
    assert panel.single.images[0].levels is not None
    np.testing.assert_allclose(panel.single.images[0].levels, panel.single.images[1].levels)
    panel.set_time(2.0)  # before the first sung phrase
    panel.refresh_now()
    assert "centre: <b>no voice</b>" in panel.header.text()


def test_each_control_changes_the_picture_and_the_printed_values(panel):
    panel.controls.switch_all_off()
    panel.refresh_now()
    assert panel.description.text().endswith("no augmentation")
    for knob in KNOBS:
        panel.controls.switch_all_off()
        panel.refresh_now()
        before_image, before_text = shown(panel), panel.description.text()
        panel.controls.set_strength(knob.short, STRENGTHS[knob.short])  # switches it on, like a slider move
        assert panel.controls.is_on(knob.short)
        panel.refresh_now()
        if knob.short == "remix":  # the demo song has no stems: said, and the picture stays
            assert "not remixed" in panel.description.text() and "Remix: not here: no stems" in panel.description.text()
            continue
        assert not np.array_equal(shown(panel), before_image), knob.short
        assert panel.description.text() != before_text and knob.short in panel.description.text(), knob.short
        assert getattr(panel.config(), knob.field) == pytest.approx(STRENGTHS[knob.short] / knob.scale)
    panel.controls.switch_all_off()
    panel.controls.set_strength("mix", 1.0)
    panel.refresh_now()
    assert "mix f=" in panel.description.text() and DEMO in panel.description.text()
    assert "Mixing partners: the non-voice frames of this file" in panel.description.text()
    panel.controls.checks["mix"].setChecked(False)
    panel.refresh_now()
    assert panel.description.text().endswith("no augmentation")


def test_slider_and_number_box_follow_each_other(panel):
    slider, spin = panel.controls.sliders["pitch"], panel.controls.spins["pitch"]
    slider.setValue(12)
    assert spin.value() == 12 and panel.config().max_pitch == pytest.approx(0.12)
    spin.setValue(45)
    assert slider.value() == 45
    panel.controls.checks["pitch"].setChecked(False)
    assert panel.config().max_pitch == 0 and panel.controls.strengths().max_pitch == pytest.approx(0.45)


def test_the_seed_fixes_the_picture(panel, qtbot):
    first = shown(panel)
    panel.refresh_now()
    np.testing.assert_array_equal(shown(panel), first)
    panel.controls.new_draw.click()
    assert panel.seed() == 1
    panel.refresh_now()
    assert not np.array_equal(shown(panel), first)
    panel.controls.seed.setValue(0)
    panel.refresh_now()
    np.testing.assert_array_equal(shown(panel), first)


def test_zero_strength_shows_the_original(panel):
    panel.controls.switch_all_off()
    panel.refresh_now()
    assert panel.config() == AugmentConfig()
    np.testing.assert_array_equal(shown(panel), panel.preview.original)
    for knob in KNOBS:  # every switch on at strength 0 is "off" too
        panel.controls.spins[knob.short].setValue(0.0)
        panel.controls.checks[knob.short].setChecked(True)
    panel.refresh_now()
    assert panel.config() == AugmentConfig() and panel.description.text().endswith("no augmentation")
    np.testing.assert_array_equal(shown(panel), panel.preview.original)


@pytest.mark.parametrize("config", [AugmentConfig.paper(),
                                    AugmentConfig(max_pitch=0.2, max_loudness_db=6, mix_probability=1.0,
                                                  dropout_probability=0.1, noise_sigma=0.3)])
def test_the_preview_is_exactly_the_engine_function(qtbot, document, config):
    panel = make_panel(qtbot, document)
    panel.controls.set_config(config)
    panel.controls.seed.setValue(7)
    panel.set_time(20.5)
    panel.refresh_now()
    features = document.features
    linear = linear_spectrogram(document.samples, features)
    targets = intervals_to_targets(document.annotations, len(linear), features.frames_per_second)
    expected = preview_excerpt(linear, panel.centre_frame(), config=config, seed=7, features=features,
                               normalization=compute_normalization([document.log_mel]),
                               partner_linear=linear, partner_centres=np.flatnonzero(~targets),
                               partner_name=f"{DEMO}.flac")
    np.testing.assert_array_equal(panel.preview.augmented, expected.augmented)
    np.testing.assert_array_equal(shown(panel), expected.augmented)
    assert panel.description.text().endswith(expected.description) or expected.description in panel.description.text()


def test_lazy_linear_spectrogram_rows_equal_the_whole_file_computation(document):
    lazy = LazyLinearSpectrogram(document.samples, document.features)
    whole = linear_spectrogram(document.samples, document.features)
    assert len(lazy) == len(whole) and lazy.shape == tuple(whole.shape)
    for lo, hi in ((0, 5), (1000, 1165), (len(whole) - 3, len(whole) + 10)):
        assert torch.equal(lazy[lo:hi], whole[lo:hi])


def test_grids_show_nine_draws_and_each_augmentation_alone_and_export_png(panel, env):
    panel.set_mode("draws")
    panel.refresh_now()
    assert len(panel.cell_previews) == 9
    seeds_differ = {p.description for p in panel.cell_previews}
    assert len(seeds_differ) == 9
    np.testing.assert_array_equal(panel.draws.images[4].image.T, panel.cell_previews[4].augmented)
    out = panel.export_png(env / "grid.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = QImage(str(out))
    ratio = panel.picture.devicePixelRatioF()
    expected = (round(panel.picture.width() * ratio), round(panel.picture.height() * ratio))
    assert (image.width(), image.height()) == expected
    assert image.width() > 600 and image.height() > 300

    panel.set_mode("alone")
    panel.refresh_now()
    assert len(panel.cell_previews) == 9  # eight alone (the seven and remix) + the switched-on combination
    np.testing.assert_array_equal(panel.alone.images[0].image.T, panel.preview.original)
    titles = [title.text() for title in panel.alone.titles]
    assert titles[0] == "original" and titles[1].startswith("pitch ±30 %") and "(off)" in titles[3]
    assert titles[-1].startswith("switched on: pitch ±30 %")


def test_figure1_views_show_the_warp_crop_and_filter_responses(panel, document):
    panel.set_mode("figure1")
    panel.refresh_now()
    features, draw = document.features, panel.preview.draw
    border = crop_border(float(draw.pitch_factor[0]), float(draw.stretch_factor[0]), features)
    xs, ys = panel.figure1.drawn.getData()
    assert max(xs) == pytest.approx(border.half_width_s) and max(ys) == pytest.approx(border.top_hz)
    neutral_x, neutral_y = panel.figure1.neutral.getData()
    assert max(neutral_x) == pytest.approx(57.5 / features.frames_per_second)
    assert max(neutral_y) == pytest.approx(372 * features.bin_hz)
    _, responses = panel.figure1.responses.getData()
    finite = responses[np.isfinite(responses)]
    assert np.abs(finite).max() <= 10.0 + 1e-6 and np.abs(finite).max() > 5.0
    assert np.isnan(responses).sum() == 50  # 50 curves, each ended by a gap
    assert panel.figure1.image.image is not None


def test_crop_border_geometry():
    from engine.config import FeatureConfig
    features = FeatureConfig()
    neutral = crop_border(1.0, 1.0, features)
    assert neutral.half_width_s == pytest.approx(57.5 / 70, rel=1e-3)
    assert neutral.top_hz == pytest.approx(8010.35, abs=0.1)
    wide = crop_border(0.7, 0.7, features)
    assert wide.half_width_s == pytest.approx(neutral.half_width_s / 0.7)
    assert wide.top_hz == pytest.approx(neutral.top_hz / 0.7)


@pytest.mark.parametrize("mode", ["single", "draws", "alone", "figure1"])
def test_excerpts_at_the_start_and_end_of_the_file_are_zero_padded(panel, document, mode):
    panel.set_mode(mode)
    silence = compute_normalization([document.log_mel]).silence(document.features)
    for time_s, padded in ((0.0, slice(0, 57)), (document.duration_s, slice(115 - 57, 115))):
        panel.set_time(time_s)
        panel.refresh_now()
        assert panel.preview.original.shape == (115, 80)
        np.testing.assert_allclose(panel.preview.original[padded], np.broadcast_to(silence, (57, 80)), atol=1e-5)
    assert panel.centre_frame() == document.n_frames - 1


def test_no_file_shows_a_hint_and_the_controls_still_work(qtbot, env):
    panel = make_panel(qtbot, Document())
    panel.set_time(3.0)
    panel.refresh_now()
    assert panel.header.text() == HINT and panel.preview is None
    panel.controls.set_strength("noise", 0.4)
    panel.refresh_now()
    assert panel.spec.text() == "pitch=0.3,stretch=0.3,filter=10,noise=0.4"
    panel.set_mode("figure1")
    panel.refresh_now()
    assert panel.figure1.responses.getData()[1] is not None


def test_use_for_training_emits_the_config_and_copies_the_spec(panel, qtbot):
    panel.controls.paper.click()
    with qtbot.waitSignal(panel.settingsForTraining) as blocker:
        panel.controls.use_button.click()
    assert blocker.args[0] == AugmentConfig.paper() == panel.config()
    assert QGuiApplication.clipboard().text() == "pitch=0.3,stretch=0.3,filter=10"
    assert "pitch=0.3,stretch=0.3,filter=10" in panel.status.text()
    panel.controls.set_strength("dropout", 0.15)
    assert AugmentConfig.parse(augment_spec(panel.config())) == panel.config()
    assert augment_spec(AugmentConfig()) == "none"


def test_rapid_value_changes_are_rate_limited(panel, qtbot):
    import time
    limit_ms = augment_preview.RATE_LIMIT_MS
    qtbot.wait(2 * limit_ms)
    before = panel.recompute_count
    for i in range(20):  # a burst between two passes of the event loop: one redraw
        panel.controls.sliders["pitch"].setValue(10 + i)
    qtbot.wait(3 * limit_ms)
    assert panel.recompute_count - before == 1
    assert panel.config().max_pitch == pytest.approx(0.29)

    before, start = panel.recompute_count, time.perf_counter()
    for i in range(20):  # a drag: events are processed between the moves
        panel.controls.sliders["stretch"].setValue(10 + i)
        QGuiApplication.processEvents()
        time.sleep(0.002)
    elapsed_ms = (time.perf_counter() - start) * 1000
    qtbot.wait(3 * limit_ms)
    recomputes = panel.recompute_count - before
    assert 1 <= recomputes <= elapsed_ms / limit_ms + 2 and recomputes < 10, (recomputes, elapsed_ms)
    assert "stretch ×" in panel.description.text()
    expected = panel._source.preview(panel.centre_frame(), panel.config(), panel.seed())
    np.testing.assert_array_equal(shown(panel), expected.augmented)  # the last value is drawn


def test_hidden_panel_does_not_recompute_until_shown(qtbot, document):
    panel = AugmentPreviewPanel(document)
    qtbot.addWidget(panel)
    qtbot.wait(3 * augment_preview.RATE_LIMIT_MS)
    count = panel.recompute_count
    panel.set_time(5.0)
    qtbot.wait(3 * augment_preview.RATE_LIMIT_MS)
    assert panel.recompute_count == count
    panel.show()
    qtbot.waitUntil(lambda: panel.recompute_count > count)
    assert panel.preview is not None and panel.centre_frame() == round(5.0 * document.frames_per_second)


# ---- listening ------------------------------------------------------------------------------
def test_play_buttons_are_disabled_without_an_audio_device(panel):
    assert not panel.player.available
    for button in (panel.play_original, panel.play_augmented):
        assert not button.isEnabled() and button.toolTip() == panel.player.unavailable_reason
    assert "approximation" in panel.play_augmented.text()
    assert panel.play(augmented=True) is None


@pytest.mark.parametrize("short", ["pitch", "stretch", "loudness", "filter", "mix"])
def test_audio_approximation_renders_each_audible_augmentation(panel, document, short):
    config = AugmentConfig.parse(f"{short}={STRENGTHS[short] / next(k.scale for k in KNOBS if k.short == short)}")
    centre = panel.centre_frame()
    preview = panel._source.preview(centre, config, 3)
    original = original_audio(document.samples, centre, features=document.features)
    audio = augmented_audio(document.samples, centre, preview.draw, config, features=document.features,
                            partner_frame=preview.partner_frame)
    assert len(original) == 114 * 315 + 1024 and len(audio) == len(original)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    assert not np.allclose(audio, original, atol=1e-4)
    if short == "loudness":
        gain_db = 20 * math.log10(np.sqrt(np.mean(audio ** 2)) / np.sqrt(np.mean(original ** 2)))
        assert gain_db == pytest.approx(float(preview.draw.loudness_db[0]), abs=0.01)
    assert rendered_parts(config) == ([short], [])


def test_audio_approximation_at_the_file_edge_and_written_as_wav(document, env):
    config = AugmentConfig(max_pitch=0.3, max_stretch=0.3, max_loudness_db=10, max_filter_db=10, noise_sigma=0.2)
    from engine.augment import draw_augmentations
    draw = draw_augmentations(config, 1, generator=torch.Generator().manual_seed(0))
    for centre in (0, document.n_frames - 1):
        path = render_excerpt_wav(env, f"a{centre}.wav", document.samples, centre, features=document.features,
                                  draw=draw, config=config)
        data, rate = sf.read(path)
        assert rate == 22050 and len(data) == 114 * 315 + 1024 and np.isfinite(data).all()
        assert np.abs(data).max() <= 1.0
    assert rendered_parts(config) == (["pitch", "stretch", "loudness", "filter"], ["noise"])


def test_play_renders_in_a_worker_and_plays_the_file(qtbot, document):
    backend = FakeMediaPlayer()
    panel = make_panel(qtbot, document, player=Player(backend=backend))
    panel.set_time(14.0)
    assert panel.play_augmented.isEnabled()
    worker = panel.play(augmented=True)
    with qtbot.waitSignal(worker.done, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: backend.playing)
    played = Path(backend.source.toLocalFile())
    assert played.name.startswith("augmented-") and sf.info(str(played)).frames == 114 * 315 + 1024
    assert "approximation" in panel.status.text()


# ---- in the main window ---------------------------------------------------------------------
def test_main_window_has_the_panel_as_a_dock_toggled_from_the_view_menu(qtbot, env, monkeypatch):
    from svgui.dialogs import messages
    from svgui.main_window import MainWindow
    monkeypatch.setattr(messages, "NO_MODAL", True)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    action = window.acts["augment_preview"]
    assert "Ctrl+Shift+P" in [s.toString() for s in action.shortcuts()]
    assert window.acts.menu_of["augment_preview"] == "View"
    assert not window.augment_dock.isVisible()
    action.trigger()
    assert window.augment_dock.isVisible()
    window.spectrogram.timeClicked.emit(3.5)
    assert window.augment_preview._time_s == 3.5
    window.workers.stop_all()


def test_a_file_with_stems_is_remixed_in_the_preview(qtbot, env, tmp_path):
    from tests.engine.test_stems import VOICED, write_stem_song

    mix = write_stem_song(tmp_path / "stems", "alpha", VOICED["alpha"], 0)
    decoded = decode_and_analyse(mix)
    doc = Document()
    doc.set_audio(decoded.path, decoded.samples, decoded.log_mel)
    panel = make_panel(qtbot, doc)
    panel.set_time(1.5)
    panel.controls.switch_all_off()
    panel.refresh_now()
    before = shown(panel)
    panel.controls.set_strength("remix", 1.0)
    panel.refresh_now()
    text = panel.description.text()
    assert "remix " in text and "dB vocals" in text and "vocals over its own accompaniment" in text
    assert not np.array_equal(shown(panel), before)
    np.testing.assert_array_equal(shown(panel), panel.preview.augmented)
