"""Whether a loaded model reads what is shown: a volume or a 2-D image.

A 2-D model cannot explain a volume and a 3-D model cannot explain a 2-D image; the window says
why in one line, with the fix. In the demo the window follows what is shown with the demo
model that reads it.
"""

from __future__ import annotations

from engine.studies.volume import is_volume

__all__ = ["DEMO_2D_MODELS", "DEMO_3D_MODEL", "demo_model_for", "model_mismatch"]

#: Demo models that read 2-D images, and the one that reads volumes: the demo switches between
#: them as the user goes from a 2-D image to a volume and back.
DEMO_2D_MODELS = ("demo", "demo-biased", "demo-vit", "demo-vit-biased")
DEMO_3D_MODEL = "demo-3d"


def demo_model_for(image, spec: str | None) -> str | None:
    """The demo model that reads ``image`` when the demo model ``spec`` cannot, else None.

    Parameters
    ----------
    image : Image or Volume
        What is shown.
    spec : str or None
        The loaded model's spec.

    Returns
    -------
    str or None
        ``demo-3d`` for a volume shown with a 2-D demo model, ``demo`` for a 2-D image shown
        with the 3-D demo model, None otherwise.
    """
    volume = is_volume(image)
    if volume and spec in DEMO_2D_MODELS:
        return DEMO_3D_MODEL
    if not volume and spec == DEMO_3D_MODEL:
        return "demo"
    return None


def model_mismatch(model, image, not_a_volume: str = "") -> str | None:
    """Why ``model`` cannot read ``image`` (a volume, or a 2-D image), or None.

    Parameters
    ----------
    model : LoadedModel or None
    image : Image, Volume or None
    not_a_volume : str
        Why the 2-D image's series is not a volume (``"<why>. Fix: <fix>"``), or "".

    Returns
    -------
    str or None
        One line naming the model, what it reads and the fix.
    """
    if model is None or image is None:
        return None
    volume, reads_volumes = is_volume(image), bool(getattr(model, "is_volumetric", False))
    if volume and not reads_volumes:
        return (f"model {model.name} reads 2-D images, not volumes. Fix: pick a 3-D model "
                "(a card with [input] size = [D, H, W], such as the demo 3-D model), or "
                "open one of the series' slices")
    if reads_volumes and not volume:
        why, _, fix = not_a_volume.partition(". Fix: ")
        if why:  # say why there is no volume to explain, and how to get one
            return (f"model {model.name} reads volumes, not 2-D images, and {why}. "
                    f"Fix: {fix}, or pick a 2-D model")
        return (f"model {model.name} reads volumes, not 2-D images. Fix: select a "
                "series' row or a NIfTI file, or pick a 2-D model")
    return None
