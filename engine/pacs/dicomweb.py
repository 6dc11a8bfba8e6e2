"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) through dicomweb-client.

The bearer token, when a node has one, goes into the session's headers only; no message of this
module includes headers. Retrieval runs a few requests in parallel, each on its own session, and
hands every instance over complete, so nothing half-received ever reaches the disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from engine.core.cancel import Cancelled, CancelToken
from engine.pacs.config import Node
from engine.pacs.errors import PacsError, PacsUnreachable, StoreRejected
from engine.pacs.integrity import is_whole
from engine.pacs.query import (
    INSTANCE_FIELDS,
    SERIES_FIELDS,
    STUDY_FIELDS,
    InstanceRef,
    SeriesMatch,
    StudyMatch,
    StudyQuery,
)

#: Results asked for per QIDO-RS request.
PAGE = 500
#: Requests in flight at once while retrieving.
PARALLEL = 4
# Ask for the stored transfer syntax: re-encoding on the server costs time and may lose data.
_AS_STORED = (("application/dicom", "*"),)


def _fix_for_status(node: Node, status: int) -> str:
    if status in (401, 403):
        return (f"check the token in ${node.token_env}" if node.token_env
                else "the server needs credentials: set token_env for this node")
    if status == 404:
        return "check the dicomweb URL (it should end at the DICOMweb root, e.g. /dicom-web)"
    return "check the server's log"


