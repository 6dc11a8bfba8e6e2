"""The typed plugin contract: parameters coerce to their declared type, a schema that cannot
work is refused when it is built (and its plugin reported, not registered), and every map comes
back batch first, (N, *grid), or is that method's one-line error."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from engine.core.errors import UsageError
from engine.explain import core
from engine.explain.api import Explainer, Param, PluginError, resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import Registry, load_registry
from engine.models.loaded import LoadedModel
from engine.models.volume_preprocess import VolumeSpec
from tests.explain_fixtures import gapnet_model, random_image

# -- coercion --------------------------------------------------------------------------------


@pytest.mark.parametrize(("param", "given", "expected"), [
    (Param("k", "integer", 32), "5", 5),
    (Param("k", "int", 32), " 7 ", 7),
    (Param("k", "int", 32), 8.0, 8),
    (Param("sigma", "float", 0.5), "0.25", 0.25),
    (Param("sigma", "number", 1), "3", 3.0),
    (Param("on", "boolean", False), "yes", True),
    (Param("on", "bool", True), "0", False),
    (Param("on", "bool", True), "False", False),
    (Param("on", "bool", False), 1, True),
    (Param("mode", "choice", "fast", choices=("exact", "fast")), "exact", "exact"),
    (Param("mode", "choice", 2, choices=(1, 2, 4)), "4", 4),
    (Param("label", "string", "x"), "abc", "abc"),
])
def test_coerce_returns_the_declared_type(param, given, expected):
    got = param.coerce(given)
    assert got == expected
    assert type(got) is type(expected)


def test_aliases_are_stored_as_the_type_they_stand_for_and_defaults_are_typed():
    assert Param("k", "integer", 32).type == "int"
    assert Param("x", "number", 1).default == 1.0
    assert type(Param("x", "number", 1).default) is float
    assert Param("on", "boolean", "yes").default is True
    explainer = type("E", (), {"name": "e", "params": (Param("k", "integer", "16"),)})()
    assert resolve_params(explainer, {}) == {"k": 16}


@pytest.mark.parametrize(("param", "bad"), [
    (Param("k", "int", 32), "2.5"),
    (Param("k", "int", 32), True),
    (Param("k", "int", 32, range=(1, 64)), "65"),
    (Param("x", "float", 0.5), "nan"),
    (Param("on", "bool", False), "maybe"),
    (Param("on", "bool", False), 2),
    (Param("mode", "choice", 2, choices=(1, 2, 4)), "3"),
    (Param("label", "str", "x"), None),
])
def test_coerce_refuses_values_that_do_not_fit(param, bad):
    with pytest.raises(UsageError, match=param.name):
        param.coerce(bad)


def test_every_builtin_parameter_round_trips_through_its_text():
    reg = load_registry(user_dirs=[])
    assert reg.errors == []
    for name in reg.names():
        for p in reg.get(name).params:
            assert p.coerce(str(p.default)) == p.default, (name, p.name)
            assert type(p.coerce(str(p.default))) is type(p.default), (name, p.name)


# -- schemas refused at build ----------------------------------------------------------------

BAD_SCHEMAS = {
    "unknown type": (lambda: Param("k", "integr", 3), "unknown type"),
    "min > max": (lambda: Param("k", "int", 3, range=(10, 1)), "min > max"),
    "default above range": (lambda: Param("k", "int", 99, range=(1, 64)), "outside 1..64"),
    "default not a choice": (lambda: Param("mode", "choice", "slow", choices=("exact", "fast")),
                             "not one of exact, fast"),
    "default not its type": (lambda: Param("k", "int", "many"), "not a valid int"),
    "default not a bool": (lambda: Param("on", "bool", "maybe"), "not a valid bool"),
    "choice without choices": (lambda: Param("mode", "choice", "a"), "without choices"),
    "range on a choice": (lambda: Param("mode", "choice", "a", choices=("a",), range=(0, 1)),
                          "cannot have a range"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCHEMAS))
def test_a_schema_that_cannot_work_is_refused_when_built(case):
    build, message = BAD_SCHEMAS[case]
    with pytest.raises(PluginError, match=message) as caught:
        build()
    assert "parameter" in str(caught.value) and "\n" not in str(caught.value)


PLUGIN = textwrap.dedent(
    """
    from engine.explain.api import Explainer, Param

    class Plugin(Explainer):
        name = "{name}"
        title = description = citation = "-"
        needs = frozenset({{"activations"}})
        params = ({param},)

        def explain(self, capture, target, layers, params, progress, cancel):
            return {{l: capture.activations[l].mean(1) for l in layers}}
    """
)


@pytest.mark.parametrize(("param", "words"), [
    ('Param("power", "float", 9.0, range=(0.5, 4.0))', "outside 0.5..4.0"),
    ('Param("power", "float", 1.0, range=(4.0, 0.5))', "min > max"),
    ('Param("power", "decimal", 1.0)', "unknown type"),
    ('Param("power", "choice", "x", choices=("a", "b"))', "not one of a, b"),
])
def test_a_user_plugin_with_a_bad_schema_is_reported_in_one_line_and_the_rest_load(
        tmp_path, param, words):
    (tmp_path / "good.py").write_text(PLUGIN.format(name="goodplugin",
                                                    param='Param("power", "float", 1.0)'))
    (tmp_path / "bad_default.py").write_text(PLUGIN.format(name="badplugin", param=param))
    reg = load_registry(user_dirs=[tmp_path])
    assert "goodplugin" in reg.names() and "gradcam" in reg.names()
    assert "badplugin" not in reg.names()
    assert len(reg.errors) == 1
    line = reg.errors[0]
    assert "\n" not in line and "Traceback" not in line
    assert str(tmp_path / "bad_default.py") in line
    assert "parameter power" in line and words in line


def test_an_explainer_object_declaring_a_parameter_twice_is_reported_not_registered():
    class Twice(Explainer):
        name = "twice"
        needs = frozenset()
        params = (Param("k", "int", 1), Param("k", "int", 2))

    reg = Registry()
    reg.add(Twice, "test")
    assert reg.names() == []
    assert reg.errors == ["plugin test: explainer 'twice' declares parameter k twice. "
                          "Fix: give every parameter its own name"]


# -- maps batch first ------------------------------------------------------------------------


class ForgetsTheBatch(Explainer):
    """An unbatched explainer returning (h, w): the old contract."""

    name = "forgetsbatch"
    needs = frozenset({"activations"})

    def explain(self, capture, target, layers, params, progress, cancel):
        return {layer: capture.activations[layer][0].sum(0) for layer in layers}


class OneMapForTheBatch(Explainer):
    """A batched explainer returning a single (1, h, w) map for a whole batch."""

    name = "onemap"
    needs = frozenset({"activations"})
    batched = True

    def explain(self, capture, target, layers, params, progress, cancel):
        return {layer: capture.activations[layer][:1].sum(1) for layer in layers}


class BatchFirst(Explainer):
    """A correct unbatched explainer: (1, h, w)."""

    name = "batchfirst"
    needs = frozenset({"activations"})

    def explain(self, capture, target, layers, params, progress, cancel):
        return {layer: capture.activations[layer].sum(1) for layer in layers}


def _registry(monkeypatch, *explainers) -> Registry:
    reg = Registry()
    reg.load_builtins()
    for e in explainers:
        reg.add(e, "test")
    monkeypatch.setattr("engine.explain.core.registry", lambda: reg)
    return reg


def test_an_unbatched_map_is_that_methods_one_line_error_and_the_others_go_on(monkeypatch):
    _registry(monkeypatch, ForgetsTheBatch, BatchFirst)
    model = gapnet_model()
    the_plan = core.plan(model, ["forgetsbatch", "gradcam", "batchfirst"], ["features.4"])
    x = torch.cat([model.preprocess(random_image(48, seed=s)) for s in (0, 1)])
    got = core.explain(run_capture(model, x, "top", the_plan.layers, True), the_plan)
    for i in range(2):
        line = got.errors[i]["forgetsbatch"]
        assert "\n" not in line
        assert "map for features.4 is shaped (24, 24), not (1, h, w)" in line
        assert ("forgetsbatch", "features.4") not in got.maps[i]
        assert set(got.errors[i]) == {"forgetsbatch"}
        assert got.maps[i][("gradcam", "features.4")].shape == (24, 24)
        assert got.maps[i][("batchfirst", "features.4")].shape == (24, 24)


def test_a_batched_map_of_the_wrong_batch_size_fails_every_input_once(monkeypatch):
    calls = []

    class Counted(OneMapForTheBatch):
        def explain(self, capture, target, layers, params, progress, cancel):
            calls.append(len(capture))
            return super().explain(capture, target, layers, params, progress, cancel)

    _registry(monkeypatch, Counted)
    model = gapnet_model()
    the_plan = core.plan(model, ["onemap", "gradcam"], ["features.4"])
    x = torch.cat([model.preprocess(random_image(48, seed=s)) for s in (0, 1, 2)])
    got = core.explain(run_capture(model, x, "top", the_plan.layers, True), the_plan)
    assert calls == [3]  # not retried input by input: the shape is the plugin's, not an input's
    for i in range(3):
        assert "shaped (1, 24, 24), not (3, h, w)" in got.errors[i]["onemap"]
        assert ("gradcam", "features.4") in got.maps[i]


def _volume_model() -> LoadedModel:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                        nn.Flatten(), nn.Linear(4, 3)).eval()
    spec = VolumeSpec(size=(4, 8, 8), channels=1, mean=(0.5,), std=(0.25,),
                      spacing=(2.0, 1.0, 1.0), window=(0.0, 1.0))
    return LoadedModel.from_module(net, classes=["a", "b", "c"], input=spec)


def test_a_3d_model_needs_maps_with_three_grid_axes(monkeypatch):
    class Flat(Explainer):
        """Returns one slice of the volume's map: (1, h, w) for a 3-D model."""

        name = "flat"
        needs = frozenset({"activations"})

        def explain(self, capture, target, layers, params, progress, cancel):
            return {layer: capture.activations[layer].sum(1)[:, 0] for layer in layers}

    _registry(monkeypatch, Flat, BatchFirst)
    model = _volume_model()
    the_plan = core.plan(model, ["flat", "batchfirst"], ["1"])
    x = torch.rand(1, 1, 4, 8, 8)
    got = core.explain(run_capture(model, x, "top", the_plan.layers, False), the_plan)
    assert "shaped (1, 8, 8), not (1, d, h, w)" in got.errors[0]["flat"]
    assert got.maps[0][("batchfirst", "1")].shape == (4, 8, 8)
