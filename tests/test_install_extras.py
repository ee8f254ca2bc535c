"""Who installs what: the learner's install has no nbgrader (its teacher interface would show in
their JupyterLab); the teacher's is ``transformer-workbook[teach]``; the developer's ``[test]``.

And one address for the repository: every link to it (README, the notebooks' badges and install
cell) is ``[project.urls] Repository`` of pyproject.toml.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from workbook.notebooks import WORKBOOK_REPO_URL, repository_url

REPO = Path(__file__).resolve().parents[1]
DIST = "transformer-workbook"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: str) -> list[Requirement]:
    return [Requirement(r) for r in metadata.requires(dist) or []]


def _base(requirements: list[Requirement]) -> list[Requirement]:
    """The requirements that hold without any extra (on this platform)."""
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def test_nbgrader_is_the_teach_extra_only():
    requirements = _requirements(DIST)
    grader = [r for r in requirements if _norm(r.name) == "nbgrader"]
    assert grader, "nbgrader is in no extra"
    extras = {extra for extra in ("teach", "test") if any(r.marker.evaluate({"extra": extra}) for r in grader)}
    assert extras == {"teach", "test"}
    assert all(r.marker is not None and not r.marker.evaluate({"extra": ""}) for r in grader)


def test_no_base_requirement_brings_nbgrader():
    """The learner's install, transitively (over the installed distributions): no nbgrader in it."""
    seen: set[str] = set()
    todo = [_norm(r.name) for r in _base(_requirements(DIST))]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [_norm(r.name) for r in _base(_requirements(name))]
        except metadata.PackageNotFoundError:  # a dependency of another platform: not installed here
            continue
    assert "torch" in seen and "jupyterlab" in seen  # the walk did walk
    assert "nbgrader" not in seen, "a base requirement pulls nbgrader in"


HIDE_NBGRADER = """
import sys

class _NoNbgrader:  # as on a learner's machine: nbgrader is not installed
    def find_spec(self, name, path=None, target=None):
        if name == "nbgrader" or name.startswith("nbgrader."):
            raise ImportError("No module named 'nbgrader' (hidden by the test)")
        return None

sys.meta_path.insert(0, _NoNbgrader())
"""


def _without_nbgrader(code: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBOOK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", HIDE_NBGRADER + code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_learner_commands_work_without_nbgrader(tmp_path):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    solved = REPO / "chapters" / "solved" / "00_introduction.ipynb"
    (chapters / "00_introduction.ipynb").write_bytes(solved.read_bytes())
    course = tmp_path / "mycourse"
    code = f"""
import contextlib, importlib, io, json, pkgutil
import workbook, checks, solutions
from workbook import check, hint, solution, earlier_parts, assemble, mine_or_reference

for package in (workbook, checks, solutions):  # every module, but the one only nbgrader itself loads
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if module.name != "workbook.nbgrader_ext":
            importlib.import_module(module.name)
from workbook.cli import main

codes = {{}}
try:
    main(["check", "--help"])
except SystemExit as stop:
    codes["check --help"] = stop.code
out = io.StringIO()
with contextlib.redirect_stdout(out):
    codes["status"] = main(["status"])
    codes["check 00"] = main(["check", "--dir", {str(chapters)!r}, "00"])
codes["course"] = main(["course", {str(course)!r}])
codes["course --report"] = main(["course", {str(course)!r}, "--report"])
loaded = [m for m in sys.modules if m.startswith("nbgrader")]
print(json.dumps({{"codes": codes, "nbgrader": loaded, "out": out.getvalue()}}))
"""
    done = _without_nbgrader(code, tmp_path, tmp_path / "home")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    codes = result["codes"]
    assert codes["check --help"] == 0 and codes["status"] == 0, result
    assert codes["check 00"] == 0, result["out"]  # the solved chapter, graded without nbgrader
    assert "softmax" in result["out"] and "Traceback" not in done.stderr
    assert codes["course"] == 1 and codes["course --report"] == 1
    assert done.stderr.count('pip install "transformer-workbook[teach]"') == 2, done.stderr
    assert not course.exists()  # nothing written
    assert result["nbgrader"] == []


def test_one_repository_address_everywhere():
    url = repository_url()
    assert url == WORKBOOK_REPO_URL and url.startswith("https://github.com/")
    assert f'Repository = "{url}"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
    slug = url.removeprefix("https://github.com/")
    texts = {"README.md": (REPO / "README.md").read_text(encoding="utf-8")}
    texts |= {
        str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in sorted((REPO / "chapters").glob("*.ipynb"))
    }
    name = slug.split("/")[1]
    # any GitHub, raw-file or Colab link to a repository called like this one, under any owner
    hosts = r"(?:github\.com/|raw\.githubusercontent\.com/|colab\.research\.google\.com/github/)"
    link = re.compile(hosts + r"([\w.-]+/" + re.escape(name) + r")\b")
    found = 0
    for where, text in texts.items():
        for other in link.findall(text):
            found += 1
            assert other == slug, f"{where} links to {other}, not to {slug} ([project.urls] Repository)"
    assert found >= len(texts) - 1  # the README and every chapter link to it
    assert f"git+{url}" in texts["README.md"]
