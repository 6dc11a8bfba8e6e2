"""Frames of a multi-frame image on the real window: decoded on the worker, never mismatched.

The viewer shows a frame only once the worker decoded it; the overlay, the caption and the
pixel readout always belong to the frame on screen, during playback too.
"""

from __future__ import annotations

import threading

import pytest
from gui_fixtures import WAIT_MS, pump, write_multiframe
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from engine.studies.image import Image

N_FRAMES = 12


@pytest.fixture(scope="module")
def cine_file(tmp_path_factory):
    return write_multiframe(tmp_path_factory.mktemp("cine") / "cine.dcm", N_FRAMES)


@pytest.fixture
def decode_threads(monkeypatch):
    """The threads that decode frames, recorded by wrapping the real decoder."""
    threads = []
    decode = Image._decode

    def recording(self, frame):
        threads.append(threading.current_thread())
        return decode(self, frame)

    monkeypatch.setattr(Image, "_decode", recording)
    return threads


def _open(window, qapp, qtbot, path):
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.open_paths([str(path)])
    assert window.image.n_frames == N_FRAMES


def test_frames_are_decoded_on_the_worker_and_prefetched(window, qapp, qtbot, cine_file,
                                                         decode_threads):
    _open(window, qapp, qtbot, cine_file)
    assert pump(qapp, lambda: window.frames.decoded_count() == N_FRAMES)
    window.viewer.step_frame(1)
    window.viewer.step_frame(1)
    assert window.viewer.frame == 2  # prefetched: shown at once
    assert len(decode_threads) >= N_FRAMES
    assert all(t is not threading.main_thread() for t in decode_threads)


def test_a_new_frame_never_shows_the_map_or_caption_of_another(window, qapp, qtbot, cine_file):
    _open(window, qapp, qtbot, cine_file)
    assert pump(qapp, lambda: window.frames.decoded_count() == N_FRAMES)
    first = window.layer_model.heatmap
    assert first is not None and "frame 1/12" in window.caption.text()
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.viewer.step_frame(1)
        # At once: the old map is gone, the caption names the new frame.
        assert window.viewer.overlay_image().isNull()
        assert "frame 2/12" in window.caption.text()
        assert window.result is None or window.result.frame == 1
    assert window.layer_model.owner == window.image.content_id(1)
    assert pump(qapp, lambda: window.result is not None)
    assert window.result.frame == 1
    assert window.panel.prediction.topLevelItemCount() == 2


def test_playback_hides_maps_a_frame_does_not_have(window, qapp, qtbot, cine_file):
    _open(window, qapp, qtbot, cine_file)
    assert pump(qapp, lambda: window.frames.decoded_count() == N_FRAMES)
    seen = []

    def check(frame: int) -> None:
        # Whatever is drawn over a frame belongs to that frame.
        owner = window.layer_model.owner
        drawn = not window.viewer.overlay_image().isNull()
        seen.append((frame, drawn, owner))
        assert not drawn or owner == window.image.content_id(frame)
        assert f"frame {frame + 1}/12" in window.caption.text()

    window.viewer.sig_frame_changed.connect(check)
    try:
        assert window.viewer.toggle_cine()
        assert pump(qapp, lambda: len(seen) >= N_FRAMES + 2, timeout_ms=20_000)
        assert any(not drawn for _f, drawn, _o in seen)
        assert "heatmap hidden while playing" in window.caption.text() or \
            window.layer_model.heatmap is not None
    finally:
        window.viewer.sig_frame_changed.disconnect(check)
        window.viewer.toggle_cine()
    # Stopped: the frame on screen gets its own map.
    frame = window.viewer.frame
    assert pump(qapp, lambda: window.layer_model.owner == window.image.content_id(frame)
                and window.layer_model.heatmap is not None)


def test_the_readout_follows_a_frame_change_and_a_drag(window, qapp, qtbot, cine_file):
    _open(window, qapp, qtbot, cine_file)
    assert pump(qapp, lambda: window.frames.decoded_count() == N_FRAMES)
    viewer = window.viewer
    port = viewer.viewport()
    centre = port.rect().center()
    QTest.mouseMove(port, centre)
    before = window.pixel_label.text()
    assert before.startswith("x ")
    viewer.step_frame(1)
    after = window.pixel_label.text()
    assert after != before and after.split("   ")[0] == before.split("   ")[0]
    # A window/level drag moves the cursor too: the readout follows it.
    QTest.mousePress(port, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(port, centre + QPoint(40, 30))
    during = window.pixel_label.text()
    QTest.mouseRelease(port, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(40, 30))
    assert during.split("   ")[0] != after.split("   ")[0]
