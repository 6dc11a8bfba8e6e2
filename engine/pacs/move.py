"""The Storage SCP a C-MOVE sends its instances to, open for one retrieve only.

C-MOVE asks the PACS to open its own association to a *move destination* (an AE title the PACS
knows with a host and port) and C-STORE the instances there. :class:`MoveDestination` is that
destination: a pynetdicom Storage SCP on the node's ``move_port``, started right before the
C-MOVE and stopped right after it, whatever happens. It takes only the instances it is asked for
and hands each over complete, so nothing half-received reaches the disk.
"""

from __future__ import annotations

import errno
import ssl
import threading
from collections.abc import Callable, Iterable

from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from engine.core.cancel import CancelToken
from engine.pacs.config import Node
from engine.pacs.errors import PacsError

_SUCCESS = 0x0000
#: C-STORE "Refused: Not Authorized" (PS3.7 C.5): an instance this retrieve did not ask for.
NOT_ASKED = 0x0124
#: C-STORE "Refused: Out of Resources": the instance could not be kept (disk, cancel).
NOT_KEPT = 0xA700
#: Seconds to wait for a store under way when the destination closes.
_JOIN = 5.0
# One destination per port in this process: a retrieve started right after cancelling another
# (the PACS dock does that) waits for the cancelled one to let go of the port.
_PORTS: dict[int, threading.Lock] = {}
_PORTS_LOCK = threading.Lock()


def _port_lock(port: int) -> threading.Lock:
    with _PORTS_LOCK:
        return _PORTS.setdefault(port, threading.Lock())


class MoveDestination:
    """A Storage SCP on ``node.move_port`` for the length of one C-MOVE (a ``with`` block).

    Parameters
    ----------
    node : Node
        A DIMSE node with ``retrieve = "move"``; the SCP answers as ``calling_ae``, over TLS
        with ``tls_cert`` and ``tls_key`` when the node has ``tls = true``.
    wanted : callable
        ``wanted(dataset) -> key or None``: what to deliver the instance as, or None to refuse
        it (not of the requested study or series).
    deliver : callable
        ``deliver(key, part10_bytes)``, called once per accepted instance as it arrives, on
        the SCP's thread.
    sop_classes : iterable of str
        SOP classes to accept besides every standard storage class.
    syntaxes : sequence of str
        Transfer syntaxes to accept.
    cancel : CancelToken, optional
        Once cancelled, instances are refused and not delivered.

    Attributes
    ----------
    failures : list of str
        Why accepted instances could not be kept (``deliver`` raised).
    refused : int
        Instances refused because the retrieve did not ask for them.
    """

    def __init__(self, node: Node, wanted: Callable, deliver: Callable,
                 sop_classes: Iterable[str], syntaxes, cancel: CancelToken | None = None
                 ) -> None:
        self.node = node
        self._wanted = wanted
        self._deliver = deliver
        self._cancel = cancel
        self.failures: list[str] = []
        self.refused = 0
        self._open = threading.Event()
        self._ae = AE(ae_title=node.calling_ae)
        for attr in ("acse_timeout", "dimse_timeout", "network_timeout"):
            setattr(self._ae, attr, node.timeout)
        self._ae.maximum_pdu_size = 0
        classes = {cx.abstract_syntax for cx in AllStoragePresentationContexts}
        for sop in sorted(classes | {c for c in sop_classes if c}):
            self._ae.add_supported_context(sop, list(syntaxes))
        self._server = None
        self._port = _port_lock(node.move_port)

    def _tls(self) -> ssl.SSLContext | None:
        # A TLS node's PACS stores over TLS too: the SCP shows Lucida's own certificate.
        if not self.node.tls:
            return None
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.node.tls_cert, self.node.tls_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise PacsError(f"cannot load the TLS files for the C-MOVE ({exc})",
                            path=self.node.label,
                            fix="check tls_cert and tls_key in the node file") from exc
        return context

    def _on_store(self, event) -> int:
        if not self._open.is_set() or (self._cancel is not None and self._cancel.cancelled):
            return NOT_KEPT
        key = self._wanted(event.dataset)
        if key is None:
            self.refused += 1
            return NOT_ASKED
        try:
            self._deliver(key, event.encoded_dataset(include_meta=True))
        except Exception as exc:  # noqa: BLE001 - the PACS is told, the caller re-raises
            self.failures.append(str(exc))
            return NOT_KEPT
        return _SUCCESS

    def __enter__(self) -> MoveDestination:
        """Listen on ``move_bind:move_port``.

        Raises
        ------
        PacsError
            If the port is in use or cannot be bound, or the TLS files cannot be loaded.
        """
        where = f"{self.node.move_bind}:{self.node.move_port}"
        context = self._tls()
        if not self._port.acquire(timeout=self.node.timeout):
            raise PacsError(
                f"cannot receive the C-MOVE: another retrieve still listens on port "
                f"{self.node.move_port}", path=self.node.label,
                fix="wait for it to finish or cancel it, then retrieve again")
        try:
            self._listen(where, context)
        except BaseException:
            self._port.release()
            raise
        self._open.set()
        return self

    def _listen(self, where: str, context: ssl.SSLContext | None) -> None:
        try:
            self._server = self._ae.start_server(
                (self.node.move_bind, self.node.move_port), block=False, ssl_context=context,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PacsError(
                    f"cannot receive the C-MOVE: port {self.node.move_port} is in use "
                    f"({where})", path=self.node.label,
                    fix="stop what listens there, or set move_port to a free port in the node "
                    f"file and register {self.node.calling_ae} with that port in the PACS"
                ) from exc
            raise PacsError(f"cannot listen on {where} for the C-MOVE ({exc})",
                            path=self.node.label,
                            fix="check move_host and move_port in the node file") from exc

    def __exit__(self, *exc) -> None:
        """Stop listening, end any store association still open, and wait for it."""
        self._open.clear()
        server, self._server = self._server, None
        if server is None:
            return
        try:
            associations = list(server.active_associations)
            server.shutdown()
            for assoc in associations:
                assoc.abort()
            for assoc in associations:
                assoc.join(_JOIN)
        finally:
            self._port.release()
