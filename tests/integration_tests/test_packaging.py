"""The built wheel installs into a fresh venv and owns exactly our three import names.

PyPI has other distributions that install a ``sweeps`` or ``storage`` package; this checks ours
maps each name to ``onecycle-sweeps`` alone. To avoid re-installing torch and the rest, the
fresh venv sees the test environment's site-packages through a ``.pth`` line (which does not
run that environment's own ``.pth`` hooks, so the editable install there is not visible).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # builds wheels and venvs; see pyproject's markers
    pytest.mark.xdist_group("wheel"),  # one pytest worker builds the module's wheel once
]

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.metadata as md, json, sys, sweeps, storage, schedulers
owners = md.packages_distributions()
print(json.dumps({
    "owners": {n: sorted(set(owners.get(n, []))) for n in ("schedulers", "storage", "sweeps")},
    "files": [sweeps.__file__, storage.__file__, schedulers.__file__],
    "prefix": sys.prefix,
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)]
    result = subprocess.run([*command, str(ROOT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (built,) = out.glob("onecycle_sweeps-*.whl")
    return built


def test_wheel_ships_the_three_packages_and_the_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        tops = {
            name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
        }
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        metadata = archive.read(next(n for n in names if n.endswith("/METADATA"))).decode()
        scripts = archive.read(entry_points).decode()
    assert tops == {"schedulers", "storage", "sweeps"}
    assert "onecycle = sweeps.cli:entry" in scripts
    assert "Requires-Dist: torch>=2.3" in metadata
    assert "Requires-Python: >=3.10" in metadata


def test_fresh_venv_maps_each_name_only_to_onecycle_sweeps(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run(
        [str(python), "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    found = json.loads(probe.stdout)
    assert found["owners"] == {
        name: ["onecycle-sweeps"] for name in ("schedulers", "storage", "sweeps")
    }
    assert all(path.startswith(site) for path in found["files"]), found["files"]
    help_run = subprocess.run(
        [str(env / "bin" / "onecycle"), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert help_run.returncode == 0, help_run.stderr
    assert "schedule" in help_run.stdout
