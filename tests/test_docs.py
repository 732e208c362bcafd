"""The README and docs/: links that lead somewhere, commands the CLI accepts, config keys that exist.

The README is the front door (short, with the two commands); the guides live in ``docs/``. These
tests keep both true to the code: every relative link points to a file (and its ``#anchor`` to a
heading there), every ``workshop ...`` line of a code block parses with the real argument parser,
every config file it names exists, every YAML block loads as a config, and every config key written
as ``section.key`` is one ``workshop/config.py`` (or the instance section) defines.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest
import yaml

from workshop import cli, launch
from workshop import notebook as nbtools
from workshop.config import Config, load_config
from workshop.instance.runs import INSTANCE_KEYS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 180

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`\n]+`")
FILE_SUFFIXES = {"csv", "json", "yaml", "yml", "png", "jpg", "txt", "pt", "py", "md", "xml", "zip"}


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text outside fenced code blocks (where a Markdown link renders as a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of a Markdown file (a repeated heading gets -1, -2 ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_slug_follows_github_on_hand_written_headings() -> None:
    assert slug("The recipe and `--max-minutes`") == "the-recipe-and---max-minutes"
    assert slug("Instance segmentation (Mask R-CNN) from the command line") == \
        "instance-segmentation-mask-r-cnn-from-the-command-line"
    assert slug("The notebooks' CI") == "the-notebooks-ci"


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/ (limit {README_MAX_LINES})"
    # the two commands, exactly as .ci/run and the set-up rely on them
    assert "bash scripts/setup.sh && .venv/bin/workshop quickstart" in text
    test_command = "bash scripts/setup.sh --dev && .venv/bin/python -m pytest"
    assert test_command in text
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for heading in ("## The two commands", "## Which machine", "## Opening the notebooks", "## Schedule"):
        assert heading in lines, f"README.md lost its section {heading!r}"
    linked = {Path(t.split("#")[0]).name for t in LINK.findall(prose(text)) if t.startswith("docs/")}
    unlinked = sorted(p.name for p in DOCS if p.name not in linked)
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_relative_link_points_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not checked here
            continue
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading '#{anchor}' in {path.name} (headings: {sorted(anchors(path))})")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## Real heading\n", encoding="utf-8")
    assert anchors(tmp_path / "a.md") == {"title", "real-heading"}
    page = "see [a](a.md#real-heading), [b](b.md) and [c](a.md#no-such)\n```\n[not a link](nowhere.md)\n```\n"
    targets = LINK.findall(prose(page))
    assert targets == ["a.md#real-heading", "b.md", "a.md#no-such"]


def _command_lines(text: str) -> list[str]:
    """Every shell line of the page's code blocks, continuations joined, ``&&`` chains split."""
    out = []
    for _, body in code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.strip().lstrip("!")
            out.extend(part.strip() for part in line.split("&&") if part.strip())
    return out


