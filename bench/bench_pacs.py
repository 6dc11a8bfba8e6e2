"""Retrieve a 100-instance study from a local Orthanc: Lucida against its peers, in one run.

Starts a throwaway Orthanc (the one the tests use), stores a 100-instance CT study, and times:

* Lucida's retrieve over DICOMweb (WADO-RS, a few requests in flight) and over DIMSE (C-GET,
  and C-MOVE to its own Storage SCP), each writing every instance atomically into a fresh
  folder;
* a plain dicomweb-client loop (one ``retrieve_instance`` after another, written with pydicom);
* dcmtk's ``getscu`` (C-GET) and ``movescu`` (C-MOVE to itself), when they are installed.

Prints images/s for each (best of a few runs) and Lucida's ratio to each peer.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smoke import sized  # noqa: E402

COUNT = sized(100, 5)
REPEATS = sized(3, 1)


def _best(run) -> float:
    """Best wall time of a few runs of ``run(folder)``, each into a fresh folder."""
    times = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run(Path(tmp))
            times.append(time.perf_counter() - start)
            files = [p for p in Path(tmp).rglob("*") if p.is_file()]
            assert len(files) == COUNT, f"{len(files)} files instead of {COUNT}"
    return min(times)


def _plain_dicomweb_loop(url: str, study_uid: str, out: Path) -> None:
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url)
    for item in client.search_for_instances(study_uid):
        series, sop = item["0020000E"]["Value"][0], item["00080018"]["Value"][0]
        ds = client.retrieve_instance(study_uid, series, sop)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        (out / f"{sop}.dcm").write_bytes(buffer.getvalue())


def _getscu(binary: str, orthanc, study_uid: str, out: Path) -> None:
    subprocess.run(
        [binary, "-aet", "LUCIDA", "-aec", orthanc.aet, "127.0.0.1", str(orthanc.dicom_port),
         "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
         "-od", str(out)],
        check=True, capture_output=True, timeout=300)


def _movescu(binary: str, orthanc, study_uid: str, out: Path) -> None:
    # movescu is its own move destination: it listens on the port Orthanc knows for LUCIDA.
    subprocess.run(
        [binary, "-aet", "LUCIDA", "-aem", "LUCIDA", "-aec", orthanc.aet, "--port",
         str(orthanc.move_port), "127.0.0.1", str(orthanc.dicom_port), "-S",
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
         "-od", str(out)],
        check=True, capture_output=True, timeout=300)


def main() -> int:
    """Run the benchmark and print its table."""
    from engine.pacs.config import load_config
    from engine.pacs.retrieve import retrieve
    from tests.pacs_fixtures import Orthanc, synthetic_study

    with tempfile.TemporaryDirectory() as tmp:
        orthanc = Orthanc(Path(tmp) / "orthanc", move=True).start()
        try:
            study_uid, paths = synthetic_study(Path(tmp) / "study", COUNT)
            for path in paths:
                orthanc.upload(path)
            size_mb = sum(p.stat().st_size for p in paths) / 1e6
            config = load_config(orthanc.node_file(Path(tmp)))
            rows = {
                "Lucida, DICOMweb (WADO-RS)":
                    _best(lambda out: retrieve(config.node("web"), study_uid, out)),
                "Lucida, DIMSE (C-GET)":
                    _best(lambda out: retrieve(config.node("dimse"), study_uid, out)),
                "Lucida, DIMSE (C-MOVE)":
                    _best(lambda out: retrieve(config.node("move"), study_uid, out)),
                "plain dicomweb-client loop":
                    _best(lambda out: _plain_dicomweb_loop(orthanc.dicomweb, study_uid, out)),
            }
            getscu = shutil.which("getscu")
            if getscu:
                rows["dcmtk getscu (C-GET)"] = _best(
                    lambda out: _getscu(getscu, orthanc, study_uid, out))
            movescu = shutil.which("movescu")
            if movescu:
                rows["dcmtk movescu (C-MOVE)"] = _best(
                    lambda out: _movescu(movescu, orthanc, study_uid, out))
        finally:
            orthanc.stop()
    print(f"   retrieve {COUNT} CT instances ({size_mb:.1f} MB) from a local Orthanc, "
          f"best of {REPEATS}")
    for name, seconds in rows.items():
        print(f"   {name:<30} {COUNT / seconds:8.1f} images/s  ({seconds:.2f} s)")
    web, dimse = rows["Lucida, DICOMweb (WADO-RS)"], rows["Lucida, DIMSE (C-GET)"]
    plain = rows["plain dicomweb-client loop"]
    print(f"   ratio Lucida DICOMweb / plain dicomweb-client loop: {plain / web:.2f}x faster")
    if "dcmtk getscu (C-GET)" in rows:
        dcmtk = rows["dcmtk getscu (C-GET)"]
        print(f"   ratio Lucida C-GET / dcmtk getscu: {dcmtk / dimse:.2f}x "
              f"({'faster' if dimse < dcmtk else 'slower'})")
    else:
        print("   dcmtk getscu not installed: that comparison is skipped")
    move = rows["Lucida, DIMSE (C-MOVE)"]
    print(f"   ratio Lucida C-MOVE / C-GET time: {move / dimse:.2f}x")
    if "dcmtk movescu (C-MOVE)" in rows:
        dcmtk = rows["dcmtk movescu (C-MOVE)"]
        print(f"   ratio Lucida C-MOVE / dcmtk movescu: {dcmtk / move:.2f}x "
              f"({'faster' if move < dcmtk else 'slower'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
