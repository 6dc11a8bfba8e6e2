"""File ▸ Save review / Open review: the window's view to and from a ``.lucida`` file.

Saving reads the window's state into an :class:`engine.review.Review`. Opening loads the model
through the ordinary path (a model that can run code is asked about again, never trusted
because a file says so), opens the files, and once the reviewed image is on screen puts back
its frame, target and contrasted class, layer, window, zoom, ROI, distance measured,
annotations and heatmap settings, and the reviewer's verdict (``window.verdict``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF
from PySide6.QtGui import QTransform
from PySide6.QtWidgets import QFileDialog

from engine.core.errors import LucidaError
from engine.review import (
    REVIEW_SUFFIX,
    Review,
    check_review,
    file_entry,
    load_review,
    save_review,
)

DIALOG_FILTER = f"Lucida reviews (*{REVIEW_SUFFIX});;All files (*)"


#: Model kinds that run code when loaded: a review records them so that reopening asks again.
CODE_KINDS = ("pickle", "torchscript", "export")


def view_fields(window) -> dict:
    """The window's view, as a review stores it."""
    viewer, layer, tools = window.viewer, window.layer_model, window.measure_tools
    transform, center, fitted = viewer.view_state()
    line = tools.distance.ruler.line
    classes = list(getattr(window.model, "classes", []) or [])
    target, versus = window.target, window.versus
    return {
        "method": window.method, "layer": window.layer,
        "target": None if target is None or target >= len(classes) else classes[target],
        "versus": None if versus is None or versus >= len(classes) else classes[versus],
        "params": dict(window.params_for(window.method)) if window.method else {},
        "frame": int(viewer.frame),
        "window": None if viewer.window is None else [float(v) for v in viewer.window],
        "invert": bool(viewer.invert), "zoom": float(transform.m11()),
        "center": [float(center.x()), float(center.y())], "fitted": bool(fitted),
        "rois": [] if window.roi is None else [{"box": [int(v) for v in window.roi],
                                                "shape": window.roi_shape}],
        "opacity": float(layer.opacity), "colormap": layer.colormap,
        "threshold": float(layer.threshold), "scale": layer.scale,
        "overlay": bool(layer.visible),
        "annotations": not tools.annotations.isHidden(),
        "ruler": None if tools.distance.value is None else
        [float(line.x1()), float(line.y1()), float(line.x2()), float(line.y2())],
    }


def capture_review(window) -> Review:
    """Read the window's open files, model and view into a :class:`Review`.

    Raises
    ------
    LucidaError
        Nothing is open, or no model is loaded.
    """
    tree = window.files.tree
    if window.image is None or tree is None or window.model is None:
        raise LucidaError("nothing to save", fix="open an image and a model first")
    # The files and folders the study was opened from, unhashed: reopening reads them as the
    # first opening did (a folder of thousands of files stays one entry, its series and
    # volumes included), and hashing them all would stall the save.
    opened = [file_entry(path, hash_file=False) for path in window.files.paths]
    shown = file_entry(window.image.path, window.image.dataset)
    metrics = None
    panel = window.trust_panel
    if panel is not None and getattr(panel, "metrics", None):
        metrics = dict(panel.metrics)
    model = {"spec": window.model_spec, "sha256": window.model.sha256,
             "needs_trust": window.model.kind in CODE_KINDS}
    # The window's verdict control sets ``verdict``; a window without one saves none.
    return Review(opened, shown, model, view_fields(window), metrics,
                  getattr(window, "verdict", None))


def save_dialog(window) -> Path | None:
    """File ▸ Save review: ask where, write the file, say so (or why not)."""
    name, _ = QFileDialog.getSaveFileName(window, "Save review", "", DIALOG_FILTER)
    return save_to(window, name) if name else None


def save_to(window, path: str | Path) -> Path | None:
    """Save the window's review to ``path``; errors go to the window's banner."""
    try:
        written = save_review(path, capture_review(window))
    except LucidaError as exc:
        window.show_error(exc.one_line())
        return None
    window.message.setText(f"Review saved to {written}")
    return written


def open_dialog(window) -> None:
    """File ▸ Open review: ask for a ``.lucida`` file and restore it."""
    name, _ = QFileDialog.getOpenFileName(window, "Open review", "", DIALOG_FILTER)
    if name:
        open_review(window, name)