def _workshop_argv(line: str) -> list[str] | None:
    """The arguments after ``workshop`` (or ``torchrun ... -m workshop``), or None for another command."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    while tokens and re.match(r"^[A-Z_]+=", tokens[0]):  # WORKSHOP_PROFILE=smoke workshop ...
        tokens = tokens[1:]
    if not tokens:
        return None
    if tokens[0] in ("workshop", ".venv/bin/workshop"):
        return tokens[1:]
    if tokens[0] == "torchrun" and "-m" in tokens[:-1]:
        i = tokens.index("-m")
        if tokens[i + 1] == "workshop":
            return tokens[i + 2:]
    return None


def _parses(argv: list[str]) -> str | None:
    """None when the real parser accepts ``argv``, else why not."""
    if argv[:1] == ["torchrun"]:
        try:
            _, argv = launch.split_arguments(argv[1:])
        except Exception as exc:  # noqa: BLE001 - the message is the finding
            return str(exc)
    try:
        cli.build_parser().parse_args(argv)
    except SystemExit as exc:
        return f"argparse exit {exc.code}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_workshop_command_in_the_docs_parses(page: Path, capsys) -> None:
    bad = []
    seen = 0
    for line in _command_lines(page.read_text(encoding="utf-8")):
        argv = _workshop_argv(line)
        if argv is None:
            continue
        seen += 1
        why = _parses(argv)
        if why:
            bad.append(f"{line!r}: {why}")
        for i, token in enumerate(argv):
            if token == "--config" and argv[i + 1].startswith("configs/") and not (ROOT / argv[i + 1]).is_file():
                bad.append(f"{line!r}: no file {argv[i + 1]}")
    capsys.readouterr()
    assert not bad, f"{page.name}: " + "\n".join(bad)
    if page.name in ("README.md", "cli.md", "own-data.md", "instructors.md", "distributed.md"):
        assert seen, f"{page.name}: no workshop command found (the parser of this test is broken)"


def test_the_command_check_refuses_what_the_cli_refuses() -> None:
    assert _parses(["train", "--config", "a.yaml", "--max-minutes", "5"]) is None
    assert _parses(["torchrun", "--nproc_per_node", "4", "train", "--config", "a.yaml"]) is None
    assert _parses(["train", "--epochs", "3"]) is not None  # no such flag
    assert _parses(["evaluate"]) is not None  # RUN is required
    assert _parses(["data", "fetch", "camvid"]) is not None  # no such data command
    assert _workshop_argv("torchrun --nnodes 2 -m workshop train --config my.yaml") == ["train", "--config", "my.yaml"]
    assert _workshop_argv("WORKSHOP_PROFILE=smoke workshop quickstart  # a comment") == ["quickstart"]
    assert _workshop_argv("python benchmarks/quickstart.py") is None


class _Parsed(Exception):
    pass


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_notebook_tool_command_parses(page: Path, monkeypatch, capsys) -> None:
    def stop(path):
        raise _Parsed(path)

    monkeypatch.setattr(nbtools, "read_notebook", stop)  # parse the arguments, touch no notebook
    for line in _command_lines(page.read_text(encoding="utf-8")):
        tokens = shlex.split(line, comments=True)
        while tokens and re.match(r"^[A-Z_]+=", tokens[0]):
            tokens = tokens[1:]
        if tokens[:3] != ["python", "-m", "workshop.notebook"]:
            continue
        with pytest.raises(_Parsed):
            nbtools.main(tokens[3:])
    capsys.readouterr()


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_script_the_docs_run_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    scripts = set(re.findall(r"python (benchmarks/[\w/]+\.py)", text)) | set(re.findall(r"bash (scripts/[\w/]+\.sh)", text))
    missing = sorted(s for s in scripts if not (ROOT / s).is_file())
    assert not missing, f"{page.name} runs scripts that are not there: {missing}"


def _known_keys() -> set[str]:
    keys = {f"instance.{k}" for k in INSTANCE_KEYS}
    cfg = Config()
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if dataclasses.is_dataclass(value):
            keys |= {f"{section.name}.{f.name}" for f in dataclasses.fields(value)}
    return keys


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_config_key_the_docs_name_exists(page: Path) -> None:
    known = _known_keys()
    assert {"data.val", "train.max_minutes", "model.decoder", "augment.view", "instance.min_stage_steps"} <= known
    text = page.read_text(encoding="utf-8")
    named = set()
    for code in INLINE_CODE.findall(text) + [body for _, body in code_blocks(text)]:
        named |= set(re.findall(r"(?<![\w./])((?:data|augment|model|train|instance)\.[a-z_0-9]+)(?![\w(])", code))
    files = {n for n in named if n.rsplit(".", 1)[1] in FILE_SUFFIXES}  # train.csv is a file name
    unknown = sorted(named - files - known)
    assert not unknown, f"{page.name} names config keys that do not exist: {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_yaml_block_is_a_valid_config(page: Path, tmp_path: Path) -> None:
    for i, (lang, body) in enumerate(code_blocks(page.read_text(encoding="utf-8"))):
        if lang not in ("yaml", "yml"):
            continue
        values = yaml.safe_load(body)
        path = tmp_path / f"block{i}.yaml"
        path.write_text(body, encoding="utf-8")
        if "instance" in values or "stages" in values:
            continue  # checked by the instance loader's own tests
        load_config(path, profile="smoke")  # raises on an unknown key or a bad value
