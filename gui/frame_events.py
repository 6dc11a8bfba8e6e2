"""What the review window does as frames arrive, fail, change and play.

A mixin of :class:`gui.main_window.QtMainWindow`: the first frame shown asks for its map; a
frame that cannot be shown says why in its place; a new frame shows its cached map at once and
asks for one once scrolling settles; cine shows cached maps only.
"""

from __future__ import annotations


class FrameEvents:
    """The window's answers to the viewer's frame signals."""

    def _first_frame_shown(self, _frame: int) -> None:
        self.fill_presets()
        self.update_caption()
        self.check_use()
        self.request_explain()

    def _frame_failed(self, text: str) -> None:
        if self.viewer.rendered_image().isNull():
            # The image itself cannot be shown: say so in its place, and show nothing else.
            self.image_error = text
            self.viewer.show_message(_problem_text(text, self.image.path))
            self.layer_model.heatmap = None
            self.result = None
            self.panel.clear_prediction()
            self.set_use(None)
            self.update_caption()
            self.message.setText(f"{self.image.path.name} cannot be displayed")
            self.sig_error.emit(text)
        else:
            self.show_error(text)  # one frame of a shown image: keep showing the frame there is

    def _frame_changed(self, _frame: int) -> None:
        self.update_frame_label()
        self.layer_model.heatmap = None
        self.metrics.clear()
        # The frame's own map from the cache at once; else one is asked for once scrolling
        # settles (not while cine plays: maps are made per frame).
        self.explain.request(submit=False)
        if self.layer_model.heatmap is None and not self.viewer.is_playing():
            self.debounce.start()
        self.update_caption()

    def _cine_changed(self, playing: bool) -> None:
        if not playing:
            self.request_explain()
        self.update_caption()


def _problem_text(one_line: str, path) -> str:
    """Lay out an engine one-liner for the viewer: the file, what happened, then the fix."""
    what, _, fix = one_line.partition(". Fix: ")
    what = what.removeprefix(f"{path}: ")
    return f"Cannot display {path.name}\n\n{what}" + (f"\n\nFix: {fix}" if fix else "")
