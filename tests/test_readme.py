"""The README's and docs' commands run as written, so the documentation cannot drift from the code.

Every fenced block (no language, sh or bash) in README.md and docs/*.md whose ``banana`` lines touch
only sample photos and the committed examples is run as a bash script in a temporary folder (with
docs/examples copied in). A line's documented exit code is its ``# exit N`` comment (0 when there is
none); in a block that shows a session (``$ `` prompts) only the prompted lines run. Blocks with
placeholders (my.jpg, PROGRAM.json, [options], /models/...) are someone else's files and are skipped.
Also: the README starts with the two set-up commands, and every local link and picture resolves.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GENERATED = {ROOT / "docs" / "gallery.md"}  # its commands are what `make gallery` runs
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.S | re.M)
EXIT = re.compile(r"#\s*exit (\d)\b")
# someone else's files or values: a block that names one of these is an illustration, not a command to run
PLACEHOLDER = re.compile(r"my\.jpg|photo\.jpg|\bmy_|\b[A-Z]{3,}\b|\[|\.\.\.|/models/|https?:|\bhf:|<\s*\w+\.txt|\|")
LONG_RUNNING = ("banana serve",)  # a server does not exit on its own
# lines that load the planner model (an instruction with no letters is refused before it loads)
PLANNER = re.compile(r'^banana (edit \S+ "[^"]*[A-Za-z][^"]*[A-Za-z]|plan|chat)\b|"instruction"', re.M)


def blocks() -> list[tuple[str, str]]:
    """(id, script) for every runnable block: commands that touch only samples and committed examples."""
    found = []
    for page in PAGES:
        if page in GENERATED:
            continue
        text = page.read_text()
        for n, m in enumerate(FENCE.finditer(text)):
            if m.group(1) not in ("", "sh", "bash"):
                continue
            lines = m.group(2).splitlines()
            if any(line.startswith("$ ") for line in lines):
                lines = [line[2:] for line in lines if line.startswith("$ ")]
            commands = [line for line in lines if line.startswith("banana ")]
            if not commands or any(PLACEHOLDER.search(line.split("  #")[0]) or line.startswith(LONG_RUNNING) for line in commands):
                continue
            found.append((f"{page.relative_to(ROOT)}#{n}", "\n".join(lines)))
    return found


def checked(line: str) -> str:
    """A ``banana`` line that fails the script unless it exits with its documented code."""
    if not line.startswith("banana "):
        return line
    command, _, comment = line.partition("  #")
    m = EXIT.search("#" + comment)
    want = m.group(1) if m else "0"
    say = shlex.quote(f"the docs say exit {want}: {command.strip()}")
    return f"rc=0; {command.strip()} || rc=$?; if [ $rc != {want} ]; then echo exited $rc, {say} >&2; exit 97; fi"


BLOCKS = blocks()


def run_block(script: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "BANANA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    body = "\n".join(checked(line) for line in script.splitlines())
    proc = subprocess.run(["bash", "-e", "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script}\n--- stderr:\n{proc.stderr[-3000:]}\n--- stdout:\n{proc.stdout[-2000:]}"


def test_some_blocks_run() -> None:
    """The extraction finds the README's sample commands (a regex change must not silently skip them all)."""
    ids = [i for i, _ in BLOCKS]
    assert any(i.startswith("README.md") for i in ids) and any(i.startswith("docs/programs.md") for i in ids), ids


@pytest.mark.parametrize("script", [s for _, s in BLOCKS if not PLANNER.search(s)],
                         ids=[i for i, s in BLOCKS if not PLANNER.search(s)])
def test_documented_commands(script: str, tmp_path: Path) -> None:
    run_block(script, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("script", [s for _, s in BLOCKS if PLANNER.search(s)], ids=[i for i, s in BLOCKS if PLANNER.search(s)])
def test_documented_planner_commands(script: str, tmp_path: Path) -> None:
    run_block(script, tmp_path)


def test_readme_starts_with_the_two_setup_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[1] == "" and lines[2] == "```"
    assert [line.split()[:2] for line in lines[3:5]] == [["make", "demo"], ["make", "test"]] and lines[5] == "```"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


LINK = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_local_links_resolve(page: Path) -> None:
    broken = []
    for m in LINK.finditer(FENCE.sub("", page.read_text())):
        target = m.group(1) or m.group(2)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md":
            anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", FENCE.sub("", file.read_text()), re.M)}
            if anchor not in anchors:
                broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.name}: {broken}"


def test_gallery_block_lists_pictures_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("<!-- gallery:start -->"):text.index("<!-- gallery:end -->")]
    pictures = re.findall(r'src="(docs/gallery/[^"]+\.jpg)"', block)
    assert 6 <= len(pictures) <= 8 and all((ROOT / p).is_file() for p in pictures)
    assert sum((ROOT / p).stat().st_size for p in pictures) < 600_000  # small: a few hundred KB in all
