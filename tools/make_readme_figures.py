"""Regenerate the README's method figures from the engine's own figure code.

- ``docs/figure_methods.png``: the demo study's first nodule case (``phantom_0001.dcm``) explained
  by the ``demo`` model for the nodule class under Grad-CAM (at its default layer), Integrated
  Gradients, KernelSHAP and Guided Backprop (at the input), side by side, all on one diverging
  colour scale centred at 0 (Grad-CAM, never negative, uses its upper half).
- ``docs/figure_segmentation.png``: ``demo-seg`` on the same case, Grad-CAM of the nodule class
  over the pixels the model assigns to it.

Every method runs with its defaults and a fixed seed, so the figures are the same on every run.
Usage: ``python tools/make_readme_figures.py [DOCS_FOLDER]`` (default ``docs``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.atomic import write_atomic  # noqa: E402
from engine.core.resources import DEMO_STUDY  # noqa: E402
from engine.explain.session import ExplainRequest, Session  # noqa: E402
from engine.export.figure import FigureOptions, figure_png, render_figure  # noqa: E402
from engine.models.loaded import load_model  # noqa: E402
from engine.studies.image import open_image  # noqa: E402

CASE = "phantom_0001.dcm"
METHODS = ("gradcam", "intgrad", "kernelshap", "guidedbackprop")


def methods_figure(path: Path) -> None:
    """Write the four-method figure of the demo case to ``path``."""
    model = load_model("demo")
    image = open_image(DEMO_STUDY / CASE)
    result = Session(device="cpu").explain(
        ExplainRequest(image, model, list(METHODS), target="nodule",
                       params={"kernelshap": {"seed": 0}}))
    # One row, one map per method: Grad-CAM's map is already in image geometry like the
    # others, so all four share one row; the README says which layer each one reads. All four
    # are drawn on the one diverging bar the figure shows; Grad-CAM's 0..1 is its upper half.
    row = {(m.method, "maps"): dataclasses.replace(m, signed=True) for m in result.maps.values()}
    shown = dataclasses.replace(result, maps=row)
    options = FigureOptions(kind="grid", dpi=200, width_in=7.0, caption=False)
    write_atomic(path, figure_png(render_figure(shown, image, options)))


def segmentation_figure(path: Path) -> None:
    """Write the demo-seg Grad-CAM figure of the demo case's nodule to ``path``."""
    model = load_model("demo-seg")
    image = open_image(DEMO_STUDY / CASE)
    result = Session(device="cpu").explain(
        ExplainRequest(image, model, ["gradcam"], target="nodule"))
    options = FigureOptions(kind="side_by_side", dpi=200, width_in=7.0)
    write_atomic(path, figure_png(render_figure(result, image, options)))


def main(argv: list[str]) -> int:
    """Write both figures into the docs folder."""
    docs = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "docs"
    methods_figure(docs / "figure_methods.png")
    segmentation_figure(docs / "figure_segmentation.png")
    print(f"wrote {docs / 'figure_methods.png'} and {docs / 'figure_segmentation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
