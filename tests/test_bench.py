"""Every bench script still imports and parses its options (they are run by hand, not in CI).

All scripts run ``--help`` in one child interpreter (``runpy``, as ``python script.py``
would), so torch and friends are imported once rather than once per script.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parents[1] / "bench").glob("*.py"))

_HELP_ALL = """
import contextlib, io, json, runpy, sys
results = {}
for path in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [path, "--help"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    except BaseException as error:  # an import or parse error: reported, not raised
        code, err = repr(error), io.StringIO(err.getvalue() + repr(error))
    results[path] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()[-2000:]}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def helps() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _HELP_ALL, *map(str, BENCH)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("script", BENCH, ids=[p.stem for p in BENCH])
def test_bench_script_imports_and_shows_help(helps, script):
    result = helps[str(script)]
    assert result["code"] == 0, result["stderr"]
    assert "usage:" in result["stdout"]
