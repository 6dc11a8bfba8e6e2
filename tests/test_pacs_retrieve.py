"""Echo, find and get against a real Orthanc, over DICOMweb and DIMSE; cancel, resume, faults."""

from __future__ import annotations

import json

import pydicom
import pytest

from engine.cli import main
from engine.core.cancel import Cancelled, CancelToken
from engine.pacs.cache import StudyCache
from engine.pacs.config import load_config
from engine.pacs.errors import PacsError, PacsUnreachable
from engine.pacs.retrieve import retrieve
from engine.studies.tree import open_paths
from tests.pacs_fixtures import (
    CT_SMALL,
    STRANGER_AE,
    CuttingProxy,
    Orthanc,
    free_port,
    self_signed_tls,
    synthetic_study,
)

CT = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)
PROTOCOLS = ["web", "dimse"]
BIG = 24


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """One Orthanc for the module, holding pydicom's test files and a 24-instance study."""
    folder = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(folder).start()
    try:
        assert server.upload_pydicom_test_files() > 40
        study_uid, paths = synthetic_study(folder / "big", BIG)
        assert all(server.upload(p) for p in paths)
        server.big_study = study_uid
        server.big_sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                           for p in paths}
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def config_path(orthanc, tmp_path_factory):
    return orthanc.node_file(tmp_path_factory.mktemp("config"))


def _node(config_path, name):
    return load_config(config_path).node(name)


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _assert_nothing_partial(folder):
    """Every visible file is a complete DICOM instance; no temporary file is left."""
    files = _files(folder)
    assert not [p for p in files if p.name.startswith(".")]
    for path in files:
        ds = pydicom.dcmread(path)
        assert len(ds.PixelData) == ds.Rows * ds.Columns * ds.BitsAllocated // 8


@pytest.mark.parametrize("name", PROTOCOLS)
def test_echo(config_path, name, capsys):
    assert main(["pacs", "echo", name, "--config", str(config_path)]) == 0
    assert capsys.readouterr().out.startswith(f"{name}: answered")


