"""A real Orthanc for the PACS tests: throwaway storage, its own ports, only on 127.0.0.1.

:class:`Orthanc` writes a JSON configuration into a temporary folder (storage and index there,
HTTP and DICOM ports picked free, the DICOMweb plugin loaded, Lucida's AE registered for C-FIND,
C-GET and C-STORE), starts the Debian package's ``Orthanc`` and stops it; :class:`DcmQrScp`
does the same for DCMTK's ``dcmqrscp``, a second Q/R SCP for C-MOVE. :class:`CuttingProxy`
forwards a local port to Orthanc and cuts every connection after a number of bytes, to test a
transfer that breaks in the middle, or holds the transfer there, to interrupt it while it runs.
"""

from __future__ import annotations

import copy
import json
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from engine.pacs.config import load_config
from engine.pacs.retrieve import retrieve

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
CT_SMALL = PYDICOM_FILES / "CT_small.dcm"
#: Lucida's AE title in the tests, and one Orthanc does not know.
LUCIDA_AE = "LUCIDA"
STRANGER_AE = "STRANGER"
_PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dciodvfy_errors(path) -> list[str]:
    """The lines dciodvfy (Debian ``dicom3tools``) reports as errors for one file."""
    binary = shutil.which("dciodvfy")
    assert binary, "dciodvfy is missing: run .ci/system-packages (apt-get install dicom3tools)"
    run = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines()
            if line.startswith("Error")]


def dicomweb_plugin() -> Path:
    """The Orthanc DICOMweb plugin of the Debian package ``orthanc-dicomweb``."""
    for folder in _PLUGIN_DIRS:
        for path in sorted(folder.glob("libOrthancDicomWeb.so*")):
            return path
    raise FileNotFoundError("the Orthanc DICOMweb plugin is missing: run .ci/system-packages "
                            "(apt-get install orthanc orthanc-dicomweb)")


