"""C-MOVE retrieval against a real Orthanc: the same files as C-GET, cancel, resume, faults."""

from __future__ import annotations

import copy
import os
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from engine.cli import main
from engine.core.cancel import Cancelled, CancelToken
from engine.pacs.config import load_config
from engine.pacs.errors import PacsError
from engine.pacs.move import NOT_ASKED, MoveDestination
from engine.pacs.retrieve import retrieve
from tests.pacs_fixtures import (
    CT_SMALL,
    INTERRUPTIBLE,
    STRANGER_AE,
    CuttingProxy,
    DcmQrScp,
    Orthanc,
    free_port,
    interrupt_after_progress,
    self_signed_tls,
    synthetic_study,
)

ROOT = Path(__file__).resolve().parents[1]
BIG = 24
OTHER = 6  # instances of a second series in the same study


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """An Orthanc that moves to Lucida's AE, holding a study of two series and CT_small."""
    folder = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(folder, move=True).start()
    try:
        study_uid, paths = synthetic_study(folder / "big", BIG)
        other_series = generate_uid()
        for number, path in enumerate(paths[:OTHER], start=1):
            ds = copy.deepcopy(pydicom.dcmread(path))
            ds.SeriesInstanceUID, ds.SeriesNumber = other_series, 2
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            out = folder / "big" / f"other{number}.dcm"
            ds.save_as(out, enforce_file_format=True)
            paths.append(out)
        assert all(server.upload(p) for p in paths) and server.upload(CT_SMALL)
        server.study = study_uid
        server.series = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)
        server.other_series = other_series
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def config_path(orthanc, tmp_path_factory):
    return orthanc.node_file(tmp_path_factory.mktemp("config"))


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _by_sop(folder):
    """SOP Instance UID -> (series UID, pixel bytes) of every file under ``folder``."""
    out = {}
    for path in _files(folder):
        assert not path.name.startswith(".")
        ds = pydicom.dcmread(path)
        assert len(ds.PixelData) == ds.Rows * ds.Columns * ds.BitsAllocated // 8
        out[str(ds.SOPInstanceUID)] = (str(ds.SeriesInstanceUID), ds.pixel_array.tobytes())
    return out