class _Restore:
    """Puts a review's view back once its image is on screen and its model loaded."""

    def __init__(self, window, review: Review) -> None:
        self.window, self.review = window, review
        self.shown = None if review.shown is None else str(Path(review.shown.path).absolute())
        window.viewer.sig_frame_shown.connect(self._frame_shown)

    def _frame_shown(self, _frame: int) -> None:
        window = self.window
        if window.image is None:
            return
        if self.shown is not None and str(Path(window.image.path).absolute()) != self.shown:
            image = next((i for i in window.files.tree.all_images()
                          if str(Path(i.path).absolute()) == self.shown), None)
            if image is not None:
                window.show_image(image)
                return
        window.viewer.sig_frame_shown.disconnect(self._frame_shown)
        self.apply()

    def apply(self) -> None:
        window, view = self.window, self.review.view
        viewer, layer = window.viewer, window.layer_model
        if window.model is not None and window.model.sha256:
            for line in check_review(self.review, window.model.sha256):
                if "model" in line:
                    window.show_error(line)
        classes = list(getattr(window.model, "classes", []) or [])
        if view.get("method") in window.explainers:
            window.method = view["method"]
            window.explain.param_values[window.method] = dict(view.get("params") or {})
            window.panel.select_method(window.method)
        if view.get("layer"):
            window.layer = view["layer"]
            window.panel.select_layer(window.layer)
        target, versus = view.get("target"), view.get("versus")
        window.target = classes.index(target) if target in classes else None
        window.versus = classes.index(versus) if versus in classes else None
        window.panel.select_versus(window.versus)
        if view.get("frame"):
            viewer.set_frame(int(view["frame"]))
        for name in ("opacity", "colormap", "threshold", "scale"):
            if name in view:
                setattr(layer, name, view[name])
        layer.visible = bool(view.get("overlay", True))
        viewer.set_invert(bool(view.get("invert", False)))
        if view.get("window"):
            window.set_window(*view["window"])
        rois = view.get("rois") or []
        if rois:
            window.set_roi(tuple(rois[0]["box"]), rois[0].get("shape", "box"))
        if not view.get("fitted", True) and view.get("center"):
            zoom = float(view.get("zoom", 1.0))
            viewer.apply_view_state(QTransform.fromScale(zoom, zoom),
                                    QPointF(*view["center"]), False)
        shown = bool(view.get("annotations", True))
        window.actions_by_id["annotations"].setChecked(shown)  # setChecked does not trigger
        window.measure_tools.annotations.set_enabled(shown)
        self._ruler(view.get("ruler"), int(view.get("frame") or 0))
        window.verdict = self.review.verdict
        window.request_explain()
        if self.review.metrics:
            window.open_trust_panel()
        window.review_restored = self.review


    def _ruler(self, ends, frame: int) -> None:
        # A measurement belongs to its frame (showing another one clears it), so it is drawn
        # once the saved frame is on screen; frames may be decoded elsewhere, later.
        if not ends or len(ends) != 4:
            return
        viewer, distance = self.window.viewer, self.window.measure_tools.distance

        def draw(_frame=None) -> None:
            if viewer.frame != frame:
                return
            if _frame is not None:
                viewer.sig_frame_shown.disconnect(draw)
            distance.measure(QPointF(*ends[:2]), QPointF(*ends[2:]))

        if viewer.frame == frame:
            draw()
        else:
            viewer.sig_frame_shown.connect(draw)


def open_review(window, path: str | Path) -> Review | None:
    """Read the review in ``path`` and :func:`restore` it.

    Returns
    -------
    Review or None
        The review being restored, or None when the file could not be read (the banner says
        why).
    """
    try:
        review = load_review(path)
    except LucidaError as exc:
        window.show_error(exc.one_line())
        return None
    return review if restore(window, review) else None


def restore(window, review: Review) -> bool:
    """Put ``review`` back: its model, its files, then (once the image is shown) its view.

    Returns
    -------
    bool
        False when none of the review's files exists any more (the banner says which).
    """
    problems = check_review(review)
    if problems:
        window.show_error(problems[0] + (f" (and {len(problems) - 1} more)"
                                         if len(problems) > 1 else ""))
    paths = [entry.path for entry in review.opened if Path(entry.path).exists()]
    if not paths:
        return False
    window.review_restore = _Restore(window, review)
    spec = review.model["spec"]
    if spec != window.model_spec:
        window._layer_after_load = review.view.get("layer") or None
        window.load_model(spec)  # asks before running a pickle's code, as any load does
    window.open_paths(paths)
    return True
