"""Issue 18: every `python` block of docs/python.md and the README, and examples/fastapi_app, pass
`mypy --strict` against the shipped stub."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[3]
DOC = WORKSPACE / "docs" / "python.md"
README = WORKSPACE / "README.md"
FASTAPI_APP = WORKSPACE / "examples" / "fastapi_app" / "app.py"


def python_blocks(doc: Path = DOC) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", doc.read_text(), flags=re.S | re.M)


def test_docs_have_examples() -> None:
    # A regex that stopped matching would make the check below pass on nothing.
    assert len(python_blocks()) >= 8


def test_docs_examples_and_the_fastapi_app_pass_mypy_strict(tmp_path: Path) -> None:
    files = []
    for i, block in enumerate(python_blocks() + python_blocks(README)):
        f = tmp_path / f"doc_example_{i:02}.py"
        f.write_text(block)
        files.append(str(f))
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
         *files, str(FASTAPI_APP)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
