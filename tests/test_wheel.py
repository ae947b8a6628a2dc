"""The built wheel is a working `crmchat` on its own: it carries the regions, the solution,
the web resources and the XSDs, so nothing from the checkout is needed once installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_installed_wheel_runs_crmchat_without_the_checkout(tmp_path: Path) -> None:
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        cwd=tmp_path,
        env=dict(os.environ),
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("crmchat-*.whl")
    # Installing a pure-Python wheel is unpacking it onto the path (the console script
    # only calls connector.cli:main); the checkout stays off that path.
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMCHAT_")}
    env["PYTHONPATH"] = str(site)
    where = _run(
        [sys.executable, "-c", "import connector; print(connector.__file__)"], cwd=work, env=env
    )
    assert where.stdout.strip() == str(site / "connector" / "__init__.py")

    check = _run([sys.executable, "-m", "connector.cli", "solution", "check"], cwd=work, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "solution OK: 0 errors" in check.stdout

    # Settings, the regions and the embedded Dataverse (seeded from the solution) all work;
    # the data folder is made in the working directory, not inside the package.
    regions = _run([sys.executable, "-m", "connector.cli", "region", "list"], cwd=work, env=env)
    assert regions.returncode == 0, regions.stderr[-2000:]
    assert "* centralus" in regions.stdout
    assert (work / "data" / "dataverse.sqlite").is_file()
