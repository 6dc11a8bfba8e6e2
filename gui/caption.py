"""The caption bar over the image: what is shown, how, and whether the model is meant for it.

It is two lines tall whatever it says: long texts are cut with an ellipsis (the tooltip holds the
whole text), so the image below never moves when the caption changes. On the second line the
warning is read first: a long intended-use badge gives way to it.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from engine.explain.api import is_layer_based, is_segmentation
from engine.studies.windows import window_text
from gui.roi_item import describe_roi

#: Separator between the parts of the caption.
SEPARATOR = "   │   "
#: Badge colours (background, text) per intended-use status.
BADGE_STYLES = {
    "match": ("#1f4d2b", "#d8f5de"),
    "mismatch": ("#8a2c00", "#fff1e0"),
    "unknown": ("#4a4a20", "#f6f2c8"),
    "unstated": ("#3a3d42", "#e0e0e0"),
}
#: Badge marks per intended-use status (others: "?").
BADGE_MARKS = {"match": "✓", "mismatch": "⚠", "unstated": "ℹ"}
#: The badge keeps at least this width (px) when it gives way to the warning.
BADGE_MIN_WIDTH = 160
#: Badge text when the card states no intended use.
UNKNOWN_USE = "the model's intended use is unknown"
#: Below this probability of the explained class the caption says its evidence is weak.
WEAK_EVIDENCE = 0.10


class QtElidedLabel(QLabel):
    """A one-line label that cuts its text with an ellipsis instead of growing."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(0, super().minimumSizeHint().height())

    def elided(self) -> str:
        """Return the text as drawn at the current width."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                             max(0, self.contentsRect().width()))

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setPen(self.palette().windowText().color())
        painter.drawText(self.contentsRect(), int(self.alignment()), self.elided())
        painter.end()


class QtCaptionBar(QWidget):
    """Two fixed lines over the image: file name and view details; then the intended-use
    badge and a warning. Their height never changes, so the image below never moves."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("caption")
        self.setStyleSheet("#caption { background: #17181b; } "
                           "QLabel { color: #f0f0f0; font-size: 13px; }")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        rows = QVBoxLayout(self)
        rows.setContentsMargins(8, 3, 6, 3)
        rows.setSpacing(2)
        first, second = QHBoxLayout(), QHBoxLayout()
        first.setSpacing(0)
        second.setSpacing(0)
        rows.addLayout(first)
        rows.addLayout(second)
        self.name = QtElidedLabel()
        font = self.name.font()
        font.setBold(True)
        self.name.setFont(font)
        self.name.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.name.setMaximumWidth(320)
        self.details = QtElidedLabel()
        first.addWidget(self.name)
        first.addWidget(self.details, 1)
        self.badge = QtElidedLabel()
        self.badge.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.badge.setVisible(False)
        self.warning = QtElidedLabel()
        self.warning.setStyleSheet("color: #ffb347;")
        second.addWidget(self.badge)
        second.addWidget(self.warning, 1)
        self.badge_status: str | None = None
        # Both lines keep their height when empty.
        line = self.fontMetrics().height() + 4
        for label in (self.name, self.details, self.badge, self.warning):
            label.setFixedHeight(line)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def _share_second_line(self) -> None:
        """Give the warning its whole width; the badge takes what is left (its tooltip keeps
        the whole text), down to ``BADGE_MIN_WIDTH``."""
        margins = self.layout().contentsMargins()
        room = self.width() - margins.left() - margins.right()
        wanted = self.warning.sizeHint().width() if self.warning.text() else 0
        self.badge.setMaximumWidth(max(BADGE_MIN_WIDTH, room - wanted))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._share_second_line()
        super().resizeEvent(event)

    def set_caption(self, name: str, details: list[str], warning: str | None = None) -> None:
        """Show the file ``name``, the ``details`` of the view and an optional ``warning``."""
        self.name.setText(name)
        self.details.setText((SEPARATOR if name and details else "") + SEPARATOR.join(details))
        self.warning.setText(f"   ⚠ {warning}" if warning else "")
        self._share_second_line()

    def set_badge(self, use: dict | None) -> None:
        """Show an intended-use check (``UseCheck.as_dict()``), or hide the badge for None."""
        if not use:
            self.badge_status = None
            self.badge.setVisible(False)
            return
        status = use.get("status", "unknown")
        self.badge_status = status
        text = use.get("message") or UNKNOWN_USE
        if status == "unknown":
            text = UNKNOWN_USE
        mark = BADGE_MARKS.get(status, "?")
        background, colour = BADGE_STYLES.get(status, BADGE_STYLES["unknown"])
        self.badge.setStyleSheet(f"background: {background}; color: {colour}; "
                                 "border-radius: 3px; padding: 1px 6px;")
        self.badge.setText(f"{mark} {text}")
        self.badge.setVisible(True)
        self._share_second_line()

    def text(self) -> str:
        """Return everything the caption says, uncut (what its tooltips show)."""
        parts = [self.name.text() + self.details.text(), self.warning.text().strip()]
        if self.badge.isVisibleTo(self) or self.badge_status is not None:
            parts.append(self.badge.text())
        return "   ".join(p for p in parts if p)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(0, super().sizeHint().height())


