"""PACS in and out: query and retrieve studies, and file results into the patient's study.

Nodes come from a TOML file (:mod:`engine.pacs.config`). A DICOMweb node goes through
dicomweb-client (:mod:`engine.pacs.dicomweb`), a DIMSE node through pynetdicom
(:mod:`engine.pacs.dimse`); both offer the same operations, so the rest of Lucida does not care
which protocol a node speaks. :mod:`engine.pacs.retrieve` brings studies in (progress, cancel,
resume, a cache with a size limit) and :mod:`engine.pacs.send` sends objects out (retry with
back-off, idempotent by SOP Instance UID).
"""

from __future__ import annotations

from engine.pacs.config import Node, PacsConfig, load_config
from engine.pacs.errors import PacsError, PacsUnreachable, StoreRejected

__all__ = ["Node", "PacsConfig", "PacsError", "PacsUnreachable", "StoreRejected", "connect",
           "load_config"]


def connect(node: Node):
    """Open a connection to a node, whatever protocol it speaks.

    Parameters
    ----------
    node : Node
        The node.

    Returns
    -------
    WebConnection or DimseConnection
        Both offer ``echo``, ``find_studies``, ``find_series``, ``find_instances``, ``fetch``,
        ``store`` and ``close``.

    Raises
    ------
    PacsError
        If the node's token variable is not set.
    """
    if node.protocol == "dicomweb":
        from engine.pacs.dicomweb import WebConnection

        return WebConnection(node)
    from engine.pacs.dimse import DimseConnection

    return DimseConnection(node)
