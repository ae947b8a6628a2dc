"""The `crmchat` command line, as an admin and a support person use it."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import requests

from connector.cli import main
from connector.crm import secret_word
from connector.dataverse_local import start_in_thread


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRMCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(secret_word, "WRONG_GUESS_BASE_DELAY_SECS", 0.0)
    return tmp_path / "data"


def _run(
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_solution_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "solution", "check")
    assert code == 0 and "0 errors" in out


def test_solution_pack_prints_both_zips_it_wrote_core_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = _run(capsys, "solution", "pack", "--out", str(tmp_path / "dist"))
    core, sales = (Path(line) for line in out.split())
    assert code == 0 and core.parent == sales.parent == tmp_path / "dist"
    assert (core.name, sales.name) == ("CRMChat_1_0_0_0.zip", "CRMChatSales_1_0_0_0.zip")
    with zipfile.ZipFile(core) as packed:
        assert {"[Content_Types].xml", "solution.xml", "customizations.xml"} <= set(
            packed.namelist()
        )
    with zipfile.ZipFile(sales) as packed:
        manifest = ET.fromstring(packed.read("solution.xml"))
    required = manifest.iterfind("SolutionManifest/MissingDependencies/*/Required")
    assert {"lead", "incident", "crmchat_platformlink"} <= {r.get("schemaName") for r in required}


def test_solution_pack_managed_writes_the_managed_packages(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = _run(capsys, "solution", "pack", "--managed", "--out", str(tmp_path))
    paths = [Path(line) for line in out.split()]
    assert code == 0
    assert [p.name for p in paths] == [
        "CRMChat_1_0_0_0_managed.zip",
        "CRMChatSales_1_0_0_0_managed.zip",
    ]
    for zip_path in paths:
        with zipfile.ZipFile(zip_path) as packed:
            manifest = ET.fromstring(packed.read("solution.xml"))
        assert manifest.findtext("SolutionManifest/Managed") == "1"


def test_a_token_for_the_administrator_opens_the_embedded_dataverse(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out, _ = _run(capsys, "dataverse", "token", "--user", "admin")
    assert code == 0
    url, stop = start_in_thread(db_path=data_dir / "dataverse.sqlite")
    try:
        who = requests.get(
            f"{url.rstrip('/')}/WhoAmI",
            headers={"Authorization": f"Bearer {out.strip()}"},
            timeout=10,
        )
    finally:
        stop()
    assert who.status_code == 200 and who.json()["UserId"]


def test_a_token_for_an_unknown_user_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "dataverse", "token", "--user", "nobody")
    assert code == 2 and out == "" and "nobody" in err


def test_region_set_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "region", "set", "eastasia")[0] == 0
    code, out, _ = _run(capsys, "region", "list")
    assert code == 0
    marked = [line for line in out.splitlines() if line.startswith("*")]
    assert len(marked) == 1 and "East Asia" in marked[0]
    code, _, err = _run(capsys, "region", "set", "mars")
    assert code == 2 and "unknown region" in err


def test_secret_word_set_then_verified_by_support(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _run(capsys, "secret", "set", stdin="Blue Tiger\n", monkeypatch=monkeypatch)
    assert code == 0 and "set" in out
    code, out, _ = _run(capsys, "secret", "verify", stdin="blue tiger\n", monkeypatch=monkeypatch)
    assert (code, out.strip()) == (0, "yes")
    code, out, _ = _run(capsys, "secret", "verify", stdin="red tiger\n", monkeypatch=monkeypatch)
    assert (code, out.strip()) == (1, "no")


def test_guessing_from_the_command_line_gets_locked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(capsys, "secret", "set", stdin="Blue Tiger\n", monkeypatch=monkeypatch)
    for _ in range(secret_word.MAX_WRONG_GUESSES):
        _run(capsys, "secret", "verify", stdin="guess\n", monkeypatch=monkeypatch)
    code, out, err = _run(capsys, "secret", "verify", stdin="Blue Tiger\n", monkeypatch=monkeypatch)
    assert code == 3 and out == "" and "too many wrong guesses" in err


def test_a_weak_secret_word_changes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(capsys, "secret", "set", stdin="Blue Tiger\n", monkeypatch=monkeypatch)
    code, _, err = _run(capsys, "secret", "set", stdin="abc\n", monkeypatch=monkeypatch)
    assert code == 2 and "4 to 128" in err
    code, out, _ = _run(capsys, "secret", "verify", stdin="blue tiger\n", monkeypatch=monkeypatch)
    assert out.strip() == "yes"
