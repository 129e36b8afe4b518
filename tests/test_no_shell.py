"""No subprocess with a shell anywhere in the project: every command is an argument list (the seed built strings)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("parsers", "sniffroute", "tests", "bench", "scripts")
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}


def _python_files() -> list[Path]:
    return sorted(p for folder in SOURCES if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.py"))


def _shell_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and not keyword.value.value):
                found.append(f"{path.name}:{node.lineno}: shell=...")
        function = node.func
        if (
            isinstance(function, ast.Attribute)
            and isinstance(function.value, ast.Name)
            and (function.value.id, function.attr) in SHELL_CALLS
        ):
            found.append(f"{path.name}:{node.lineno}: {function.value.id}.{function.attr}")
    return found


def test_the_checker_finds_a_shell(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os, subprocess\nsubprocess.run('ls', shell=False)\nsubprocess.run('ls', shell=True)\n")
    sample.write_text(sample.read_text() + "os.system('ls')\n")
    assert _shell_uses(sample) == ["sample.py:3: shell=...", "sample.py:4: os.system"]


def test_no_subprocess_runs_a_shell() -> None:
    files = _python_files()
    assert len(files) > 20
    assert [use for path in files for use in _shell_uses(path)] == []
