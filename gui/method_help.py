"""Help ▸ What am I looking at?: one short page per explainer, built from the plugin itself.

Each page says what the map means, what it cannot show, and how to read the trust panel. The
words come from the plugin's ``title``, ``description``, ``citation`` and optional ``caveats``,
and from what its attributes imply (signed or not, layer-based or model-agnostic, what it reads
from the model), so a third-party explainer gets a page too. The trust panel's part comes from
the panel's own row definitions, so the two never disagree.
"""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QComboBox, QDialog, QLabel, QTextBrowser, QVBoxLayout

from engine.explain.api import is_layer_based
from engine.metrics.reading import FAMILIES, ROWS


def _means(explainer, layer_shape: tuple | None) -> list[str]:
    lines = [escape(explainer.description or "No description given by the plugin.")]
    if getattr(explainer, "signed", False):
        lines.append("The map is <b>signed</b>: red pixels raise the explained class's score, "
                     "blue pixels lower it, and white is no effect. Values are scaled by the "
                     "largest absolute value, to [−1, 1].")
    else:
        lines.append("The map is <b>unsigned</b>: bright means more evidence <i>for</i> the "
                     "explained class. Values are scaled to [0, 1] by the map's peak; the "
                     "absolute scale compares raw values across maps.")
    units = getattr(explainer, "units", "")
    if units and units != "a.u.":
        lines.append(f"Raw values measure {escape(units)} (the colour bar's units).")
    return lines


def _limits(explainer, layer: str | None, layer_shape: tuple | None) -> list[str]:
    lines = []
    caveats = getattr(explainer, "caveats", "")
    if caveats:
        lines.append(escape(caveats))
    needs = set(getattr(explainer, "needs", ()))
    if is_layer_based(explainer):
        grid = ("×".join(str(n) for n in layer_shape[-2:]) if layer_shape else "the layer's")
        lines.append(f"It is computed on a layer ({escape(str(layer or 'the chosen layer'))}, a "
                     f"{grid} grid) and upsampled: it cannot show detail finer than one cell "
                     "of that grid. Earlier layers are sharper but less about the class.")
    else:
        lines.append("It is computed on the input pixels, so it can be sharp, but sharp is not "
                     "the same as faithful: check the trust panel's randomisation test.")
    if "gradients" in needs or "input_gradients" in needs:
        lines.append("Gradients say how the score would change for a small change of the "
                     "pixels; they cannot show features that already saturate the score.")
    if "forward_fn" in needs and not needs & {"activations", "gradients", "input_gradients"}:
        lines.append("It hides parts of the image and rescores it: the answer depends on what "
                     "the hidden parts are replaced with (the baseline), and a grey patch in a "
                     "lung can itself look like an opacity to the model.")
    if not getattr(explainer, "signed", False):
        lines.append("Being unsigned, it cannot show evidence <i>against</i> the class.")
    lines.append("No heatmap shows <i>why</i> a feature matters clinically, and none is a "
                 "finding: it describes the model, not the patient.")
    return lines


def method_page(explainer, layer: str | None = None, layer_shape: tuple | None = None) -> str:
    """The help page of one explainer, as HTML.

    Parameters
    ----------
    explainer : Explainer
        A registered explainer (its attributes are read, it is never run).
    layer : str, optional
        The layer shown now, for layer-based explainers.
    layer_shape : tuple, optional
        That layer's output shape.
    """
    title = escape(explainer.title or explainer.name)
    citation = escape(explainer.citation or "no citation given by the plugin")
    rows = "".join(f"<li><b>{escape(label)}</b>: {escape(tip)}</li>"
                   for _key, label, _fmt, tip in ROWS)
    families = "".join(f"<li><b>{escape(family.capitalize())}</b>: {escape(meaning)}</li>"
                       for family, meaning, _keys in FAMILIES)
    return (f"<h2>{title}</h2>"
            f"<h3>What the map means</h3><p>{'</p><p>'.join(_means(explainer, layer_shape))}</p>"
            "<h3>What it cannot show</h3><ul><li>"
            + "</li><li>".join(_limits(explainer, layer, layer_shape))
            + "</li></ul>"
            "<h3>Reading the trust panel</h3>"
            "<p>Tools ▸ Trust metrics measures the map on screen. A faithful map points at what "
            "the model uses: deleting its brightest pixels should make the score fall fast, and "
            "the map should change when the model's weights are randomised. A badge warns when "
            "that randomisation check fails.</p>"
            "<p>The figures are grouped by family, each under a line saying what it asks. A "
            "green <i>good</i>, amber <i>fair</i> or red <i>poor</i> marker stands beside each "
            "figure that has an absolute scale; figures without a marker are read against "
            "another map or model. The uncertainty line under the verdict says how many of 20 "
            "seeded augmentations (small shifts, rotations, contrast changes, never flips) keep "
            "the decision, the probability's spread, MC dropout where the model has dropout "
            "layers, and how far the map moves (its rank correlation once each augmentation is "
            "undone).</p>"
            f"<ul>{families}</ul>"
            f"<ul>{rows}</ul>"
            f"<p><i>Reference:</i> {citation}</p>")


class QtMethodHelp(QDialog):
    """The "What am I looking at?" window: a method list and the chosen method's page.

    Parameters
    ----------
    explainers : dict
        Registry name → explainer, as the window holds them.
    current : str, optional
        The method on screen, shown first.
    layer : str, optional
        The layer on screen.
    layer_shapes : dict, optional
        Layer name → output shape.
    """

    def __init__(self, explainers: dict, current: str | None = None, layer: str | None = None,
                 layer_shapes: dict | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("What am I looking at?")
        self.explainers, self.layer = explainers, layer
        self.layer_shapes = layer_shapes or {}
        self.methods = QComboBox()
        for name, explainer in explainers.items():
            self.methods.addItem(explainer.title or name, name)
        self.page = QTextBrowser()
        self.page.setOpenExternalLinks(False)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Method"))
        layout.addWidget(self.methods)
        layout.addWidget(self.page, 1)
        self.resize(560, 620)
        self.methods.currentIndexChanged.connect(self._show)
        index = self.methods.findData(current) if current else 0
        self.methods.setCurrentIndex(max(index, 0))
        self._show()

    def _show(self, *_args) -> None:
        name = self.methods.currentData()
        if name is None:
            self.page.setHtml("<p>No explainers are loaded.</p>")
            return
        self.page.setHtml(method_page(self.explainers[name], self.layer,
                                      self.layer_shapes.get(self.layer)))


def open_for(window) -> QtMethodHelp:
    """Help ▸ What am I looking at?: the page of the method on screen, non-modal."""
    shapes = {}
    if window.model is not None:
        shapes = {info.name: tuple(info.shape) for info in window.model.layers()}
    dialog = QtMethodHelp(window.explainers, window.method, window.layer, shapes, window)
    dialog.setModal(False)
    dialog.show()
    window.method_help = dialog
    return dialog
