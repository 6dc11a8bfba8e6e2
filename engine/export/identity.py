"""What outputs call the case and the model: a pseudonym and a digest, a name and hashes.

A de-identified output (the default) names the explained image by a per-export pseudonym
(``case-001``, from :class:`engine.core.pseudonym.Pseudonyms`) and its content digest, never by
its file name or folder: files are often named for the patient. It names the model by its name
and the SHA-256 of each file it loaded, never by where those files lie on this machine. Every
writer in :mod:`engine.export` goes through these helpers, so the choice is made once.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.case import content_of
from engine.core.pseudonym import Pseudonyms
from engine.export.deid import Scrubber

__all__ = ["case_name", "case_scrubber", "image_entry", "model_identity", "path_stem"]

#: Suffixes that belong to a file's type, not its name.
_DOUBLE_SUFFIXES = (".nii.gz",)


def path_stem(path: str | Path) -> str:
    """A file's name without its type (``scan.nii.gz`` -> ``scan``); a folder's name as is."""
    path = Path(str(path))
    name = path.name
    for suffix in _DOUBLE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.suffix and not path.is_dir() else name


def case_name(image, pseudonyms: Pseudonyms | None, keep_identifiers: bool) -> str:
    """What one export calls ``image``: its file stem when identifiers are kept, else a pseudonym.

    Parameters
    ----------
    image : Image or Volume or SliceView
        The explained image; the pseudonym is keyed by its content (``image.content_id()``),
        so one export gives every frame and output of an image the same name.
    pseudonyms : Pseudonyms or None
        The export's pseudonyms; None for an export of one case (it is ``case-001``).
    keep_identifiers : bool
        Name the case by its file, on purpose.

    Returns
    -------
    str
        ``case-001``, or the stem of the image's file or folder.
    """
    if keep_identifiers:
        return path_stem(getattr(image, "path", "") or "") or "image"
    # An empty Pseudonyms is falsy (it has a length): test for None.
    names = Pseudonyms() if pseudonyms is None else pseudonyms
    return names.name(content_of(image))


def image_entry(image, frame: int, name: str) -> dict:
    """The image as outputs record it: its name for this export and its content digest.

    A digest names content, not a person: it links an output to the file it came from for
    whoever holds the file, and to no one else.
    """
    content = content_of(image, frame)
    return {"case": name, "digest": content.digest, "kind": content.kind, "frame": int(frame)}


def model_identity(model: dict | None, keep_identifiers: bool) -> dict:
    """A model's description (``LoadedModel.describe()``) without the paths it was loaded from.

    Parameters
    ----------
    model : dict or None
        ``name``, ``sha256``, ``files`` (path -> SHA-256), ``card`` (a path), ``classes``...
    keep_identifiers : bool
        Key the files by their file name (``card.toml``); otherwise by their role (``card``,
        ``weights``, ``weights-2``...), since even a file name can name a patient or a site.

    Returns
    -------
    dict
        The same keys, with ``files`` re-keyed and ``card`` reduced to the card's file name
        (None when de-identified): no folder of this machine is left.
    """
    model = dict(model or {})
    card = str(model.get("card") or "")
    files: dict[str, str] = {}
    for path, digest in dict(model.get("files") or {}).items():
        if keep_identifiers:
            key = Path(str(path)).name
        else:
            is_card = card and (str(path) == card or Path(str(path)).name == Path(card).name)
            key = "card" if is_card else "weights"
        base, n = key, 1
        while key in files:  # two files of one name (or role) keep both hashes
            n += 1
            key = f"{base}-{n}"
        files[key] = str(digest)
    model["files"] = files
    model["card"] = Path(card).name if card and keep_identifiers else None
    return model


def case_scrubber(image, keep_identifiers: bool) -> Scrubber:
    """The scrubber of one case: its patient identifiers and where it was read from."""
    return Scrubber(image.identifiers(), active=not keep_identifiers,
                    paths=[getattr(image, "path", "") or ""])
