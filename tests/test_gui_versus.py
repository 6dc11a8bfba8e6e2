"""The contrastive target in the window: the same choice as ``--versus``."""

from __future__ import annotations

import numpy as np
from gui_fixtures import WAIT_MS, demo_window, pump


def test_rather_than_explains_the_logit_difference(qapp, qtbot, tmp_path):
    from engine.explain.session import ExplainRequest, Session

    win = demo_window(qapp, tmp_path)
    assert [win.panel.versus.itemData(i) for i in range(win.panel.versus.count())] == \
        [None, 0, 1]
    with qtbot.waitSignal(win.sig_map_drawn, timeout=WAIT_MS):
        win.set_target(1)
    plain = win.layer_model.heatmap.copy()
    win.panel.versus.setCurrentIndex(1)
    with qtbot.waitSignal(win.sig_map_drawn, timeout=WAIT_MS):
        win.panel.versus.activated.emit(1)
    assert pump(qapp, lambda: win.result is not None and win.result.versus == "normal")
    contrast = win.layer_model.heatmap
    assert "explaining nodule" in win.caption.text() and "rather than normal" in win.caption.text()
    # The window's map is the engine's map for logit nodule − logit normal.
    expected = Session().explain(ExplainRequest(
        image=win.image, model=win.model, methods=[win.method], layers=[win.layer],
        target=1, versus=0)).maps[(win.method, win.layer)].heatmap
    np.testing.assert_allclose(contrast, expected, atol=1e-5)
    assert not np.allclose(plain, contrast, atol=1e-3)
    # Back to no contrast: the plain map, from the cache.
    with qtbot.waitSignal(win.sig_map_drawn, timeout=WAIT_MS):
        win.panel.versus.setCurrentIndex(0)
        win.panel.versus.activated.emit(0)
    np.testing.assert_allclose(win.layer_model.heatmap, plain, atol=1e-6)
    win.close()
