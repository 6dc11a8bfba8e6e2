"""Guided Backprop leaves the user's model as it was and says what it cannot see."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.core.cancel import CancelToken, no_progress
from engine.core.errors import ExplainerUnavailable
from engine.explain import core
from engine.explain.api import INPUT_LAYER, resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from engine.explain.session import ExplainRequest, Session
from tests.explain_fixtures import TorchModel, gapnet_model, mixed_relu_model, random_image


class _Breaks(nn.Module):
    """Fails in gradient passes after its ReLU ran, so the hooks are live when it raises."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        out = self.act(self.conv(x))
        if x.requires_grad:
            raise ValueError("broken model")
        return out.mean(dim=(2, 3))


def _hooks(module):
    return [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for name, m in module.named_modules()]


def _direct(name, capture, **params):
    """Run an explainer on a view of the capture, as the core does, and return maps and notes."""
    explainer = registry().get(name)
    view = capture.view(explainer.needs)
    maps = explainer.explain(view, view.targets, capture.layers,
                             resolve_params(explainer, params), no_progress, CancelToken())
    return maps, getattr(view, "notes", {})


def test_guided_backprop_leaves_the_model_unchanged_and_removes_its_hooks():
    model = gapnet_model()
    before_state = {k: v.clone() for k, v in model.module.state_dict().items()}
    before_hooks = _hooks(model.module)
    capture = run_capture(model, model.preprocess(random_image(48)), "top", ["features.4"])
    plain = _direct("saliency", capture)[0][INPUT_LAYER]
    guided, notes = _direct("guidedbackprop", capture)
    _direct("guidedgradcam", capture)
    assert _hooks(model.module) == before_hooks
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, before_state[key]), key
    assert all(p.grad is None for p in model.module.parameters())
    assert not notes  # every ReLU of GapNet is a module: nothing to warn about
    # The hooks changed the gradient while they were on, and nothing of them stayed behind.
    assert not torch.allclose(guided[INPUT_LAYER].abs(), plain)
    torch.testing.assert_close(_direct("saliency", capture)[0][INPUT_LAYER], plain)


def test_hooks_are_removed_when_the_model_fails_mid_pass():
    model = TorchModel(_Breaks(), ["a", "b"], size=16)
    capture = run_capture(model, torch.zeros(1, 3, 16, 16), target=0, gradients=False)
    before = _hooks(model.module)
    explainer = registry().get("guidedbackprop")
    the_plan = core.Plan([explainer], {explainer.name: resolve_params(explainer, {})}, [], False)
    got = core.explain(capture, the_plan)
    assert "broken model" in got.errors[0]["guidedbackprop"]
    assert _hooks(model.module) == before


def test_functional_relus_get_a_one_line_warning():
    model = mixed_relu_model()
    capture = run_capture(model, model.preprocess(random_image(16)), target=1, gradients=False)
    _, notes = _direct("guidedbackprop", capture)
    (entry,) = notes["guidedbackprop"]
    line = entry["warning"]
    assert "\n" not in line
    assert "1 ReLU(s) as functions" in line and "unguided" in line and "1 nn.ReLU" in line


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_models_are_refused_with_one_line():
    script = TorchModel(torch.jit.script(gapnet_model().module), ["a", "b", "c"], size=48)
    script.kind = "torchscript"
    script.layer_methods_reason = "TorchScript models expose no submodules to hook"
    for name in ("guidedbackprop", "guidedgradcam"):
        reason = registry().get(name).unavailable_reason(script)
        assert reason and "TorchScript" in reason and "\n" not in reason
    with pytest.raises(ExplainerUnavailable) as err:
        Session(device="cpu").explain(ExplainRequest(random_image(48), script,
                                                     ["guidedbackprop"]))
    assert "guided backprop" in err.value.one_line()