@pytest.mark.parametrize("name", PROTOCOLS)
def test_find_studies_by_patient_and_modality(config_path, name, capsys):
    args = ["pacs", "find", name, "--config", str(config_path), "--json"]
    assert main(args + ["--patient-id", str(CT.PatientID)]) == 0
    studies = json.loads(capsys.readouterr().out)
    assert [s["study_uid"] for s in studies] == [CT.StudyInstanceUID]
    assert studies[0]["patient_name"] == str(CT.PatientName)
    assert studies[0]["modalities"] == ["CT"] and studies[0]["series_count"] == 1

    assert main(args + ["--modality", "CT"]) == 0
    ct_studies = {s["study_uid"] for s in json.loads(capsys.readouterr().out)}
    assert CT.StudyInstanceUID in ct_studies
    assert main(args + ["--modality", "RTDOSE"]) == 0
    assert CT.StudyInstanceUID not in {s["study_uid"]
                                       for s in json.loads(capsys.readouterr().out)}

    assert main(args + ["--date", f"{CT.StudyDate}-{CT.StudyDate}"]) == 0
    dated = json.loads(capsys.readouterr().out)
    assert CT.StudyInstanceUID in {s["study_uid"] for s in dated}
    assert all(s["date"] == CT.StudyDate for s in dated)

    assert main(args + ["--patient-name", "CompressedSamples^CT*"]) == 0
    assert CT.StudyInstanceUID in {s["study_uid"] for s in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize("name", PROTOCOLS)
def test_find_series_of_a_study_and_the_table(config_path, orthanc, name, capsys):
    base = ["pacs", "find", name, "--config", str(config_path)]
    assert main(base + ["--study", orthanc.big_study, "--json"]) == 0
    series = json.loads(capsys.readouterr().out)
    assert len(series) == 1 and series[0]["modality"] == "CT"
    assert series[0]["instance_count"] == BIG
    assert main(base + ["--patient-id", "LUCIDA-BIG"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["PATIENT", "ID", "NAME"]
    assert any(orthanc.big_study in line and "Many^Slices" in line for line in table[1:])


@pytest.mark.parametrize("name", PROTOCOLS)
def test_get_a_study_then_resume_after_losing_instances(config_path, orthanc, name, tmp_path,
                                                        capsys):
    out = tmp_path / "out"
    args = ["pacs", "get", name, orthanc.big_study, "--out", str(out),
            "--config", str(config_path)]
    assert main(args) == 0
    assert f"retrieved {BIG} of {BIG} instances from {name}" in capsys.readouterr().out
    files = _files(out)
    assert {str(pydicom.dcmread(p).SOPInstanceUID) for p in files} == orthanc.big_sops
    _assert_nothing_partial(out)
    tree = open_paths([out])
    assert len(tree.all_images()) == BIG and not tree.skipped

    for path in files[:5]:
        path.unlink()
    (files[0].parent / ".stale.dcm.part").write_bytes(b"half")
    assert main(args) == 0
    line = capsys.readouterr().out
    assert f"retrieved 5 of {BIG} instances" in line and f"{BIG - 5} already here" in line
    assert len(_files(out)) == BIG
    _assert_nothing_partial(out)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_get_one_series(config_path, name, tmp_path):
    report = retrieve(_node(config_path, name), CT.StudyInstanceUID, tmp_path,
                      series_uid=CT.SeriesInstanceUID)
    assert report.total == report.received == 1
    (path,) = _files(tmp_path)
    assert pydicom.dcmread(path).SOPInstanceUID == CT.SOPInstanceUID


@pytest.mark.parametrize("name", PROTOCOLS)
def test_cancel_keeps_complete_instances_and_a_rerun_resumes(config_path, orthanc, name,
                                                             tmp_path):
    cancel = CancelToken()
    fractions = []

    def progress(fraction, message=""):
        fractions.append(fraction)
        if fraction >= 0.25:
            cancel.cancel()

    node = _node(config_path, name)
    with pytest.raises(Cancelled):
        retrieve(node, orthanc.big_study, tmp_path, progress=progress, cancel=cancel)
    kept = len(_files(tmp_path))
    assert 0 < kept < BIG
    _assert_nothing_partial(tmp_path)
    assert fractions == sorted(fractions)
    report = retrieve(node, orthanc.big_study, tmp_path)
    assert report.already == kept and report.received == BIG - kept
    assert len(_files(tmp_path)) == BIG


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_connection_cut_mid_transfer_leaves_nothing_partial(orthanc, protocol, tmp_path):
    # About a third of the study's bytes get through, then the link drops.
    target = orthanc.http_port if protocol == "dicomweb" else orthanc.dicom_port
    proxy = CuttingProxy(target, cut_after=BIG * 39_000 // 3)
    try:
        body = (f'dicomweb = "http://127.0.0.1:{proxy.port}/dicom-web"'
                if protocol == "dicomweb"
                else f'ae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {proxy.port}')
        path = tmp_path / "cut.toml"
        path.write_text(f"[nodes.flaky]\n{body}\ntimeout = 3\n", encoding="utf-8")
        out = tmp_path / "out"
        with pytest.raises(PacsUnreachable) as info:
            retrieve(load_config(path).node("flaky"), orthanc.big_study, out)
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    line = info.value.one_line()
    assert line.startswith("pacs node flaky:") and "Fix:" in line
    assert any(w in line for w in ("dropped", "did not answer", "no association"))
    _assert_nothing_partial(out)
    assert len(_files(out)) < BIG
    # The same retrieve straight to Orthanc resumes and completes.
    node = load_config(orthanc.node_file(tmp_path)).node(
        "web" if protocol == "dicomweb" else "dimse")
    report = retrieve(node, orthanc.big_study, out)
    assert report.received + report.already == BIG
    _assert_nothing_partial(out)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_unreachable_node_is_one_line_naming_node_and_fix(tmp_path, name, capsys):
    port = free_port()
    body = (f'dicomweb = "http://127.0.0.1:{port}/dicom-web"' if name == "web"
            else f'ae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {port}')
    path = tmp_path / "down.toml"
    path.write_text(f"[nodes.{name}]\n{body}\ntimeout = 5\n", encoding="utf-8")
    for action in (["echo", name], ["find", name], ["get", name, "1.2.3", "--out",
                                                     str(tmp_path / "o")]):
        assert main(["pacs", *action, "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: pacs node {name}:")
        assert "Fix:" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not _files(tmp_path / "o")


def test_dimse_refuses_an_unregistered_ae_with_the_fix(orthanc, tmp_path, capsys):
    extra = (f'[nodes.stranger]\nae_title = "ORTHANC"\nhost = "127.0.0.1"\n'
             f'port = {orthanc.dicom_port}\ncalling_ae = "{STRANGER_AE}"\n')
    path = orthanc.node_file(tmp_path, extra)
    assert main(["pacs", "find", "stranger", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "pacs node stranger:" in err
    assert f"register AE title {STRANGER_AE}" in err or "C-FIND with 0x" in err


def test_unknown_study_says_so(config_path, tmp_path):
    with pytest.raises(PacsError, match="has no instances of study 1.2.3.4"):
        retrieve(_node(config_path, "web"), "1.2.3.4", tmp_path)


def test_get_into_the_cache_enforces_its_size_limit(config_path, orthanc, tmp_path,
                                                     monkeypatch, capsys):
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("LUCIDA_PACS_CACHE", str(cache_dir))
    monkeypatch.setenv("LUCIDA_PACS_CACHE_MB", "0.5")
    base = ["pacs", "get", "web", "--config", str(config_path)]
    assert main(base + [CT.StudyInstanceUID]) == 0
    assert (cache_dir / CT.StudyInstanceUID).is_dir()
    assert main(base + [orthanc.big_study]) == 0  # ~0.9 MB: over the limit on its own
    capsys.readouterr()
    assert not (cache_dir / CT.StudyInstanceUID).exists()
    assert len(_files(cache_dir / orthanc.big_study)) == BIG
    cache = StudyCache(cache_dir, 1)
    assert [p.name for p in cache.studies()] == [orthanc.big_study]


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_tls_with_the_ca_bundle_and_a_clear_line_without_it(orthanc, protocol, tmp_path,
                                                          capsys):
    cert, context = self_signed_tls(tmp_path)
    target = orthanc.http_port if protocol == "dicomweb" else orthanc.dicom_port
    proxy = CuttingProxy(target, tls=context)
    try:
        body = (f'dicomweb = "https://127.0.0.1:{proxy.port}/dicom-web"'
                if protocol == "dicomweb"
                else f'ae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {proxy.port}\ntls = true')
        path = tmp_path / "tls.toml"
        path.write_text(f'[nodes.trusted]\n{body}\nca_bundle = "{cert}"\ntimeout = 5\n'
                        f'[nodes.untrusted]\n{body}\ntimeout = 5\n', encoding="utf-8")
        assert main(["pacs", "echo", "trusted", "--config", str(path)]) == 0
        report = retrieve(load_config(path).node("trusted"), CT.StudyInstanceUID, tmp_path / "o")
        assert report.received == 1
        assert main(["pacs", "echo", "untrusted", "--config", str(path)]) == 2
    finally:
        proxy.close()
    err = capsys.readouterr().err
    assert err.startswith("error: pacs node untrusted:") and err.count("\n") == 1
    assert "ca_bundle" in err and "TLS" in err
