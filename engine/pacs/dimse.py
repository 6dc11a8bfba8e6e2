"""DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) through pynetdicom.

C-GET brings instances back on the same association, so Lucida needs no listening port and works
behind a firewall; the PACS must know Lucida's AE title. A node with ``retrieve = "move"`` uses
C-MOVE instead, for PACS that offer only that: the PACS stores the instances to Lucida's AE title
on ``move_port`` (:mod:`engine.pacs.move`). Either way each instance arrives complete in a
C-STORE and is handed over whole, so nothing half-received reaches the disk.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from engine.core.cancel import Cancelled, CancelToken
from engine.pacs.config import Node
from engine.pacs.errors import PacsError, PacsUnreachable, StoreRejected
from engine.pacs.move import MoveDestination
from engine.pacs.query import (
    INSTANCE_FIELDS,
    SERIES_FIELDS,
    STUDY_FIELDS,
    InstanceRef,
    SeriesMatch,
    StudyMatch,
    StudyQuery,
)

# pynetdicom logs every PDU at INFO; Lucida reports in its own words.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

#: Transfer syntaxes offered for received instances: the PACS may then send them as stored.
RECEIVE_SYNTAXES = (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1,
    JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless,
)
_SUCCESS = 0x0000
_PENDING = (0xFF00, 0xFF01)
_WARNING = 0xB000
_MOVE_DESTINATION_UNKNOWN = 0xA801
# C-STORE warnings: the instance is stored (coerced, elements discarded, not fully checked).
_STORE_WARNINGS = (0x0001, 0xB000, 0xB006, 0xB007)


def _status(code: int) -> str:
    return f"0x{code:04X}"


class DimseConnection:
    """A DIMSE node, opened with :func:`engine.pacs.connect`; one association per operation.

    Parameters
    ----------
    node : Node
        A node with ``ae_title``, ``host`` and ``port``.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    def close(self) -> None:
        """Nothing stays open between operations."""

    def _tls(self) -> tuple[ssl.SSLContext, str] | None:
        if not self.node.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.node.ca_bundle or None)
            if self.node.tls_cert:
                context.load_cert_chain(self.node.tls_cert, self.node.tls_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise PacsError(f"cannot load the TLS files ({exc})", path=self.node.label,
                            fix="check ca_bundle, tls_cert and tls_key in the node file") from exc
        if not self.node.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context, self.node.host

    def _associate(self, contexts, what: str, roles=None, handlers=None):
        ae = AE(ae_title=self.node.calling_ae)
        for attr in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
            setattr(ae, attr, self.node.timeout)
        ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
        # A PACS that rejects an association may reset the connection right after its
        # A-ASSOCIATE-RJ, and under load the reset can arrive first and discard the rejection
        # (seen with Orthanc: about 1 in 100 under load). One more try then reads the reason.
        for _ in range(2):
            try:
                assoc = ae.associate(self.node.host, self.node.port, contexts=contexts,
                                     ae_title=self.node.ae_title, ext_neg=roles or None,
                                     evt_handlers=handlers or None, tls_args=self._tls())
            except (OSError, ssl.SSLError) as exc:
                raise PacsUnreachable(
                    f"cannot connect to {self.node.address} for {what} ({exc})",
                    path=self.node.label,
                    fix="check the host, port and that the PACS is running") from exc
            if not assoc.is_aborted:
                break
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise PacsError(
                f"{self.node.address} rejected the association for {what}",
                path=self.node.label,
                fix=f"register AE title {self.node.calling_ae} in the PACS (its DICOM "
                f"modalities), and check that {self.node.ae_title} is its AE title")
        fix = (f"check the host, port, TLS setting, that the PACS is running, and that it "
               f"knows AE title {self.node.calling_ae}")
        if self.node.tls:
            fix = ("check the host and port, and that ca_bundle holds the CA that signed the "
                   "PACS's TLS certificate")
        raise PacsUnreachable(
            f"cannot connect to {self.node.address} for {what} (no association: refused, "
            "timed out, TLS failed, or aborted)",
            path=self.node.label, fix=fix)

    def _dropped(self, what: str) -> PacsUnreachable:
        return PacsUnreachable(
            f"{self.node.address} dropped the association during {what}",
            path=self.node.label, fix="check the PACS and the network, then run it again")

    # -- query -------------------------------------------------------------------------------

    def echo(self) -> None:
        """C-ECHO.

        Raises
        ------
        PacsError
            If the node cannot be reached, refuses, or answers with a failure.
        """
        assoc = self._associate([build_context(Verification)], "C-ECHO")
        try:
            status = assoc.send_c_echo()
        finally:
            assoc.release()
        if not status:
            raise self._dropped("C-ECHO")
        if status.Status != _SUCCESS:
            raise PacsError(f"{self.node.address} answered C-ECHO with {_status(status.Status)}",
                            path=self.node.label, fix="check the PACS's log")

    def _find(self, level: str, keys: dict[str, str], fields: tuple[str, ...]) -> list[Dataset]:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword in fields:
            setattr(identifier, keyword, "")
        for keyword, value in keys.items():
            setattr(identifier, keyword, value)
        assoc = self._associate([build_context(StudyRootQueryRetrieveInformationModelFind)],
                                "C-FIND")
        found: list[Dataset] = []
        try:
            for status, answer in assoc.send_c_find(identifier,
                                                    StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    raise self._dropped("C-FIND")
                if status.Status in _PENDING:
                    if answer is not None:
                        found.append(answer)
                elif status.Status != _SUCCESS:
                    raise PacsError(
                        f"{self.node.address} answered C-FIND with {_status(status.Status)}",
                        path=self.node.label,
                        fix=f"check that {self.node.calling_ae} may query (C-FIND) this PACS")
        finally:
            if assoc.is_established:
                assoc.release()
        return found

    def find_studies(self, query: StudyQuery, limit: int | None = None) -> list[StudyMatch]:
        """C-FIND at STUDY level."""
        found = [StudyMatch.from_dataset(ds)
                 for ds in self._find("STUDY", query.keys(), STUDY_FIELDS)]
        return found[:limit] if limit else found

    def find_series(self, study_uid: str) -> list[SeriesMatch]:
        """C-FIND at SERIES level in one study."""
        found = self._find("SERIES", {"StudyInstanceUID": study_uid}, SERIES_FIELDS)
        return [SeriesMatch.from_dataset(ds) for ds in found]

    def find_instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRef]:
        """C-FIND at IMAGE level, in one series or in every series of a study."""
        series = [series_uid] if series_uid else [s.series_uid
                                                  for s in self.find_series(study_uid)]
        out: list[InstanceRef] = []
        for uid in series:
            keys = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": uid}
            out += [InstanceRef.from_dataset(ds, study_uid)
                    for ds in self._find("IMAGE", keys, INSTANCE_FIELDS)]
        return out

    # -- retrieve ----------------------------------------------------------------------------

    def fetch(self, refs: list[InstanceRef], deliver: Callable[[InstanceRef, bytes], None],
              cancel: CancelToken | None = None, whole_series: frozenset[str] = frozenset()
              ) -> None:
        """Retrieve instances with C-GET, or C-MOVE for a ``retrieve = "move"`` node.

        Parameters
        ----------
        refs : list of InstanceRef
            What to retrieve.
        deliver : callable
            ``deliver(ref, part10_bytes)``, called once per instance as it arrives.
        cancel : CancelToken, optional
            Checked after every instance; cancelling aborts the association.
        whole_series : frozenset of str
            Series of which every instance is wanted: asked for with one SERIES-level request
            each; the others are asked for instance by instance (a resumed retrieve).

        Raises
        ------
        PacsError
            If the node cannot be reached, refuses, or drops the association; for C-MOVE also
            if ``move_port`` is in use or the PACS does not know the move destination.
        Cancelled
            If cancelled; instances delivered so far stay delivered.
        """
        if not refs:
            return
        if self.node.retrieve == "move":
            self._move(refs, deliver, cancel, whole_series)
        else:
            self._get(refs, deliver, cancel, whole_series)

    def _get(self, refs, deliver, cancel, whole_series) -> None:
        # C-GET brings instances back as C-STORE sub-operations on this same association.
        by_uid = {ref.sop_uid: ref for ref in refs}
        classes = sorted({ref.sop_class for ref in refs if ref.sop_class})
        contexts = [build_context(StudyRootQueryRetrieveInformationModelGet)]
        contexts += [build_context(sop, list(RECEIVE_SYNTAXES)) for sop in classes[:127]]
        roles = [build_role(sop, scp_role=True) for sop in classes[:127]]
        failures: list[str] = []

        def on_store(event) -> int:
            uid = str(event.request.AffectedSOPInstanceUID)
            ref = by_uid.get(uid)
            if ref is None:
                ds = event.dataset
                ref = InstanceRef(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), uid,
                                  str(ds.SOPClassUID))
            try:
                deliver(ref, event.encoded_dataset(include_meta=True))
            except Exception as exc:  # noqa: BLE001 - the PACS is told, the caller re-raises
                failures.append(str(exc))
                return 0xA700
            return _SUCCESS

        assoc = self._associate(contexts, "C-GET", roles=roles,
                                handlers=[(evt.EVT_C_STORE, on_store)])
        self._follow(assoc, "C-GET", refs, whole_series, cancel, failures,
                     lambda identifier: assoc.send_c_get(
                         identifier, StudyRootQueryRetrieveInformationModelGet))

    def _move(self, refs, deliver, cancel, whole_series) -> None:
        # C-MOVE: the PACS stores the instances to calling_ae, which listens on move_port
        # only while this runs, and takes only what this retrieve asked for.
        by_uid = {ref.sop_uid: ref for ref in refs}
        study_uids = {ref.study_uid for ref in refs}

        def wanted(ds: Dataset) -> InstanceRef | None:
            uid = str(ds.get("SOPInstanceUID", ""))
            if uid in by_uid:
                return by_uid[uid]
            study = str(ds.get("StudyInstanceUID", ""))
            series = str(ds.get("SeriesInstanceUID", ""))
            if series in whole_series and study in study_uids:
                return InstanceRef(study, series, uid, str(ds.get("SOPClassUID", "")))
            return None

        destination = MoveDestination(self.node, wanted, deliver,
                                      {ref.sop_class for ref in refs}, RECEIVE_SYNTAXES, cancel)
        with destination:
            assoc = self._associate([build_context(StudyRootQueryRetrieveInformationModelMove)],
                                    "C-MOVE")
            self._follow(assoc, "C-MOVE", refs, whole_series, cancel, destination.failures,
                         lambda identifier: assoc.send_c_move(
                             identifier, self.node.calling_ae,
                             StudyRootQueryRetrieveInformationModelMove),
                         refused=lambda: destination.refused)

    def _follow(self, assoc, what: str, refs, whole_series, cancel, failures: list[str],
                send, refused: Callable[[], int] = lambda: 0) -> None:
        """Send each retrieve request and follow its responses to the end, or abort."""
        try:
            for identifier in self._get_identifiers(refs, whole_series):
                for status, _answer in send(identifier):
                    if cancel is not None and cancel.cancelled:
                        assoc.abort()
                        raise Cancelled()
                    if failures:
                        raise PacsError(f"cannot keep a received instance ({failures[0]})",
                                        path=self.node.label, fix="check the output folder")
                    if not status:
                        raise self._dropped(what)
                    code = status.Status
                    failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
                    # A warning for instances refused as not asked for (new since the query).
                    if code in _PENDING or code == _SUCCESS or (
                            code == _WARNING and failed <= refused()):
                        continue
                    raise self._retrieve_failed(what, code, failed)
        except BaseException:
            # A release would wait for the rest of the retrieve; an abort stops it now.
            if assoc.is_established:
                assoc.abort()
            raise
        if assoc.is_established:
            assoc.release()

    def _retrieve_failed(self, what: str, code: int, failed: int) -> PacsError:
        node = self.node
        if what == "C-GET":
            return PacsError(
                f"{node.address} answered C-GET with {_status(code)} ({failed} failed)",
                path=node.label,
                fix=f"check that {node.calling_ae} may retrieve (C-GET) from this PACS, and its "
                "log")
        host = node.move_bind if node.move_bind != "0.0.0.0" else "this machine's address"
        register = (f"register AE title {node.calling_ae} with host {host} and port "
                    f"{node.move_port} in the PACS (its DICOM modalities)")
        if code == _MOVE_DESTINATION_UNKNOWN:
            return PacsError(
                f"{node.address} does not know the move destination {node.calling_ae} "
                f"({_status(code)})", path=node.label, fix=register)
        # Some PACS (Orthanc among them) answer an unknown destination with a generic failure.
        return PacsError(
            f"{node.address} answered C-MOVE with {_status(code)} ({failed} failed)",
            path=node.label,
            fix=f"{register}, and let it retrieve (C-MOVE); the PACS's log says which is missing")

    @staticmethod
    def _get_identifiers(refs: list[InstanceRef], whole_series: frozenset[str]):
        done: set[str] = set()
        for ref in refs:
            identifier = Dataset()
            identifier.StudyInstanceUID = ref.study_uid
            identifier.SeriesInstanceUID = ref.series_uid
            if ref.series_uid in whole_series:
                if ref.series_uid in done:
                    continue
                done.add(ref.series_uid)
                identifier.QueryRetrieveLevel = "SERIES"
            else:
                identifier.QueryRetrieveLevel = "IMAGE"
                identifier.SOPInstanceUID = ref.sop_uid
            yield identifier

    # -- store -------------------------------------------------------------------------------

    def store(self, datasets: list[Dataset]) -> list[str]:
        """C-STORE instances on one association.

        Returns
        -------
        list of str
            The SOP Instance UIDs the PACS confirmed (success or warning status).

        Raises
        ------
        StoreRejected
            If the PACS answered a failure status for some; the codes are those statuses.
        PacsUnreachable
            On a connection fault; ``stored`` on the error lists what was confirmed before.
        """
        pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                        for ds in datasets})
        contexts = [build_context(sop, syntax) for sop, syntax in pairs]
        assoc = self._associate(contexts, "C-STORE")
        stored: list[str] = []
        failed: dict[str, str] = {}
        try:
            for ds in datasets:
                uid = str(ds.SOPInstanceUID)
                status = assoc.send_c_store(ds)
                if not status:
                    error = self._dropped("C-STORE")
                    error.stored = list(stored)  # type: ignore[attr-defined]
                    raise error
                if status.Status == _SUCCESS or status.Status in _STORE_WARNINGS:
                    stored.append(uid)
                else:
                    failed[uid] = _status(status.Status)
        finally:
            if assoc.is_established:
                assoc.release()
        if failed:
            raise StoreRejected.some_of(
                self.node.address, failed, stored, len(datasets), path=self.node.label,
                fix="see the PACS's log; the codes are DIMSE C-STORE statuses")
        return stored
