"""Every keyboard and mouse shortcut of the review window, in one table.

The main window binds its actions from this table and Help lists it, so the two cannot drift.
"""

from __future__ import annotations

#: action id -> (key sequence, description). Keys are bound by ``QtMainWindow``.
KEYS: dict[str, tuple[str, str]] = {
    "open": ("Ctrl+O", "Open files or a folder"),
    "open_model": ("Ctrl+Shift+M", "Open a model: a card, file, folder or timm:NAME@FILE"),
    "overlay": ("O", "Show / hide the heatmap"),
    "fit": ("F", "Fit the image to the view"),
    "actual": ("Z", "Actual size (1 image pixel = 1 screen pixel)"),
    "preset1": ("1", "CT window: soft tissue (40 / 400 HU)"),
    "preset2": ("2", "CT window: lung (−600 / 1500 HU)"),
    "preset3": ("3", "CT window: bone (400 / 1800 HU)"),
    "preset4": ("4", "CT window: brain (40 / 80 HU)"),
    "preset5": ("5", "CT window: abdomen (60 / 400 HU)"),
    "reset": ("R", "Reset window / level, zoom and inversion"),
    "invert": ("I", "Invert grey scale"),
    "prev": ("PgUp", "Previous frame / slice"),
    "next": ("PgDown", "Next frame / slice"),
    "cine": ("Space", "Play / stop cine"),
    "compare": ("M", "Compare mode (methods × layers)"),
    "opacity_down": ("[", "Heatmap opacity −10 %"),
    "opacity_up": ("]", "Heatmap opacity +10 %"),
    "roi_box": ("B", "Draw a box ROI (drag on the image)"),
    "roi_ellipse": ("E", "Draw an ellipse ROI (drag on the image)"),
    "roi_clear": ("Shift+Backspace", "Clear the ROI"),
    "measure": ("D", "Measure a distance (drag on the image; Esc stops)"),
    "cancel": ("Esc", "Leave the ROI tool, else cancel the running explanation"),
    "export": ("Ctrl+E", "Export a report"),
    "save_review": ("Ctrl+S", "Save the review (files, model, view) to a .lucida file"),
    "open_review": ("Ctrl+Shift+O", "Open a saved review"),
    "help": ("F1", "This list of shortcuts"),
    "quit": ("Ctrl+Q", "Quit"),
}

#: Mouse gestures in the viewer (not bindable actions, listed in Help all the same).
MOUSE: tuple[tuple[str, str], ...] = (
    ("Wheel", "Zoom around the cursor"),
    ("Left drag", "Pan"),
    ("Left drag (ROI tool on)", "Draw the region of interest"),
    ("Right drag", "Window (left / right) and level (up / down) in modality units"),
    ("Shift + wheel", "Previous / next frame"),
    ("Click a class", "Explain that class"),
    ("Click a layer", "Show that layer's map (from the cache when computed)"),
)


def help_html() -> str:
    """Return the shortcuts as an HTML table for the Help dialog."""
    rows = [(key, text) for key, text in KEYS.values()] + list(MOUSE)
    body = "".join(
        f"<tr><td style='padding:2px 14px 2px 0'><b>{key}</b></td><td>{text}</td></tr>"
        for key, text in rows
    )
    return f"<table>{body}</table>"