class Orthanc:
    """One throwaway Orthanc server.

    Parameters
    ----------
    folder : Path
        Holds the configuration, the storage, the index and the log.
    move : bool
        Let Lucida's AE retrieve with C-MOVE, to ``127.0.0.1:move_port``, and let any AE query
        and ask for a C-MOVE (one Orthanc does not know then learns that its destination is
        unknown).
    """

    def __init__(self, folder: Path, move: bool = False) -> None:
        self.folder = Path(folder)
        self.http_port = free_port()
        self.dicom_port = free_port()
        #: Where Orthanc sends a C-MOVE for Lucida's AE: Lucida's Storage SCP listens there.
        self.move_port = free_port()
        self.move = move
        self.aet = "ORTHANC"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The REST API."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb root."""
        return f"{self.url}/dicom-web"

    def start(self) -> Orthanc:
        """Write the configuration, start Orthanc and wait until it answers."""
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        config = {
            "Name": "LucidaTest",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            # HTTP from this machine only; DIMSE from registered AEs on 127.0.0.1 only.
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckModalityHost": True,
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowStore": False,
            "DicomModalities": {
                "lucida": {"AET": LUCIDA_AE, "Host": "127.0.0.1", "Port": self.move_port,
                           "AllowEcho": True, "AllowFind": True, "AllowGet": True,
                           "AllowStore": True, "AllowMove": self.move},
            },
            "DicomAlwaysAllowFind": self.move,
            "DicomAlwaysAllowMove": self.move,
            "Plugins": [str(dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
            "StableAge": 1,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        log = (self.folder / "orthanc.log").open("wb")
        self.process = subprocess.Popen([binary, str(path)], stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: see {self.folder / 'orthanc.log'}")
            try:
                self.rest("/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("Orthanc did not start within 60 s")

    def stop(self) -> None:
        """Stop Orthanc (terminate, then kill) and wait for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Orthanc:
        """Start Orthanc for a ``with`` block."""
        return self.start()

    def __exit__(self, *exc) -> None:
        """Stop Orthanc when the ``with`` block ends, however it ends."""
        self.stop()

    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        """Call the REST API and return its JSON answer."""
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def upload(self, path: Path | str) -> bool:
        """Store one file through the REST API; False when Orthanc refuses it."""
        try:
            self.rest("/instances", Path(path).read_bytes(), method="POST")
        except urllib.error.HTTPError:
            return False
        return True

    def upload_pydicom_test_files(self) -> int:
        """Store every pydicom test file Orthanc accepts; return how many it took."""
        return sum(self.upload(p) for p in sorted(PYDICOM_FILES.glob("*.dcm")))

    def instances_of_series(self, study_uid: str, series_uid: str) -> list[dict]:
        """QIDO-RS: the instances of one series, as DICOM JSON."""
        url = f"{self.dicomweb}/studies/{study_uid}/series/{series_uid}/instances"
        with urllib.request.urlopen(url, timeout=30) as answer:
            return json.loads(answer.read() or b"[]")

    def node_file(self, folder: Path, extra: str = "") -> Path:
        """A node file naming this Orthanc as ``web`` (DICOMweb) and ``dimse`` (DIMSE C-GET).

        With ``move``, also as ``move`` (DIMSE C-MOVE to :attr:`move_port`).
        """
        path = Path(folder) / "pacs.toml"
        if self.move:
            extra = f"{self.dimse_node('move', retrieve='move')}\n{extra}"
        path.write_text(
            f'[nodes.web]\ndicomweb = "{self.dicomweb}"\ntimeout = 20\n\n'
            f'{self.dimse_node("dimse")}\n{extra}', encoding="utf-8")
        return path

    def dimse_node(self, name: str, calling_ae: str = LUCIDA_AE, retrieve: str = "get",
                   move_port: int | None = None) -> str:
        """One ``[nodes.NAME]`` table for this Orthanc over DIMSE (C-MOVE to move_port)."""
        table = (f'[nodes.{name}]\nae_title = "{self.aet}"\nhost = "127.0.0.1"\n'
                 f'port = {self.dicom_port}\ncalling_ae = "{calling_ae}"\ntimeout = 20\n')
        if retrieve == "move":
            table += f'retrieve = "move"\nmove_port = {move_port or self.move_port}\n'
        return table


class DcmQrScp:
    """DCMTK's reference Q/R SCP (``dcmqrscp``, Debian ``dcmtk``) serving some files.

    It answers a C-MOVE to an AE title missing from its host table with 0xA801 (move
    destination unknown), as most PACS do; Orthanc answers 0xC000.

    Parameters
    ----------
    folder : Path
        Holds the configuration, the database and the log.
    files : list of Path
        The instances it serves.
    destinations : dict of str to int, optional
        AE title -> port on 127.0.0.1 of each move destination it knows.
    """

    def __init__(self, folder: Path, files, destinations: dict[str, int] | None = None) -> None:
        self.folder = Path(folder)
        self.files = [Path(f) for f in files]
        self.destinations = dict(destinations or {})
        self.port = free_port()
        self.aet = "DCMQR"
        self.process: subprocess.Popen | None = None

    def start(self) -> DcmQrScp:
        """Index the files, write the configuration, start dcmqrscp and wait for its port."""
        binary = shutil.which("dcmqrscp")
        assert binary, "dcmqrscp is missing: run .ci/system-packages (apt-get install dcmtk)"
        database = self.folder / "db"
        database.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dcmqridx", str(database), *map(str, self.files)], check=True,
                       capture_output=True, timeout=60)
        hosts = "".join(f"dest{i} = ({aet}, 127.0.0.1, {port})\n"
                        for i, (aet, port) in enumerate(self.destinations.items()))
        config = self.folder / "dcmqrscp.cfg"
        config.write_text(
            f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
            f"HostTable BEGIN\n{hosts}HostTable END\nVendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\n{self.aet} {database} RW (200, 1024mb) ANY\nAETable END\n",
            encoding="utf-8")
        log = (self.folder / "dcmqrscp.log").open("wb")
        self.process = subprocess.Popen([binary, "-c", str(config)], stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dcmqrscp exited: see {self.folder / 'dcmqrscp.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("dcmqrscp did not start within 30 s")

    def stop(self) -> None:
        """Stop dcmqrscp and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None

    def __enter__(self) -> DcmQrScp:
        """Start dcmqrscp for a ``with`` block."""
        return self.start()

    def __exit__(self, *exc) -> None:
        """Stop dcmqrscp when the ``with`` block ends."""
        self.stop()

    def move_node(self, name: str, move_port: int) -> str:
        """A ``[nodes.NAME]`` table retrieving from it with C-MOVE to Lucida's AE."""
        return (f'[nodes.{name}]\nae_title = "{self.aet}"\nhost = "127.0.0.1"\n'
                f'port = {self.port}\ncalling_ae = "{LUCIDA_AE}"\ntimeout = 20\n'
                f'retrieve = "move"\nmove_port = {move_port}\n')


def retrieve_ct_slice(config_path: Path, folder: Path) -> Path:
    """Retrieve pydicom's CT slice from the ``web`` node of ``config_path``; return its file."""
    study_uid = pydicom.dcmread(CT_SMALL, stop_before_pixels=True).StudyInstanceUID
    retrieve(load_config(config_path).node("web"), study_uid, folder)
    (path,) = Path(folder).rglob("*.dcm")
    return path


def self_signed_tls(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway certificate for 127.0.0.1 (made with openssl) and a server context for it.

    Returns
    -------
    cert : Path
        The certificate (PEM), the CA bundle a client must trust.
    context : ssl.SSLContext
        A server context holding the certificate and its key.
    """
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def synthetic_study(folder: Path, count: int, *, patient_id: str = "LUCIDA-BIG",
                    patient_name: str = "Many^Slices") -> tuple[str, list[Path]]:
    """Write ``count`` CT instances of one new study (copies of pydicom's CT slice).

    Returns
    -------
    study_uid : str
    paths : list of Path
    """
    source = pydicom.dcmread(CT_SMALL)
    study_uid, series_uid = generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(1, count + 1):
        ds = copy.deepcopy(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID, ds.PatientName = patient_id, patient_name
        ds.InstanceNumber = number
        path = folder / f"{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return study_uid, paths


class CuttingProxy:
    """Forward ``127.0.0.1:port`` to a local target, cutting each connection after some bytes.

    Parameters
    ----------
    target_port : int
        The local port to forward to.
    cut_after : int
        Bytes from the target to the client after which both sides are reset.
    tls : ssl.SSLContext, optional
        Serve TLS to the client with this server context (the target stays plain): a TLS
        front for Orthanc, whose own HTTPS the Debian build does not serve reliably.
    hold_after : int, optional
        Bytes forwarded, both ways and all connections together, after which nothing more is
        forwarded until :meth:`release`: a transfer held in the middle, however fast or busy
        the machine, so that a test interrupts it while it runs. :attr:`holding` is set then.
    listen_port : int
        The port to listen on; by default a free one.
    """

    def __init__(self, target_port: int, cut_after: int = 1 << 62,
                 tls: ssl.SSLContext | None = None, hold_after: int | None = None,
                 listen_port: int = 0) -> None:
        self.target_port = target_port
        self.tls = tls
        self.cut_after = cut_after
        self.cuts = 0
        self.hold_after = hold_after
        #: Set once the proxy holds the transfer (see ``hold_after``).
        self.holding = threading.Event()
        self._released = threading.Event()
        self._forwarded = 0
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", listen_port))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sent = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    client = self.tls.wrap_socket(client, server_side=True)
                except (OSError, ssl.SSLError):
                    client.close()  # the client refused the certificate
                    continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._hold(len(data))
                if counted:
                    with self._lock:
                        room = self.cut_after - self._sent
                        self._sent += len(data)
                    if room <= len(data):
                        dst.sendall(data[:max(room, 0)])
                        self._reset(src, dst)
                        return
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _hold(self, size: int) -> None:
        """Count ``size`` bytes about to be forwarded; past ``hold_after``, wait for release."""
        if self.hold_after is None:
            return
        with self._lock:
            self._forwarded += size
            held = self._forwarded > self.hold_after
        if held:
            self.holding.set()
            self._released.wait()

    def _reset(self, *socks: socket.socket) -> None:
        self.cuts += 1
        for sock in socks:
            try:
                # Linger 0: close with a reset, as a dropped network link looks to the peer.
                # The shutdown wakes the other direction's thread, blocked in recv on the
                # same socket; without it the close would wait for that thread.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def release(self) -> None:
        """Forward again, and from now on, what ``hold_after`` held."""
        self._released.set()

    def close(self) -> None:
        """Stop accepting and close every forwarded connection (a held one too)."""
        self._closed = True
        self.release()
        try:
            # Wakes the accept thread: until it returns, a bare close leaves the port listening.
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass


def _default_ctrl_c() -> None:
    """In the child before it starts: Ctrl-C unblocked and at its default, as in a terminal.

    Python installs its KeyboardInterrupt handler only when SIGINT is not ignored at start-up,
    and a child inherits the test process's ignored signals and signal mask, which libraries
    loaded by earlier tests may have changed.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: Keyword arguments for a ``subprocess.Popen`` that :func:`interrupt_after_progress` will stop.
INTERRUPTIBLE = {"preexec_fn": _default_ctrl_c}


def interrupt_after_progress(process: subprocess.Popen,
                             proxy: CuttingProxy) -> tuple[int, str, str]:
    """Ctrl-C a ``pacs get`` process in the middle of its transfer, which ``proxy`` holds.

    Waits until a tenth of its progress has arrived on stderr and ``proxy`` holds the transfer
    (made with ``hold_after``), sends SIGINT, and only then lets the proxy forward the rest:
    however fast or busy the machine, the transfer cannot end before the interrupt. (Once sent,
    the signal is handled before any thread of the process runs on, so the rest arrives too
    late to be kept.)

    Returns
    -------
    code : int
        The exit code.
    stdout : str
        All it printed on stdout.
    rest : str
        What it wrote to stderr after the interrupt.
    """
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.lstrip().startswith(("10.0%", "20.0%")):
            break
    else:
        raise AssertionError(f"pacs get ended before any progress: {''.join(seen)}")
    assert proxy.holding.wait(60), f"the proxy never held the transfer: {''.join(seen)}"
    process.send_signal(signal.SIGINT)
    # Released, not left held: a DIMSE abort waits for a PDU cut off in the middle to arrive.
    proxy.release()
    stdout, rest = process.communicate(timeout=60)
    return process.returncode, stdout, rest
