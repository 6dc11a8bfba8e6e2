"""The built wheel works on its own: installed away from the source tree, the demo runs.

The wheel is built from a copy of the tree (so the checkout gets no build/ folder) without build
isolation (nothing is downloaded), installed without dependencies into a --target folder, and
run from another folder with that folder first on PYTHONPATH, so nothing can come from the
source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from: the files pyproject.toml packages.
SOURCES = ("pyproject.toml", "README.md", "main.py", "engine", "gui", "plugins", "resources")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel and the --target folder it was installed into."""
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=ignore)
        else:
            shutil.copy2(item, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = root / "wheels"
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w",
                    str(wheels)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("lucida-*.whl"))
    target = root / "target"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return wheel, target


def _run(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("LUCIDA_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_wheel_ships_every_resource(installed):
    wheel, _target = installed
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("resources/")}
    wanted = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert wanted and wanted <= shipped, sorted(wanted - shipped)


def test_installed_package_runs_from_another_folder(installed, tmp_path):
    _wheel, target = installed
    probe = (
        "import json, engine, gui, main, plugins, resources\n"
        "from engine.core.versions import app_version\n"
        "from engine.explain.registry import registry\n"
        "files = [m.__file__ for m in (engine, gui, main, plugins, resources)]\n"
        "print(json.dumps({'files': files, 'version': app_version(),\n"
        "                  'methods': sorted(registry().names())}))\n"
    )
    found = _run(target, tmp_path, "-c", probe)
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert all(Path(p).is_relative_to(target) for p in report["files"]), report["files"]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert report["version"] == declared
    assert {"gradcam", "scorecam", "occlusion", "rise"} <= set(report["methods"])
    layers = _run(target, tmp_path, str(target / "bin" / "lucida"), "layers", "--model", "demo",
                  "--json")
    assert layers.returncode == 0, layers.stderr
    assert json.loads(layers.stdout)["default"] == "features"


def test_installed_launcher_takes_the_demo_screenshot(installed, tmp_path):
    _wheel, target = installed
    done = _run(target, tmp_path, str(target / "bin" / "lucida"), "--demo", "--screenshot",
                "s.png")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    from PIL import Image as PILImage

    with PILImage.open(tmp_path / "s.png") as shot:
        assert shot.width >= 600 and shot.height >= 400
