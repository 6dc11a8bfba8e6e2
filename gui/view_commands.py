"""View commands of the review window: window presets, invert, zoom, overlay, frames, ROI.

A mixin of :class:`gui.main_window.QtMainWindow`: it uses the window's ``viewer``, ``compare``,
``layer_model``, ``preset_combo``, ``frame_label`` and ``actions_by_id``.
"""

from __future__ import annotations

from gui.roi_item import describe_roi
from gui.viewer import CT_PRESETS

#: What the window list shows once a drag or a key sets a window no preset matches.
CUSTOM_WINDOW = "Custom (right drag)"


class ViewCommands:
    """What the View menu, the toolbar and the view keys do."""

    _picking_preset = False

    def set_window(self, center: float, width: float) -> None:
        """Apply a window to the viewer (and every compare cell)."""
        self.viewer.set_window(center, width)

    def ct_preset(self, number: int) -> None:
        """Apply CT preset ``number`` (1-5), selecting it in the preset list if listed."""
        _name, center, width = CT_PRESETS[number - 1]
        wanted = (center, width)
        for index in range(self.preset_combo.count()):
            if self.preset_combo.itemData(index) in (wanted, list(wanted)):
                self.preset_picked(index)
                return
        self.set_window(center, width)

    def window_changed(self, center: float, width: float) -> None:
        """The viewer's window changed: follow it in the grid, the list and the caption."""
        self.compare.set_window(center, width)
        if not self._picking_preset:
            # Keys, drags and resets no longer match a listed preset: show "Custom".
            self.preset_combo.setCurrentIndex(-1)
        self.update_caption()

    def preset_picked(self, index: int) -> None:
        """Apply the preset at ``index`` of the preset list."""
        preset = self.preset_combo.itemData(index)
        self._picking_preset = True
        try:
            if preset is None:
                self.viewer.reset_window()
            elif isinstance(preset, (tuple, list)):
                self.set_window(*preset)
            else:
                self.viewer.apply_preset(preset)
        finally:
            self._picking_preset = False
        self.preset_combo.setCurrentIndex(index)

    def fill_presets(self) -> None:
        """List the file's window presets and the CT ones."""
        self.preset_combo.clear()
        image = self.image
        if image is None or image.is_color or self.viewer.rendered_image().isNull():
            # An empty list shows its placeholder: say why there is no window, never "Custom".
            colour = image is not None and image.is_color
            self.preset_combo.setPlaceholderText("None (colour image)" if colour else "")
            self.preset_combo.setEnabled(False)
            return
        self.preset_combo.setPlaceholderText(CUSTOM_WINDOW)
        self.preset_combo.setEnabled(True)
        self.preset_combo.addItem("File default", None)
        for label, preset in self.viewer.presets():
            self.preset_combo.addItem(label, preset)
        self.preset_combo.setCurrentIndex(0)

    def reset_view(self) -> None:
        """Reset window, inversion and zoom."""
        self.preset_picked(0)
        self.actions_by_id["invert"].setChecked(False)
        self.compare.set_invert(False)
        self.fit()

    def fit(self) -> None:
        """Fit the image (and every compare cell) to its view."""
        self.viewer.fit()
        for cell in self.compare.cells.values():
            cell.viewer.fit()

    def actual_size(self) -> None:
        """One image pixel per screen pixel, everywhere."""
        self.viewer.one_to_one()
        for cell in self.compare.cells.values():
            cell.viewer.one_to_one()

    def set_invert(self, on: bool) -> None:
        """Invert the grey scale of the viewer and every compare cell."""
        self.viewer.set_invert(on)
        self.compare.set_invert(on)

    def toggle_overlay(self, on: bool) -> None:
        """Show or hide the heatmap."""
        self.layer_model.visible = on

    def _layer_model_changed(self, name: str) -> None:
        if name == "visible":
            self.actions_by_id["overlay"].setChecked(self.layer_model.visible)
        elif name in ("threshold", "scale"):
            self.update_caption()  # it says when the scale leaves a map under the threshold

    def nudge_opacity(self, delta: float) -> None:
        """Change the heatmap's opacity by ``delta``, within [0, 1]."""
        self.layer_model.opacity = min(1.0, max(0.0, round(self.layer_model.opacity + delta, 2)))

    def update_frame_label(self) -> None:
        """Show "Frame k / n" in the toolbar for multi-frame images."""
        n = self.image.n_frames if self.image is not None else 1
        self.frame_label.setText(f"   Frame {self.viewer.frame + 1} / {n}" if n > 1 else "")

    def view_state(self) -> dict:
        """Return the display state an export reproduces."""
        return {"window": self.viewer.window, "invert": self.viewer.invert,
                "opacity": self.layer_model.opacity, "colormap": self.layer_model.colormap,
                "threshold": self.layer_model.threshold, "method": self.method,
                "layer": self.layer,
                # Exports burn in the corners shown (de-identified unless identifiers are kept).
                "corners": self.actions_by_id["annotations"].isChecked()}

    # -- region of interest -----------------------------------------------------------------
    def set_roi(self, roi: tuple[int, int, int, int] | None, shape: str = "box") -> None:
        """Draw ``roi`` (x0, y0, x1, y1; image pixels, end-exclusive) on the viewer."""
        self.viewer.set_roi(roi, shape)

    def clear_roi(self) -> None:
        """Remove the ROI; the trust panel drops its ROI metrics."""
        self.viewer.clear_roi()

    def roi_tool_toggled(self, shape: str, on: bool) -> None:
        """A Draw-ROI action was toggled."""
        if on:
            self.viewer.set_roi_tool(shape)
        elif self.viewer.roi_tool == shape:
            self.viewer.set_roi_tool(None)

    def escape(self) -> None:
        """Esc: first leave the ROI tool (the gesture the user is in), then cancel work."""
        if self.viewer.roi_tool is not None:
            self.viewer.set_roi_tool(None)
        else:
            self.cancel_work()

    def _roi_tool_changed(self, shape: str) -> None:
        for name in ("box", "ellipse"):
            self.actions_by_id[f"roi_{name}"].setChecked(name == shape)
        if shape:
            self.message.setText(f"Drag on the image to draw a {shape} ROI; Esc to stop drawing")

    def _roi_changed(self, value) -> None:
        self.roi, self.roi_shape = (None, self.roi_shape) if value is None else value
        text = describe_roi(value)
        self.message.setText(text[:1].upper() + text[1:])
        self.update_caption()
        self.metrics.schedule()
