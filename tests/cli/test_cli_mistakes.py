"""``crosswire run`` on a user module that fails on import: one line naming the module and
the cause, exit 3 (could not start), never a traceback or exit 1 (a missed drain).

Each test writes the module into a fresh directory and runs the real command there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]

GOOD_APP = """
import crosswire
app = crosswire.App("fine")
"""


def run(directory: Path, *args: str, level: str = "INFO") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CROSSWIRE, "--log-level", level, "run", *args, "--memory"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            "import crosswire\napp = crosswire.App('x'\n",
            ["cannot import module 'userapp'", "SyntaxError at ", "userapp.py:2"],
            id="syntax-error",
        ),
        pytest.param(
            "import crosswire\n\ndef f():\n  return 1\n    x = 2\n",
            ["cannot import module 'userapp'", "IndentationError at ", "userapp.py:5"],
            id="indentation-error",
        ),
        pytest.param(
            "import crosswire\nimport a_dependency_that_is_not_installed\napp = crosswire.App('x')\n",
            [
                "cannot import module 'userapp'",
                "it imports 'a_dependency_that_is_not_installed', which is not installed",
                "userapp.py:2",
            ],
            id="missing-dependency",
        ),
        pytest.param(
            "import crosswire\nimport helper\napp = crosswire.App('x')\n",
            ["cannot import module 'userapp'", "it imports 'helper_dep'", "helper.py:1"],
            id="missing-dependency-of-a-sibling",
        ),
        pytest.param(
            "import os\nimport crosswire\nDSN = os.environ['A_SETTING_NOBODY_SET']\napp = crosswire.App('x')\n",
            ["cannot import module 'userapp'", "KeyError: 'A_SETTING_NOBODY_SET'", "userapp.py:3"],
            id="exception-at-import",
        ),
        pytest.param(
            "raise RuntimeError('database\\nunreachable')\n",
            ["cannot import module 'userapp'", "RuntimeError: database unreachable", "userapp.py:1"],
            id="multi-line-message",
        ),
    ],
)
def test_a_module_failing_on_import_is_one_line_and_exit_3(tmp_path: Path, source: str, expected: list[str]) -> None:
    (tmp_path / "userapp.py").write_text(source)
    (tmp_path / "helper.py").write_text("import helper_dep\n")
    result = run(tmp_path, "userapp:app")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("crosswire: ")
    for text in expected:
        assert text in lines[0], lines[0]


def test_a_module_inside_a_missing_package_names_the_package(tmp_path: Path) -> None:
    result = run(tmp_path, "nopkg.app:app")
    assert result.returncode == 3
    assert result.stderr.strip() == "crosswire: cannot import module 'nopkg.app': No module named 'nopkg'"


def test_a_module_named_like_the_start_of_its_missing_dependency_is_not_called_missing(tmp_path: Path) -> None:
    # `userapp` starts with `user`, yet it is `userapp` that exists and its import that failed
    (tmp_path / "userapp.py").write_text("import user\n")
    result = run(tmp_path, "userapp:app")
    assert result.returncode == 3
    assert "it imports 'user', which is not installed" in result.stderr


def test_debug_logging_shows_the_cause(tmp_path: Path) -> None:
    (tmp_path / "userapp.py").write_text("raise RuntimeError('boom')\n")
    result = run(tmp_path, "userapp:app", level="DEBUG")
    assert result.returncode == 3
    assert "RuntimeError: boom" in result.stderr
    assert "Traceback" in result.stderr  # asked for: the user module's own traceback


def test_a_good_module_still_starts(tmp_path: Path) -> None:
    (tmp_path / "userapp.py").write_text(textwrap.dedent(GOOD_APP))
    proc = subprocess.Popen(
        [*CROSSWIRE, "run", "userapp:app", "--memory"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        assert "ready on memory" in proc.stderr.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
