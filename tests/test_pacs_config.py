"""PACS node file, query keys, the retrieve cache and the send retry policy, without a server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.cli import main
from engine.core.errors import UsageError
from engine.pacs import connect
from engine.pacs.cache import StudyCache
from engine.pacs.config import DEFAULT_CALLING_AE, load_config
from engine.pacs.errors import PacsError, PacsUnreachable
from engine.pacs.query import InstanceRef, StudyQuery, parse_date_range
from engine.pacs.retrieve import instance_path, safe_name
from engine.pacs.send import send_datasets
from tests.pacs_fixtures import CT_SMALL, free_port


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pacs.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_nodes_of_both_protocols_with_defaults(tmp_path):
    path = _write(tmp_path, """
[cache]
max_mb = 10
folder = "~/lucida-cache"

[nodes.web]
dicomweb = "https://pacs.example.org/dicom-web/"
token_env = "PACS_TOKEN"
ca_bundle = "ca.pem"

[nodes.dimse]
ae_title = "ORTHANC"
host = "127.0.0.1"
port = 4242
tls = true
""")
    config = load_config(path)
    web, dimse = config.node("web"), config.node("dimse")
    assert web.protocol == "dicomweb" and web.dicomweb == "https://pacs.example.org/dicom-web"
    assert web.ca_bundle == "ca.pem" and web.token_env == "PACS_TOKEN"
    assert dimse.protocol == "dimse" and dimse.port == 4242 and dimse.tls
    assert dimse.calling_ae == DEFAULT_CALLING_AE
    assert config.cache_max_mb == 10 and config.cache_folder == Path.home() / "lucida-cache"


def test_config_file_comes_from_the_environment(tmp_path, monkeypatch):
    path = _write(tmp_path, '[nodes.a]\ndicomweb = "http://127.0.0.1:1/dicom-web"\n')
    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(path))
    assert list(load_config().nodes) == ["a"]


@pytest.mark.parametrize("body, words", [
    ('[nodes.a]\ndicomweb = "http://h/dw"\ntoken = "s3cret"\n', "secret (token)"),
    ('[nodes.a]\ndicomweb = "http://h/dw"\npassword = "s3cret"\n', "secret (password)"),
    ('[nodes.a]\ndicomweb = "http://user:s3cret@h/dw"\n', "holds a password"),
    ('[nodes.a]\ndicomweb = "ftp://h/dw"\n', "not an http(s) URL"),
    ('[nodes.a]\nhost = "h"\nport = 4242\n', "neither dicomweb nor ae_title"),
    ('[nodes.a]\ndicomweb = "http://h/dw"\nhost = "h"\n', "both a dicomweb URL"),
    ('[nodes.a]\ndicomweb = "http://h/dw"\ncolour = "red"\n', "unknown key 'colour'"),
    ('[nodes.a]\nae_title = "A"\nhost = "h"\nport = "x"\n', "wrong type"),
    ('[nodes.a]\nae_title = "MUCH_TOO_LONG_AE_TITLE"\nhost = "h"\nport = 1\n', "not valid"),
    ("[nodes.a\n", "not valid TOML"),
    ("[cache]\nmax_mb = -1\n", "must be positive"),
])
def test_bad_node_files_fail_in_one_line_without_echoing_secrets(tmp_path, body, words):
    path = _write(tmp_path, body)
    with pytest.raises(PacsError) as info:
        load_config(path)
    line = info.value.one_line()
    assert words in line and str(path) in line and "Fix:" in line
    assert "s3cret" not in line and "\n" not in line


def test_unknown_node_lists_the_known_ones(tmp_path):
    path = _write(tmp_path, '[nodes.one]\ndicomweb = "http://h/dw"\n')
    with pytest.raises(PacsError, match="no PACS node named 'two' \\(known: one\\)"):
        load_config(path).node("two")


def test_token_is_read_from_the_environment_and_never_shown(tmp_path, monkeypatch):
    path = _write(tmp_path, '[nodes.a]\ndicomweb = "http://h/dw"\ntoken_env = "LUCIDA_T"\n')
    node = load_config(path).node("a")
    monkeypatch.delenv("LUCIDA_T", raising=False)
    with pytest.raises(PacsError, match="LUCIDA_T, which is not set"):
        node.token()
    monkeypatch.setenv("LUCIDA_T", "tok-123456")
    assert node.token() == "tok-123456"
    conn = connect(node)
    assert conn._client()._session.headers["Authorization"] == "Bearer tok-123456"
    assert "tok-123456" not in repr(node) and "tok-123456" not in node.address


def test_cli_reports_a_bad_node_file_in_one_line(tmp_path, capsys):
    path = _write(tmp_path, '[nodes.a]\ndicomweb = "http://h/dw"\ntoken = "s3cret"\n')
    assert main(["pacs", "echo", "a", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a secret" in err and "s3cret" not in err


@pytest.mark.parametrize("text, expected", [
    ("20240101-20241231", "20240101-20241231"),
    ("20240101-", "20240101-"),
    ("-20241231", "-20241231"),
    ("20240101", "20240101"),
    ("2024-01-01", "20240101"),
])
def test_date_ranges(text, expected):
    assert parse_date_range(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "-", "20241231-20240101", "2024-01-01-2024-02-01"])
def test_bad_date_ranges(text):
    with pytest.raises(UsageError):
        parse_date_range(text)


def test_query_keys_leave_out_empty_filters():
    query = StudyQuery(patient_id="P1", modality="CT", date="20240101-")
    assert query.keys() == {"PatientID": "P1", "ModalitiesInStudy": "CT",
                            "StudyDate": "20240101-"}


def test_uids_that_are_not_uids_cannot_escape_the_folder(tmp_path):
    assert safe_name("1.2.3") == "1.2.3"
    for bad in ("../../etc", "/abs", "1..2", "a b"):
        name = safe_name(bad)
        assert "/" not in name and ".." not in name
    path = instance_path(tmp_path, InstanceRef("../x", "..", "/etc/passwd"))
    assert tmp_path in path.parents


def _study(folder: Path, uid: str, size: int, age: float) -> Path:
    study = folder / uid / "1.1"
    study.mkdir(parents=True)
    (study / "1.dcm").write_bytes(b"\0" * size)
    stamp = os.path.getmtime(folder) - age
    os.utime(folder / uid, (stamp, stamp))
    return folder / uid


def test_cache_evicts_least_recently_used_studies_but_never_the_kept_one(tmp_path):
    cache = StudyCache(tmp_path, max_bytes=2500)
    old = _study(tmp_path, "1.1", 1000, age=300)
    kept = _study(tmp_path, "1.2", 1000, age=200)
    new = _study(tmp_path, "1.3", 1000, age=100)
    assert cache.usage() == 3000
    assert cache.enforce(keep=kept) == [old]
    assert kept.exists() and new.exists() and cache.usage() == 2000
    cache.max_bytes = 500
    assert cache.enforce(keep=kept) == [new]
    assert kept.exists()


def test_cache_location_and_limit_from_the_environment(tmp_path, monkeypatch):
    path = _write(tmp_path, "[cache]\nmax_mb = 5\n")
    monkeypatch.setenv("LUCIDA_PACS_CACHE", str(tmp_path / "c"))
    cache = StudyCache.from_config(load_config(path))
    assert cache.folder == tmp_path / "c" and cache.max_bytes == 5 * 1024 * 1024
    monkeypatch.setenv("LUCIDA_PACS_CACHE_MB", "1")
    assert StudyCache.from_config(load_config(path)).max_bytes == 1024 * 1024


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_send_to_a_closed_port_retries_with_backoff_and_reports_nothing_sent(tmp_path,
                                                                           protocol):
    import pydicom

    port = free_port()  # nothing listens there
    body = (f'dicomweb = "http://127.0.0.1:{port}/dicom-web"' if protocol == "dicomweb"
            else f'ae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {port}')
    path = _write(tmp_path, f"[nodes.down]\n{body}\nretries = 2\nbackoff = 0.01\ntimeout = 5\n")
    waits: list[float] = []
    with pytest.raises(PacsUnreachable) as info:
        send_datasets(load_config(path).node("down"), [pydicom.dcmread(CT_SMALL)],
                      sleep=waits.append)
    assert waits == [0.01, 0.02]
    line = info.value.one_line()
    assert line.startswith("pacs node down:") and "0 of 1 instances confirmed stored" in line
    assert "after 3 attempts" in line and "Fix:" in line
    assert info.value.stored == []


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm",
                                  "MR_small_bigendian.dcm"])
def test_an_instance_cut_short_is_never_taken_for_whole(name):
    import io
    import warnings

    import pydicom

    from engine.pacs.integrity import is_whole
    from tests.pacs_fixtures import PYDICOM_FILES

    data = (PYDICOM_FILES / name).read_bytes()
    assert is_whole(pydicom.dcmread(io.BytesIO(data)))
    for cut in (len(data) - 300, len(data) * 3 // 4, len(data) // 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(io.BytesIO(data[:cut]))
            except (EOFError, ValueError):
                continue  # refused outright: cannot pass for whole either
        assert not is_whole(ds), cut
