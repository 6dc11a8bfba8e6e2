"""Explainer discovery: built-ins, entry points, user plugin folders, broken plugins."""

from __future__ import annotations

import textwrap

import pytest

from engine.cli import main as cli_main
from engine.core.errors import UsageError
from engine.explain.api import Param, resolve_params
from engine.explain.registry import load_registry, registry

PLUGIN = textwrap.dedent(
    """
    import torch
    from engine.explain.api import Explainer, Param

    class MeanActivation(Explainer):
        name = "{name}"
        title = "Mean activation"
        description = "Channel mean of the activations."
        citation = "-"
        needs = frozenset({{"activations"}})
        params = (Param("power", "float", 1.0, range=(0.5, 4.0), help="exponent"),)

        def explain(self, capture, target, layers, params, progress, cancel):
            return {{l: capture.activations[l].mean(1).clamp(min=0) ** params["power"]
                    for l in layers}}
    """
)
BUILTINS = ["cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "eigencam",
            "scorecam", "occlusion", "rise"]


def test_builtins_have_the_contract_keys_and_citations():
    reg = load_registry(user_dirs=[])
    assert reg.names()[: len(BUILTINS)] == BUILTINS
    assert reg.errors == []
    for name in BUILTINS:
        e = reg.get(name)
        assert e.citation and e.title and e.description
        assert all(isinstance(p, Param) for p in e.params)
    with pytest.raises(UsageError, match="gradcam"):
        reg.get("nope")


def test_folder_plugins_load_and_broken_ones_are_skipped(tmp_path, monkeypatch, capsys):
    (tmp_path / "good.py").write_text(PLUGIN.format(name="folderact"))
    (tmp_path / "crash.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "bad_needs.py").write_text(PLUGIN.format(name="badneeds").replace(
        '"activations"', '"telepathy"'))
    (tmp_path / "taken.py").write_text(PLUGIN.format(name="gradcam"))
    monkeypatch.setenv("LUCIDA_USER_PLUGINS", str(tmp_path))
    reg = registry(reload=True)
    try:
        assert "folderact" in reg.names() and "badneeds" not in reg.names()
        assert reg.names()[: len(BUILTINS)] == BUILTINS
        joined = "\n".join(reg.errors)
        assert len(reg.errors) == 3
        assert "crash.py: RuntimeError: boom at import" in joined
        assert "telepathy" in joined and "already taken" in joined
        assert cli_main(["methods"]) == 0
        out, err = capsys.readouterr()
        assert "folderact" in out and "--param power (float, default 1.0" in out
        assert "crash.py" in err
    finally:
        monkeypatch.setenv("LUCIDA_USER_PLUGINS", "")
        registry(reload=True)


def test_param_schema_parses_and_checks_values():
    scorecam = load_registry(user_dirs=[]).get("scorecam")
    params = resolve_params(scorecam, {"k": "8", "mode": "fast", "baseline": "yes"})
    assert params == {"mode": "fast", "k": 8, "baseline": True, "weighting": "score",
                      "batch_size": 64}
    for bad in ({"k": "0"}, {"k": "2.5"}, {"mode": "slow"}, {"baseline": "maybe"}, {"x": 1}):
        with pytest.raises(UsageError):
            resolve_params(scorecam, bad)
