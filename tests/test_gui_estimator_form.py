"""The method's form leads with a tolerance and a time budget; step counts wait under Advanced.

The explain session reports Integrated Gradients' and KernelSHAP's progress as passes done
against the passes estimated, which the status line shows.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.explain.registry import registry
from engine.explain.session import ExplainRequest, Session
from gui.param_form import QtParamForm
from tests.explain_fixtures import gapnet_model, random_image


def test_intgrad_form_asks_for_a_tolerance_and_folds_the_step_count(qtbot):
    form = QtParamForm(registry().get("intgrad").params)
    qtbot.addWidget(form)
    form.show()
    qtbot.waitExposed(form)
    assert form.editor("tolerance").isVisible() and form.editor("time_budget").isVisible()
    assert not form.editor("steps").isVisible() and not form.editor("method").isVisible()
    assert form.values()["tolerance"] == 0.01 and form.values()["method"] == "adaptive"
    qtbot.mouseClick(form.advanced_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: form.editor("steps").isVisible())
    seen = []
    form.sig_changed.connect(seen.append)
    form.editor("method").setCurrentText("gausslegendre")
    assert seen[-1]["method"] == "gausslegendre" and seen[-1]["steps"] == 50
    qtbot.mouseClick(form.advanced_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not form.editor("steps").isVisible())


def test_a_form_without_advanced_settings_has_no_advanced_button(qtbot):
    form = QtParamForm(registry().get("gradcam").params)
    qtbot.addWidget(form)
    form.show()
    qtbot.waitExposed(form)
    assert not form.advanced_button.isVisible()


def test_progress_counts_passes_against_the_passes_estimated():
    model = gapnet_model()
    messages = []
    Session(device="cpu").explain(
        ExplainRequest(random_image(48), model, ["intgrad"],
                       params={"intgrad": {"tolerance": 0.001, "max_steps": 200}}),
        progress=lambda f, m="": messages.append((f, m)))
    counted = [m for _, m in messages if " passes" in m]
    assert counted and all(" of ~" in m for m in counted)
    done = [int(m.split(": ")[1].split(" of")[0]) for m in counted]
    assert done == sorted(done) and done[0] == 9
