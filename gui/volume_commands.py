"""View commands of a window that shows volumes too: three planes sharing one window.

A mixin of :class:`gui.main_window.QtMainWindow`, in place of :class:`gui.view_commands.
ViewCommands`: a volume is shown in axial, coronal and sagittal planes once the worker resampled
it, its window presets are its own then the CT ones, and a window applies to all three planes.
It uses the window's ``volumes``, ``volume_view``, ``viewer``, ``frames``, ``browser``, ``tags``,
``panel`` and ``preset_combo``.
"""

from __future__ import annotations

from engine.studies.volume import is_volume
from gui.view_commands import CUSTOM_WINDOW, ViewCommands
from gui.viewer import CT_PRESETS


class VolumeViewCommands(ViewCommands):
    """What the view commands do when a volume is shown, and how a volume comes on screen."""

    def _show_volume(self, volume) -> None:
        """Show a volume in axial, coronal and sagittal planes once the worker resampled it."""
        if self.compare_on:
            self.set_compare(False)
        self._allow_compare(False)
        self.frames.forget()
        self.viewer.clear()
        self.viewer.frame = 0  # a volume is one "frame": jobs for it are tagged with frame 0
        self.stack.setCurrentWidget(self.volume_view)
        self.volumes.show(volume)
        self.browser.select_image(volume)
        self.tags.set_dataset(volume.images[0].dataset if volume.images else None)
        self.fill_presets()
        self.update_frame_label()
        self.update_caption()
        self.message.setText(f"Resampling {volume.name} in patient space…")

    def _volume_ready(self) -> None:
        volume = self.volumes.volume
        self.frames.show_decoded(volume)
        self.fill_presets()
        self.update_caption()
        s, r, c = volume.shape
        self.message.setText(f"{volume.name}: {s} × {r} × {c} voxels in three planes")
        self.check_use()
        self.request_explain()

    def volume_shown(self) -> bool:
        """Whether a volume is shown (in three planes) rather than a 2-D image."""
        return is_volume(self.image)

    def _allow_compare(self, on: bool) -> None:
        # The methods × layers grid lays out 2-D images; a volume has three planes instead.
        self.panel.compare_box.setEnabled(on)
        self.actions_by_id["compare"].setEnabled(on)

    def set_window(self, center: float, width: float) -> None:
        """Apply a window to what is shown: the viewer, or all three planes of a volume."""
        if self.volume_shown():
            self.volumes.set_window(center, width)
        else:
            super().set_window(center, width)

    def preset_picked(self, index: int) -> None:
        """Apply the preset at ``index`` of the preset list (a volume's own window for 0)."""
        if self.volume_shown() and self.preset_combo.itemData(index) is None:
            self._picking_preset = True
            try:
                self.volumes.reset_window()
            finally:
                self._picking_preset = False
            self.preset_combo.setCurrentIndex(index)
            return
        super().preset_picked(index)

    def fill_presets(self) -> None:
        """List the window presets: the file's and the CT ones (a volume's own, then CT)."""
        if not self.volume_shown():
            super().fill_presets()
            return
        self.preset_combo.clear()
        self.preset_combo.setPlaceholderText(CUSTOM_WINDOW)
        self.preset_combo.setEnabled(self.volumes.is_ready())
        self.preset_combo.addItem("File default", None)
        for name, center, width in CT_PRESETS:
            self.preset_combo.addItem(f"{name}  ({center:g} / {width:g})", (center, width))
        self.preset_combo.setCurrentIndex(0)

    def set_mip(self, on: bool) -> None:
        """Show a volume's map as its maximum-intensity projection in each plane."""
        self.volumes.set_mip(on)
        self.update_caption()