@contextlib.contextmanager
def web_errors(node: Node, action: str) -> Iterator[None]:
    """Turn requests' errors into one line naming the node and the fix.

    Parameters
    ----------
    node : Node
        The node talked to.
    action : str
        What was being done (``"search"``, ``"retrieve"``, ``"store"``).
    """
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise PacsError(
            f"TLS with {node.dicomweb} failed during {action} ({_reason(exc)})",
            path=node.label,
            fix="set ca_bundle to the CA that signed the server's certificate",
        ) from exc
    except requests.exceptions.Timeout as exc:
        raise PacsUnreachable(
            f"{node.dicomweb} did not answer within {node.timeout:g} s during {action}",
            path=node.label, fix="check the server is up, or raise timeout for this node",
        ) from exc
    except (requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as exc:
        raise PacsUnreachable(
            f"{node.dicomweb} dropped the connection during {action}",
            path=node.label, fix="check the server and the network, then run it again",
        ) from exc
    except requests.exceptions.ConnectionError as exc:
        if _reason(exc) in _DROPPED:
            raise PacsUnreachable(
                f"{node.dicomweb} dropped the connection during {action}",
                path=node.label, fix="check the server and the network, then run it again",
            ) from exc
        raise PacsUnreachable(
            f"cannot reach {node.dicomweb} during {action} ({_reason(exc)})",
            path=node.label, fix="check the server is running and the URL in the node file",
        ) from exc
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        raise PacsError(
            f"{node.dicomweb} refused the {action} (HTTP {status})",
            path=node.label, fix=_fix_for_status(node, status),
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise PacsUnreachable(f"{action} on {node.dicomweb} failed ({_reason(exc)})",
                              path=node.label, fix="check the server and the URL") from exc


_DROPPED = ("Connection reset", "Connection aborted", "Remote end closed")


def _reason(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    # urllib3 wraps the useful part ("Connection refused") deep inside its message.
    for marker in ("Connection refused", "timed out", "Name or service not known",
                   "CERTIFICATE_VERIFY_FAILED", *_DROPPED):
        if marker in text:
            return marker
    return type(exc).__name__


def _part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


class _QuerySession(requests.Session):
    """A session that sends ``*`` in query strings as it is, and verifies with its CA bundle.

    ``*`` is legal in a URL query (RFC 3986 sub-delims), and a server that does not decode
    query values (Orthanc 1.10) would otherwise never see a wildcard.
    """

    def send(self, request, **kwargs):
        if isinstance(self.verify, str):
            # requests lets $REQUESTS_CA_BUNDLE override a session's CA bundle; the node's
            # ca_bundle is the one asked for.
            kwargs["verify"] = self.verify
        if request.url and "?" in request.url:
            path, _, query = request.url.partition("?")
            request.url = f"{path}?{query.replace('%2A', '*')}"
        return super().send(request, **kwargs)


def name_matches(pattern: str, value: str) -> bool:
    """DICOM wildcard matching (``*`` any run, ``?`` one character), ignoring case."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def _dataset(item: dict) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Dataset.from_json(item)


def _paged(search, limit: int | None, *args, **kwargs) -> list[dict]:
    """Run a QIDO-RS search page by page, up to ``limit`` results (None: all).

    A server that ignores ``offset`` would send the first page forever, so paging stops at the
    first page that brings nothing new.
    """
    found: list[dict] = []
    seen: set[str] = set()
    while limit is None or len(found) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(found))
        page = search(*args, limit=size, offset=len(found), **kwargs)
        fresh = [item for item in page if json.dumps(item, sort_keys=True) not in seen]
        seen.update(json.dumps(item, sort_keys=True) for item in fresh)
        found += fresh
        if len(page) < size or not fresh:
            break
    return found


class WebConnection:
    """A DICOMweb node, opened with :func:`engine.pacs.connect`.

    Parameters
    ----------
    node : Node
        A node with a ``dicomweb`` URL.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._token = node.token()
        self._local = threading.local()

    def _client(self) -> DICOMwebClient:
        client = getattr(self._local, "client", None)
        if client is None:
            session = _QuerySession()
            session.verify = (self.node.ca_bundle or True) if self.node.verify_tls else False
            if self._token:
                session.headers["Authorization"] = f"Bearer {self._token}"
            client = DICOMwebClient(self.node.dicomweb, session=session,
                                    timeout=self.node.timeout)
            # Its own retries would wait minutes on a dead server, and retry rejections too;
            # Lucida retries sends itself (engine.pacs.send) and reports reads at once.
            client.set_http_retry_params(retry=False)
            self._local.client = client
        return client

    def close(self) -> None:
        """Close this thread's session (worker sessions close with their threads)."""
        client = getattr(self._local, "client", None)
        if client is not None:
            client._session.close()
            self._local.client = None

    # -- query -------------------------------------------------------------------------------

    def echo(self) -> None:
        """Check the node answers a search.

        Raises
        ------
        PacsError
            If it cannot be reached or refuses.
        """
        with web_errors(self.node, "echo (a one-study search)"):
            self._client().search_for_studies(limit=1, fields=["StudyInstanceUID"])

    def find_studies(self, query: StudyQuery, limit: int | None = None) -> list[StudyMatch]:
        """Search studies (QIDO-RS)."""
        keys = query.keys()
        name = keys.get("PatientName", "")
        if "^" in name:
            # '^' must be percent-encoded in a URL, and some servers (Orthanc 1.10) do not
            # decode query values: ask for a superset and keep what matches as written.
            keys["PatientName"] = name.replace("^", "*")
        with web_errors(self.node, "search"):
            found = _paged(self._client().search_for_studies, limit,
                           search_filters=keys, fields=list(STUDY_FIELDS))
        studies = [StudyMatch.from_dataset(_dataset(item)) for item in found]
        if "^" in name:
            studies = [s for s in studies if name_matches(name, s.patient_name)]
        return studies

    def find_series(self, study_uid: str) -> list[SeriesMatch]:
        """Search the series of one study (QIDO-RS)."""
        with web_errors(self.node, "search"):
            found = _paged(self._client().search_for_series, None, study_uid,
                           fields=list(SERIES_FIELDS))
        out = [SeriesMatch.from_dataset(_dataset(item)) for item in found]
        return [s if s.study_uid else SeriesMatch(**{**s.as_dict(), "study_uid": study_uid})
                for s in out]

    def find_instances(self, study_uid: str, series_uid: str | None = None) -> list[InstanceRef]:
        """List the instances of a study, or of one of its series (QIDO-RS)."""
        with web_errors(self.node, "search"):
            found = _paged(self._client().search_for_instances, None, study_uid, series_uid,
                           fields=list(INSTANCE_FIELDS))
        return [InstanceRef.from_dataset(_dataset(item), study_uid) for item in found]

    # -- retrieve ----------------------------------------------------------------------------

    def fetch(self, refs: list[InstanceRef], deliver: Callable[[InstanceRef, bytes], None],
              cancel: CancelToken | None = None, whole_series: frozenset[str] = frozenset()
              ) -> None:
        """Retrieve instances (WADO-RS) and hand each over complete.

        Parameters
        ----------
        refs : list of InstanceRef
            What to retrieve.
        deliver : callable
            ``deliver(ref, part10_bytes)``, called in this thread, once per instance.
        cancel : CancelToken, optional
            Checked after every instance; requests in flight finish, queued ones are dropped.
        whole_series : frozenset of str
            Series of which every instance is wanted: each comes in one streamed request
            (a multipart answer read instance by instance); the other instances are asked for
            one by one, a few requests in flight (a resumed retrieve).

        Raises
        ------
        PacsError
            If the node cannot be reached, refuses, or drops the connection.
        Cancelled
            If cancelled; instances delivered so far stay delivered.
        """
        by_series: dict[str, list[InstanceRef]] = {}
        for ref in refs:
            by_series.setdefault(ref.series_uid, []).append(ref)
        for series_uid, members in by_series.items():
            if series_uid in whole_series:
                self._stream_series(members, deliver, cancel)
        rest = [ref for ref in refs if ref.series_uid not in whole_series]
        if rest:
            self._fetch_each(rest, deliver, cancel)

    def _stream_series(self, refs: list[InstanceRef], deliver, cancel) -> None:
        by_uid = {ref.sop_uid: ref for ref in refs}
        first = refs[0]
        with web_errors(self.node, "retrieve"), self._unreadable():
            stream = self._client().iter_series(first.study_uid, first.series_uid,
                                                media_types=_AS_STORED)
            arrived = 0
            try:
                for ds in stream:
                    self._check_whole(ds)
                    arrived += 1
                    uid = str(ds.SOPInstanceUID)
                    ref = by_uid.get(uid) or InstanceRef(first.study_uid, first.series_uid, uid,
                                                         str(ds.get("SOPClassUID", "")))
                    deliver(ref, _part10(ds))
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled()
            finally:
                stream.close()
        if arrived < len(refs):
            # A multipart answer cut short reads as a shorter answer, not as an error.
            raise PacsUnreachable(
                f"{self.node.dicomweb} dropped the connection during retrieve: the answer "
                f"ended after {arrived} of {len(refs)} instances of series {first.series_uid}",
                path=self.node.label, fix="check the server and the network, then run it again")

    def _fetch_one(self, ref: InstanceRef) -> bytes:
        with web_errors(self.node, "retrieve"), self._unreadable():
            ds = self._client().retrieve_instance(ref.study_uid, ref.series_uid, ref.sop_uid,
                                                  media_types=_AS_STORED)
        self._check_whole(ds)
        return _part10(ds)

    def _check_whole(self, ds: Dataset) -> None:
        if not is_whole(ds):
            raise PacsUnreachable(
                f"{self.node.dicomweb} dropped the connection during retrieve: an instance "
                "arrived cut short and was not kept",
                path=self.node.label, fix="check the server and the network, then run it again")

    @contextlib.contextmanager
    def _unreadable(self) -> Iterator[None]:
        # pydicom gives up on some cut-off parts inside dicomweb-client's parser.
        try:
            yield
        except (EOFError, struct.error, InvalidDicomError, ValueError, KeyError) as exc:
            raise PacsUnreachable(
                f"{self.node.dicomweb} sent an instance that cannot be read ({exc}); the "
                "connection was probably cut", path=self.node.label,
                fix="check the server and the network, then run it again") from exc

    def _fetch_each(self, refs: list[InstanceRef], deliver, cancel) -> None:
        pool = ThreadPoolExecutor(max_workers=min(PARALLEL, len(refs)),
                                  thread_name_prefix="lucida-wado")
        pending = set()
        queue = list(refs)
        try:
            while queue or pending:
                while queue and len(pending) < PARALLEL * 2:
                    ref = queue.pop(0)
                    future = pool.submit(self._fetch_one, ref)
                    future.ref = ref  # type: ignore[attr-defined]
                    pending.add(future)
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    deliver(future.ref, future.result())  # type: ignore[attr-defined]
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
        finally:
            # Requests still in flight may hang on a dead link until their timeout; they only
            # fetch (instances are handed over here, in this thread), so they are left to end.
            pool.shutdown(wait=False, cancel_futures=True)

    # -- store -------------------------------------------------------------------------------

    def store(self, datasets: list[Dataset]) -> list[str]:
        """Store instances in one STOW-RS request.

        Returns
        -------
        list of str
            The SOP Instance UIDs the server confirmed.

        Raises
        ------
        StoreRejected
            If the server refused some or all of them; the codes are its Failure Reasons
            (or the HTTP status when it refused the whole request).
        PacsUnreachable
            On a connection fault, with nothing confirmed.
        """
        uids = [str(ds.SOPInstanceUID) for ds in datasets]
        try:
            with web_errors(self.node, "store"):
                answer = self._client().store_instances(datasets)
        except PacsError as exc:
            cause = exc.__cause__
            if isinstance(cause, requests.exceptions.HTTPError) and cause.response is not None:
                status = cause.response.status_code
                raise StoreRejected(
                    f"{self.node.dicomweb} rejected the store (HTTP {status})",
                    codes={uid: f"HTTP {status}" for uid in uids}, stored=[],
                    path=self.node.label, fix=_fix_for_status(self.node, status)) from exc
            raise
        stored = [str(item.ReferencedSOPInstanceUID)
                  for item in (answer.get("ReferencedSOPSequence") or [])]
        failed = {str(item.ReferencedSOPInstanceUID): f"0x{int(item.get('FailureReason', 0)):04X}"
                  for item in (answer.get("FailedSOPSequence") or [])}
        if failed:
            raise StoreRejected.some_of(
                self.node.dicomweb, failed, stored, len(uids), path=self.node.label,
                fix="see the server's log for why; the codes are DICOM Failure Reasons")
        return stored