def missing_map_warning(title: str, method: str, layer: str, warnings: list[str]) -> str:
    """Why the view shows no map: ``method`` (called ``title``) made none for ``layer``.

    The reason is the method's own line among the result's ``warnings`` (``"cam: ..."``), if it
    gave one beyond listing the layers it skipped.
    """
    reasons = [w.removeprefix(f"{method}: ").removeprefix(f"{title}: ") for w in warnings
               if w.startswith(f"{method}: ") and not w.startswith(f"{method}: no map for ")]
    why = "; ".join(reasons) or f"{title} does not apply to this layer"
    return f"{title} made no map for {layer}, so nothing is drawn: {why}"


def describe_view(window) -> tuple[str, list[str], str | None]:
    """The caption of what ``window`` shows: (file name, details, warning or None).

    Details: modality, frame, window, method and layer, explained class with its probability,
    model, ROI. The warning says when the evidence for the class is weak, when cine hides the
    map, or what is wrong with the map.
    """
    image = window.image
    if image is None:
        return "", [], None
    details = [image.modality]
    if image.n_frames > 1:
        details.append(f"frame {window.viewer.frame + 1}/{image.n_frames}")
    if window.viewer.window is not None:
        details.append(window_text(*window.viewer.window))
    warning = None
    if window.image_error is not None:
        details.append("cannot be displayed")
    result = window.current_result()
    if result is not None and window.model is not None:
        if window.compare_on:
            details.append(f"compare {len(window.explain.compare_methods)} methods × "
                           f"{len(window.explain.compare_layers)} layers")
        else:
            explainer = window.explainers.get(window.method)
            title = getattr(explainer, "title", window.method)
            details.append(f"{title} · {window.layer if is_layer_based(explainer) else 'input'}")
        score = result.scores[result.target]
        # A segmentation model's class scores are pixel shares: a small lesion has a small
        # share however sure the model is, so only an empty mask is worth a warning.
        segmentation = is_segmentation(window.model)
        share = " of the pixels" if segmentation else ""
        details.append(f"explaining {result.target_name} ({100 * score:.1f} %{share})"
                       + (f" rather than {result.versus}" if getattr(result, "versus", None)
                          else ""))
        details.append(f"model {window.model.name}")
        if segmentation and score == 0:
            warning = f"the model labels no pixel {result.target_name}"
        elif not segmentation and score < WEAK_EVIDENCE:
            warning = (f"the evidence for {result.target_name} is weak: the model gives it "
                       f"{100 * score:.1f} %")
        layer = window.layer_model
        if layer.heatmap is not None and layer.peak() < layer.threshold and not window.compare_on:
            warning = "; ".join(w for w in (warning, (
                f"its map peaks at {100 * layer.peak():.0f} % of the scale, under the "
                "threshold: nothing is drawn")) if w)
    if window.viewer.is_playing() and not window.compare_on and window.layer_model.heatmap is None:
        warning = "heatmap hidden while playing: this frame has no map yet (stop to explain)"
    if window.roi is not None:
        details.append(describe_roi((window.roi, window.roi_shape)))
    if window.map_warning:
        # Said of the map shown, or of the one the finished request could not make.
        warning = "; ".join(w for w in (warning, window.map_warning) if w)
    return image.path.name, details, warning