def _port_is_free(port):
    """Nothing listens on ``port`` (connections closed a moment ago may linger in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_move_brings_the_same_study_as_get(config_path, orthanc, tmp_path, capsys):
    args = ["pacs", "get", "move", orthanc.study, "--out", str(tmp_path / "move"),
            "--config", str(config_path)]
    assert main(args) == 0
    assert f"retrieved {BIG + OTHER} of {BIG + OTHER} instances from move" in \
        capsys.readouterr().out
    got = retrieve(load_config(config_path).node("dimse"), orthanc.study, tmp_path / "get")
    assert got.received == BIG + OTHER
    moved, fetched = _by_sop(tmp_path / "move"), _by_sop(tmp_path / "get")
    assert len(moved) == BIG + OTHER and moved == fetched
    assert _port_is_free(orthanc.move_port)


def test_move_one_series_takes_only_that_series(config_path, orthanc, tmp_path):
    node = load_config(config_path).node("move")
    report = retrieve(node, orthanc.study, tmp_path / "move", series_uid=orthanc.other_series)
    assert report.total == report.received == OTHER
    retrieve(load_config(config_path).node("dimse"), orthanc.study, tmp_path / "get",
             series_uid=orthanc.other_series)
    moved = _by_sop(tmp_path / "move")
    assert {series for series, _ in moved.values()} == {orthanc.other_series}
    assert moved == _by_sop(tmp_path / "get")


def test_a_store_the_move_did_not_ask_for_is_refused(config_path, orthanc, tmp_path):
    # While the move runs, Orthanc is told to push CT_small (another study) to Lucida's AE.
    ct = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)
    (found,) = orthanc.rest("/tools/lookup", str(ct.SOPInstanceUID).encode(), method="POST")
    pushed = []

    def progress(fraction, message=""):
        if fraction > 0 and not pushed:
            try:
                orthanc.rest("/modalities/lucida/store", found["ID"].encode(), method="POST")
                pushed.append("stored")
            except urllib.error.HTTPError as exc:
                pushed.append(exc.code)

    node = load_config(config_path).node("move")
    report = retrieve(node, orthanc.study, tmp_path, series_uid=orthanc.series,
                      progress=progress)
    assert report.received == BIG and pushed and pushed != ["stored"]
    moved = _by_sop(tmp_path)
    assert len(moved) == BIG and str(ct.SOPInstanceUID) not in moved


def test_cancel_keeps_complete_instances_and_a_rerun_resumes(config_path, orthanc, tmp_path):
    cancel = CancelToken()
    fractions = []

    def progress(fraction, message=""):
        fractions.append(fraction)
        if fraction >= 0.25:
            cancel.cancel()

    node = load_config(config_path).node("move")
    with pytest.raises(Cancelled):
        retrieve(node, orthanc.study, tmp_path, series_uid=orthanc.series, progress=progress,
                 cancel=cancel)
    assert _port_is_free(orthanc.move_port)  # the Storage SCP stopped with the retrieve
    kept = len(_by_sop(tmp_path))
    assert 0 < kept < BIG
    assert fractions == sorted(fractions)
    report = retrieve(node, orthanc.study, tmp_path, series_uid=orthanc.series)
    assert report.already == kept and report.received == BIG - kept
    assert len(_by_sop(tmp_path)) == BIG


def _error_line(err):
    """The one error line the CLI printed after its progress lines; no traceback."""
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert err.endswith(line + "\n") and "Fix:" in line
    return line


def test_ctrl_c_during_a_move_stops_cleanly_and_a_rerun_resumes(orthanc, tmp_path):
    # Orthanc stores through a proxy in front of Lucida's Storage SCP, which listens elsewhere;
    # the proxy holds the stores after about a quarter of the study, so the move is still under
    # way when SIGINT arrives.
    listen = free_port()
    config = tmp_path / "slow.toml"
    config.write_text(orthanc.dimse_node("slow", retrieve="move", move_port=listen),
                      encoding="utf-8")
    out = tmp_path / "out"
    proxy = CuttingProxy(listen, hold_after=(BIG + OTHER) * CT_SMALL.stat().st_size // 4,
                         listen_port=orthanc.move_port)
    try:
        env = dict(os.environ, LUCIDA_PACS_CONFIG=str(config), PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [sys.executable, "main.py", "pacs", "get", "slow", orthanc.study, "--out", str(out)],
            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            **INTERRUPTIBLE)
        code, stdout, rest = interrupt_after_progress(process, proxy)
    finally:
        proxy.close()
    assert code == 130, rest
    after = [line for line in rest.splitlines() if line.strip() and "%" not in line[:8]]
    assert len(after) == 1 and after[0].startswith("cancelled:"), rest
    assert "Traceback" not in rest and stdout == ""
    kept = len(_by_sop(out))
    assert 0 < kept < BIG + OTHER
    assert _port_is_free(listen)

    report = retrieve(load_config(orthanc.node_file(tmp_path)).node("move"), orthanc.study, out)
    assert report.already == kept and report.received == BIG + OTHER - kept
    assert len(_by_sop(out)) == BIG + OTHER


def test_unknown_move_destination_says_how_to_register_it(orthanc, tmp_path, capsys):
    # Orthanc answers a destination it does not know with 0xC000, not 0xA801.
    path = orthanc.node_file(tmp_path, orthanc.dimse_node("stranger", STRANGER_AE, "move"))
    args = ["pacs", "get", "stranger", orthanc.study, "--out", str(tmp_path / "o"),
            "--config", str(path)]
    assert main(args) == 2
    err = _error_line(capsys.readouterr().err)
    assert err.startswith("error: pacs node stranger:")
    assert "answered C-MOVE with 0xC000" in err
    assert (f"register AE title {STRANGER_AE} with host 127.0.0.1 and port "
            f"{orthanc.move_port}") in err
    assert not _files(tmp_path / "o")
    assert _port_is_free(orthanc.move_port)


def test_dcmtk_moves_to_a_known_destination_and_names_an_unknown_one(tmp_path, capsys):
    port = free_port()
    ct = pydicom.dcmread(CT_SMALL)
    with DcmQrScp(tmp_path / "qr", [CT_SMALL], {"LUCIDA": port}) as known, \
            DcmQrScp(tmp_path / "qr2", [CT_SMALL]) as unknown:
        path = tmp_path / "pacs.toml"
        path.write_text(known.move_node("known", port) + unknown.move_node("unknown", port),
                        encoding="utf-8")
        report = retrieve(load_config(path).node("known"), ct.StudyInstanceUID, tmp_path / "o")
        assert report.received == 1
        (got,) = _files(tmp_path / "o")
        assert pydicom.dcmread(got).pixel_array.tobytes() == ct.pixel_array.tobytes()
        assert main(["pacs", "get", "unknown", ct.StudyInstanceUID, "--out",
                     str(tmp_path / "u"), "--config", str(path)]) == 2
    err = _error_line(capsys.readouterr().err)
    assert err.startswith("error: pacs node unknown:")
    assert "does not know the move destination LUCIDA (0xA801)" in err
    assert f"Fix: register AE title LUCIDA with host 127.0.0.1 and port {port} in the PACS" in err
    assert not _files(tmp_path / "u")


def test_move_port_in_use_is_one_line_naming_it(config_path, orthanc, tmp_path, capsys):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past any TIME_WAIT
        sock.bind(("127.0.0.1", orthanc.move_port))
        sock.listen(1)
        args = ["pacs", "get", "move", orthanc.study, "--out", str(tmp_path / "o"),
                "--config", str(config_path)]
        assert main(args) == 2
    err = _error_line(capsys.readouterr().err)
    assert err.startswith("error: pacs node move:")
    assert f"port {orthanc.move_port} is in use" in err and "Fix:" in err
    assert "move_port" in err.split("Fix:")[1]
    assert not _files(tmp_path / "o")


def test_the_destination_takes_only_what_was_asked_and_only_while_open(config_path, tmp_path):
    node = load_config(config_path).node("move")
    ct = pydicom.dcmread(CT_SMALL)
    asked = copy.deepcopy(ct)
    asked.SOPInstanceUID = generate_uid()
    delivered = []
    destination = MoveDestination(
        node, lambda ds: "ok" if ds.SOPInstanceUID == asked.SOPInstanceUID else None,
        lambda key, data: delivered.append((key, pydicom.dcmread(
            pydicom.filebase.DicomBytesIO(data)).SOPInstanceUID)),
        [CTImageStorage], [ct.file_meta.TransferSyntaxUID])
    scu = AE(ae_title="ORTHANC")
    scu.add_requested_context(CTImageStorage, ct.file_meta.TransferSyntaxUID)
    with destination:
        assoc = scu.associate("127.0.0.1", node.move_port, ae_title=node.calling_ae)
        assert assoc.is_established
        assert assoc.send_c_store(ct).Status == NOT_ASKED
        assert assoc.send_c_store(asked).Status == 0x0000
        assoc.release()
    assert delivered == [("ok", asked.SOPInstanceUID)] and destination.refused == 1
    assert not scu.associate("127.0.0.1", node.move_port, ae_title=node.calling_ae
                             ).is_established


def test_a_second_retrieve_waits_for_the_first_to_let_go_of_the_port(tmp_path):
    path = tmp_path / "pacs.toml"
    path.write_text(f'[nodes.n]\nae_title = "P"\nhost = "127.0.0.1"\nport = 1\ntimeout = 1\n'
                    f'retrieve = "move"\nmove_port = {free_port()}\n', encoding="utf-8")
    node = load_config(path).node("n")

    def destination():
        return MoveDestination(node, lambda ds: None, lambda key, data: None, [], [])

    entered = threading.Event()
    with destination():
        with pytest.raises(PacsError, match="another retrieve still listens on port"):
            with destination():
                pass
        second = destination()
        thread = threading.Thread(target=lambda: (second.__enter__(), entered.set()))
        thread.start()
        assert not entered.wait(0.3)  # held by the first one
    thread.join(5)
    assert entered.is_set()  # the first let go: the second listens now
    second.__exit__(None, None, None)
    assert _port_is_free(node.move_port)


def test_a_move_host_not_on_this_machine_is_one_line(tmp_path):
    path = tmp_path / "pacs.toml"
    path.write_text('[nodes.far]\nae_title = "P"\nhost = "10.0.0.5"\nport = 1\n'
                    'retrieve = "move"\nmove_port = 11112\nmove_host = "192.0.2.1"\n',
                    encoding="utf-8")
    destination = MoveDestination(load_config(path).node("far"), lambda ds: None,
                                  lambda key, data: None, [], [])
    with pytest.raises(PacsError) as info, destination:
        pass
    line = info.value.one_line()
    assert line.startswith("pacs node far: cannot listen on 192.0.2.1:11112 for the C-MOVE")
    assert "Fix: check move_host and move_port" in line


def test_a_tls_node_receives_its_move_over_tls(tmp_path):
    cert, _ = self_signed_tls(tmp_path)
    port = free_port()
    path = tmp_path / "pacs.toml"
    path.write_text(f'[nodes.tls]\nae_title = "P"\nhost = "127.0.0.1"\nport = 1\ntls = true\n'
                    f'tls_cert = "{cert}"\ntls_key = "{tmp_path / "key.pem"}"\n'
                    f'retrieve = "move"\nmove_port = {port}\ntimeout = 5\n', encoding="utf-8")
    node = load_config(path).node("tls")
    ct = pydicom.dcmread(CT_SMALL)
    delivered = []
    destination = MoveDestination(node, lambda ds: "ok", lambda key, data: delivered.append(key),
                                  [CTImageStorage], [ct.file_meta.TransferSyntaxUID])
    scu = AE(ae_title="ORTHANC")
    scu.add_requested_context(CTImageStorage, ct.file_meta.TransferSyntaxUID)
    trusting = ssl.create_default_context(cafile=str(cert))
    with destination:
        assert not scu.associate("127.0.0.1", port, ae_title="LUCIDA").is_established
        assoc = scu.associate("127.0.0.1", port, ae_title="LUCIDA",
                              tls_args=(trusting, "127.0.0.1"))
        assert assoc.is_established
        assert assoc.send_c_store(ct).Status == 0x0000
        assoc.release()
    assert delivered == ["ok"]


@pytest.mark.parametrize(("body", "words"), [
    ('retrieve = "fetch"', ["retrieve = 'fetch' is not get or move", 'retrieve = "move"']),
    ('retrieve = "move"', ['retrieve = "move" needs move_port', "add move_port = N"]),
    ('retrieve = "move"\nmove_port = 70000', ["needs move_port (1-65535)"]),
    ("move_port = 11112", ["sets move_port but retrieves with C-GET"]),
    ('retrieve = "move"\nmove_port = "x"', ["wrong type", "move_port"]),
    ('retrieve = "move"\nmove_port = 11112\ntls = true', ["C-MOVE over TLS needs tls_cert"]),
])
def test_bad_retrieve_settings_are_one_line_naming_the_file(tmp_path, body, words):
    path = tmp_path / "pacs.toml"
    path.write_text(f'[nodes.n]\nae_title = "PACS"\nhost = "10.0.0.5"\nport = {free_port()}\n'
                    f"{body}\n", encoding="utf-8")
    with pytest.raises(PacsError) as info:
        load_config(path)
    line = info.value.one_line()
    assert "\n" not in line and str(path) in line and "Fix:" in line
    assert all(w in line for w in words)


def test_dicomweb_node_refuses_move_settings(tmp_path):
    path = tmp_path / "pacs.toml"
    path.write_text('[nodes.w]\ndicomweb = "http://127.0.0.1:1/dicom-web"\nretrieve = "move"\n',
                    encoding="utf-8")
    with pytest.raises(PacsError, match="dicomweb node and sets retrieve"):
        load_config(path)


def test_move_binds_loopback_for_a_local_pacs_and_every_interface_otherwise(tmp_path):
    path = tmp_path / "pacs.toml"
    path.write_text(
        '[nodes.here]\nae_title = "P"\nhost = "127.0.0.1"\nport = 1\nretrieve = "move"\n'
        'move_port = 11112\n[nodes.there]\nae_title = "P"\nhost = "10.0.0.5"\nport = 1\n'
        'retrieve = "move"\nmove_port = 11112\n[nodes.chosen]\nae_title = "P"\n'
        'host = "10.0.0.5"\nport = 1\nretrieve = "move"\nmove_port = 11112\n'
        'move_host = "10.0.0.9"\n[nodes.plain]\nae_title = "P"\nhost = "10.0.0.5"\nport = 1\n',
        encoding="utf-8")
    config = load_config(path)
    assert [config.node(n).move_bind for n in ("here", "there", "chosen")] == [
        "127.0.0.1", "0.0.0.0", "10.0.0.9"]
    assert config.node("plain").retrieve == "get" and config.node("here").retrieve == "move"
