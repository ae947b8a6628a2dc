"""The wheel carries the checkout's config/, solution/ and webresources/ folders.

They live at the top of the repository (where an admin and the solution tooling expect
them), outside the `connector` package; this copies them into the built package as
`connector/_checkout/`, where `connector.solution.paths` finds them when no checkout is
beside the installed package. An editable install (`make setup`) reads the checkout itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CARRIED = ("config", "solution", "webresources")


class BuildWithCheckoutFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "connector" / "_checkout"
        for name in CARRIED:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(Path(__file__).parent / name, target / name)


setup(cmdclass={"build_py": BuildWithCheckoutFiles})
