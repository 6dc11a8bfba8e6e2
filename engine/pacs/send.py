"""Send DICOM objects to a PACS node: retry with back-off, idempotent, nothing half-reported.

A send is idempotent by SOP Instance UID: a retry sends the very same objects (same UIDs), and a
PACS keeps one copy of an instance it receives twice. Only connection faults are retried;
a rejection is definitive and is reported with the PACS's status code. What the PACS confirmed
is reported as stored, and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from engine.pacs import connect
from engine.pacs.config import Node
from engine.pacs.errors import PacsUnreachable, StoreRejected


@dataclass
class SendReport:
    """What a send achieved."""

    node: str
    protocol: str
    stored: list[str]
    attempts: int


def send_datasets(
    node: Node,
    datasets: list[Dataset],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> SendReport:
    """Store ``datasets`` on ``node`` (STOW-RS or C-STORE), retrying connection faults.

    Parameters
    ----------
    node : Node
        The PACS node; its ``retries`` and ``backoff`` set the retry policy.
    datasets : list of pydicom.Dataset
        Complete objects with file meta (SOP Instance UIDs fixed: a retry resends them as they
        are).
    sleep : callable
        ``sleep(seconds)`` between attempts.

    Returns
    -------
    SendReport
        Every SOP Instance UID the PACS confirmed.

    Raises
    ------
    StoreRejected
        If the PACS refused some instance; ``stored`` lists those it confirmed.
    PacsUnreachable
        If the node stayed unreachable after every retry; ``stored`` lists what was
        confirmed, and the message says how many were not.
    PacsError
        If the node refused the connection itself (not retried).
    """
    pending = list(datasets)
    stored: list[str] = []
    attempts = 0
    last: PacsUnreachable | None = None
    while pending and attempts <= node.retries:
        if attempts:
            sleep(node.backoff * 2 ** (attempts - 1))
        attempts += 1
        conn = connect(node)
        try:
            confirmed = conn.store(pending)
        except StoreRejected as exc:
            stored += [uid for uid in exc.stored if uid not in stored]
            exc.stored = list(stored)
            raise
        except PacsUnreachable as exc:
            confirmed = list(getattr(exc, "stored", []))
            last = exc
        else:
            last = None
        finally:
            conn.close()
        stored += [uid for uid in confirmed if uid not in stored]
        pending = [ds for ds in pending if str(ds.SOPInstanceUID) not in stored]
    if pending:
        assert last is not None
        error = PacsUnreachable(
            f"{last.message}; {len(stored)} of {len(datasets)} instances confirmed stored, "
            f"the other {len(pending)} not sent (after {attempts} attempts)",
            path=node.label, fix=last.fix)
        error.stored = list(stored)  # type: ignore[attr-defined]
        raise error from last
    return SendReport(node=node.name, protocol=node.protocol, stored=stored, attempts=attempts)
