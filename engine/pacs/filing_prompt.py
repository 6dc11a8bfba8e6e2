"""What a window offers and asks before filing into the patient's study.

The nodes it can file to (or why there are none), whether the image has a study to file into,
and the confirmation question, which names the patient, the study and the node.
"""

from __future__ import annotations

from engine.core.errors import LucidaError
from engine.pacs.config import load_config, no_node_hint

__all__ = ["filing_nodes", "filing_question", "filing_refusal"]


def filing_nodes(config_path=None) -> tuple[dict, str]:
    """The PACS nodes of the node file, and why there are none.

    Parameters
    ----------
    config_path : Path, optional
        The node file (default: :func:`engine.pacs.config.config_path`).

    Returns
    -------
    tuple of (dict, str)
        The nodes by name, and one line saying why there are none ("" when there are some).
    """
    try:
        config = load_config(config_path)
    except LucidaError as exc:
        return {}, exc.one_line()
    if not config.nodes:
        return {}, no_node_hint(config.path)
    return dict(config.nodes), ""


def filing_refusal(image) -> str:
    """Why ``image`` cannot be filed into a patient's study ("" when it can).

    Parameters
    ----------
    image : Image or None
        The image whose study the export would go into.

    Returns
    -------
    str
    """
    dataset = getattr(image, "dataset", None)
    if dataset is None or "StudyInstanceUID" not in dataset:
        return "Only a DICOM image has a patient's study to file into."
    return ""


def filing_question(image, node) -> str:
    """The confirmation text: which patient, which study, which node.

    Parameters
    ----------
    image : Image
        A DICOM image (its dataset holds the study).
    node : Node
        The node the objects go to.

    Returns
    -------
    str
    """
    ds = image.dataset
    patient = f"{ds.get('PatientName', '') or '(no name)'} (ID {ds.get('PatientID', '') or '-'})"
    study = ds.get("StudyDescription", "") or "(no description)"
    return (f"File this explanation into the patient's study?\n\n"
            f"Patient: {patient}\n"
            f"Study: {study}, {ds.get('StudyDate', '') or 'no date'}\n"
            f"StudyInstanceUID: {ds.StudyInstanceUID}\n"
            f"Node: {node.name} ({node.protocol}, {node.address})\n\n"
            "A Secondary Capture, the Parametric Map(s) and an SR, with the patient's "
            "identifiers, are sent as new series of this study.")
