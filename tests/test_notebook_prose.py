"""Numbers in the notebooks' prose are printed by a cell, or checked here (issue 24).

The rule: a number in the prose that a cell computes is either printed by that cell and referred to
("the last line shows ..."), or checked by a test against the cell's output. This file finds the
numeric *claims* in every markdown cell (percentages, "N times", parameter counts, durations, file
sizes, metric values) and accepts one only when the table ``CLAIMS`` lists it with how it is kept true:

- ``Printed(cell, pattern)``: the number is in the stored output of a checked code cell of the same
  notebook (tagged ``nbval-check-output``). ``tests/test_notebooks.py`` runs every solved notebook
  under the smoke profile with nbval, which compares those outputs with the run; so the prose is tied
  to a real run without executing any notebook a second time.
- ``Computed(fn)``: recomputed here from the library (the cpu profile's configuration where a
  profile matters).
- ``Measured(row, column)``: a result quoted from a table of ``docs/measured.md`` (the benchmark
  scripts' last run, with its date).
- ``Fact(why, code)``: no cell computes it (a definition, a worked example, a property of a data set).
  ``code``, when given, is the notebook code that the claim describes; it must still be there.

A claim matches when it agrees with the value to the claim's own precision ("2.2 M" for 2,223,872).
Anything else a cell computes goes into the prose as a reference to the output, not as a number.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from workshop import notebook as nbtools

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MEASURED = ROOT / "docs" / "measured.md"

NUM = r"\d+(?:[.,]\d+)*"  # 62.5, 6,628,945
DEC = r"\d*\.\d+"  # a metric value: 0.60, .5
CLAIM_PATTERNS = {
    "percentage": rf"{NUM}\s?%",
    "ratio": rf"{NUM}\s?(?:times\b|×|x (?:the|as)\b)",
    "count": rf"{NUM}\s?(?:M|k|million|thousand|billion)\b|{NUM}\s(?:parameters|GFLOPs?|FLOPs?)\b",
    "duration": rf"{NUM}\s?(?:ms|s|sec|seconds?|min|minutes?|h|hours?)\b",
    "size": rf"{NUM}\s?[KMGT]i?B\b",
    "metric": rf"\b(?:m?IoU|Dice|mAP\S*|accuracy|F1|precision|recall|loss|box|scores?)\s(?:of\s)?{DEC}",
}
CLAIM = re.compile("|".join(f"(?:{p})" for p in CLAIM_PATTERNS.values()))


# ------------------------------------------------------------------ how a claim is kept true


@dataclass(frozen=True)
class Printed:
    """The number is printed by the checked code cell whose source contains ``cell``; ``pattern``'s group finds it."""

    cell: str
    pattern: str


@dataclass(frozen=True)
class Computed:
    """The number is what ``fn`` computes from the library."""

    fn: Callable[[], float]


@dataclass(frozen=True)
class Measured:
    """The number is the first number in ``column`` of the row of a docs/measured.md table that starts with ``row``."""

    row: str
    column: str


@dataclass(frozen=True)
class Fact:
    """No cell computes the number: ``why``; ``code`` (optional) is the notebook code that the claim describes."""

    why: str
    code: str | None = None


@functools.lru_cache(maxsize=None)
def encoder_millions(encoder: str) -> float:
    """Parameters of an smp encoder (random weights, no download), in millions."""
    from workshop.models import count_parameters, create_model

    return count_parameters(create_model("unet", encoder, encoder_weights=None).encoder) / 1e6


def weight_ratio(power: float) -> float:
    """Weight of a class with 1 % of the pixels over one with (nearly) all of them, uncapped."""
    from workshop.multiclass import inverse_frequency_weights

    rare, common = inverse_frequency_weights([1, 100], power=power, max_weight=None)
    return rare / common


def coco_deeplab_megabytes() -> float:
    from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights

    return DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.meta["_file_size"]


def max_overhead_percent() -> float:
    from workshop.recipe import MAX_OVERHEAD_SHARE

    return 100 * MAX_OVERHEAD_SHARE


# (notebook number, the claim as the finder reports it) -> how it is kept true.
CLAIMS: dict[tuple[str, str], Printed | Computed | Measured | Fact] = {
    ("05", "161 MB"): Computed(coco_deeplab_megabytes),
    ("05", "2.2 M"): Computed(lambda: encoder_millions("mobilenet_v2")),
    ("05", "21 M"): Computed(lambda: encoder_millions("resnet34")),
    ("05", "4 M"): Computed(lambda: encoder_millions("efficientnet-b0")),
    ("05", "3.3 M"): Computed(lambda: encoder_millions("mit_b0")),
    ("06", "10 %"): Computed(max_overhead_percent),
    ("08", "1.5 times"): Fact("the new images' size, set in the code", code="image_size * 3 // 2"),
    ("09", "1 %"): Fact("the rare class of the worked example of class weights"),
    ("09", "100 %"): Fact("the common class of the worked example of class weights"),
    ("09", "10 times"): Computed(lambda: weight_ratio(0.5)),
    ("09", "100 times"): Computed(lambda: weight_ratio(1.0)),
    ("09", "30 %"): Fact("how to read one cell of the normalised confusion matrix (0.30), an example"),
    ("10", "IoU 0.5"): Fact("the IoU threshold that defines mAP@.5"),
    ("10", "mAP@[.5:.95] 0.52"): Measured("Penn-Fudan, 15 min", "mask mAP"),
    ("10", "mAP@.5 0.89"): Measured("Penn-Fudan, 15 min", "mask @.5"),
    ("10", "box 0.59"): Measured("Penn-Fudan, 15 min", "box mAP"),
    ("10", "14.6 minutes"): Measured("Penn-Fudan, 15 min", "train command (wall)"),
    ("10", "mAP 0.019"): Measured("kudzu (VIA), 10 min", "mask mAP"),
    ("10", "mAP@.5 0.072"): Measured("kudzu (VIA), 10 min", "mask @.5"),
    ("10", "10 minutes"): Measured("kudzu (VIA), 10 min", "data"),
}


# ------------------------------------------------------------------ finding and checking claims


def prose(markdown: str) -> str:
    """The prose of a markdown cell: code blocks, code spans and the **Time:** line (checked against the README) left out."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "`code`", text)
    lines = [line for line in text.splitlines() if not line.startswith("**Time:**") and not line.startswith("    ")]
    return "\n".join(lines)


def find_claims(markdown: str) -> list[str]:
    """The numeric claims of one markdown cell, whitespace collapsed."""
    return [re.sub(r"\s+", " ", m.group(0)) for m in CLAIM.finditer(prose(markdown))]


def notebook_claims(nb: dict) -> list[tuple[int, str]]:
    """(cell index, claim) for every claim in the notebook's markdown cells."""
    return [(i, claim) for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "markdown"
            for claim in find_claims(nbtools.cell_source(cell))]


def claimed_value(claim: str) -> tuple[float, int]:
    """The claim's number (its last one: 'mAP@.5 0.88' -> 0.88) and its decimals."""
    text = re.findall(NUM, claim)[-1].replace(",", "")
    return float(text), len(text.partition(".")[2])


def agrees(claim: str, value: float) -> bool:
    """True when ``value`` rounds to the claim's number at the claim's precision."""
    number, decimals = claimed_value(claim)
    return abs(value - number) <= 0.5 * 10.0 ** -decimals + 1e-9


def first_number(text: str) -> float:
    found = re.search(r"\d+(?:\.\d+)?", text)
    if found is None:
        raise AssertionError(f"no number in {text!r}")
    return float(found.group(0))


def measured_value(row: str, column: str, markdown: str) -> float:
    """The first number of ``column`` in the table row of ``markdown`` that starts with ``row``."""
    header: list[str] = []
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
        elif cells[0].startswith(row):
            if column not in header:
                raise AssertionError(f"docs/measured.md: the table of {row!r} has no column {column!r}: {header}")
            return first_number(cells[header.index(column)].replace("*", ""))
    raise AssertionError(f"docs/measured.md: no table row starts with {row!r}")


def code_cell_with(nb: dict, marker: str) -> dict:
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and marker in nbtools.cell_source(c)]
    if len(cells) != 1:
        raise AssertionError(f"{len(cells)} code cells contain {marker!r} (need exactly one)")
    return cells[0]


def check_claim(claim: str, how: Printed | Computed | Measured | Fact, nb: dict) -> str | None:
    """None when the claim is kept true by ``how``, else what is wrong."""
    if isinstance(how, Printed):
        cell = code_cell_with(nb, how.cell)
        if nbtools.CHECK_TAG not in nbtools.tags(cell):
            return f"the cell with {how.cell!r} is not tagged {nbtools.CHECK_TAG}: nbval does not check its output"
        text = "".join("".join(o.get("text", "")) for o in cell["outputs"] if o.get("output_type") == "stream")
        found = re.search(how.pattern, text)
        if found is None:
            return f"the output of the cell with {how.cell!r} has nothing matching {how.pattern!r}: {text!r}"
        value = float(found.group(1).replace(",", ""))
        return None if agrees(claim, value) else f"{claim!r} but the cell prints {found.group(1)}"
    if isinstance(how, Computed):
        value = how.fn()
        return None if agrees(claim, value) else f"{claim!r} but the library gives {value:.4g}"
    if isinstance(how, Measured):
        value = measured_value(how.row, how.column, MEASURED.read_text(encoding="utf-8"))
        return None if agrees(claim, value) else f"{claim!r} but docs/measured.md says {value:g} ({how.row}, {how.column})"
    if how.code is not None and not any(how.code in nbtools.cell_source(c) for c in nb["cells"] if c["cell_type"] == "code"):
        return f"{claim!r} describes the code {how.code!r}, which is no longer in the notebook"
    return None


def unlisted_claims(nb: dict, number: str) -> list[str]:
    """The claims of notebook ``number`` that CLAIMS does not cover: each entry covers one sentence,
    so a claim said again elsewhere in the notebook (where it may mean something else) is reported."""
    found = notebook_claims(nb)
    seen: dict[str, int] = {}
    out = []
    for i, claim in found:
        seen[claim] = seen.get(claim, 0) + 1
        if (number, claim) not in CLAIMS:
            out.append(f"cell {i}: {claim!r}")
        elif seen[claim] > 1:
            out.append(f"cell {i}: {claim!r} again (CLAIMS lists it for its first place only)")
    return out


# ------------------------------------------------------------------ the tests


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_numeric_claim_in_the_prose_is_listed(path: Path) -> None:
    missing = unlisted_claims(nbtools.read_notebook(path), path.name[:2])
    assert not missing, (
        f"{path.name}: numbers in the prose that no test keeps true: {missing}. Refer to the output instead "
        "('the last line shows ...'), or list the claim in CLAIMS of tests/test_notebook_prose.py with how it is checked.")


@pytest.mark.parametrize(("key", "how"), list(CLAIMS.items()), ids=[f"{n}:{c}" for n, c in CLAIMS])
def test_every_listed_claim_is_in_its_notebook_and_true(key: tuple[str, str], how) -> None:
    number, claim = key
    path = next(p for p in NOTEBOOKS if p.name.startswith(number))
    nb = nbtools.read_notebook(path)
    assert claim in [c for _, c in notebook_claims(nb)], f"{path.name} no longer says {claim!r}: remove it from CLAIMS"
    assert check_claim(claim, how, nb) is None, f"{path.name}: {check_claim(claim, how, nb)}"


@pytest.mark.parametrize(("text", "claims"), [
    ("So the `gpu` recipe is about 40 times the work of the `cpu` one", ["40 times"]),  # notebook 00 before issue 24
    ('06 trains a "light decoder, 4.1 M parameters"', ["4.1 M"]),
    ("On 2 CPU cores it reached\nmIoU 0.60 (pixel accuracy 0.89); thin classes stay low", ["mIoU 0.60", "accuracy 0.89"]),
    ("road 9.6 % and building 9.7 %", ["9.6 %", "9.7 %"]),
    ("2 workers were faster (0.50 s against 0.67 s)", ["0.50 s", "0.67 s"]),
    ("with about 10 % building pixels, predicting background everywhere scores 0.9", ["10 %", "scores 0.9"]),
    ("62.5x the work, 6,628,945 parameters, 1.67 GFLOP, 2.9 GiB", ["62.5x the", "6,628,945 parameters", "1.67 GFLOP", "2.9 GiB"]),
])
def test_the_finder_sees_the_claims_issue_24_found(text: str, claims: list[str]) -> None:
    assert find_claims(text) == claims


@pytest.mark.parametrize("text", [
    "**Time:** about 30 minutes.",
    "holds images and binary masks: 1 = building, 0 = everything else (notebook 05, section 3).",
    "`cfg.data.batch_size = 8` and `A.Affine(rotate=(25, 25))`, a rotation of 45°",
    "Ten items in batches of 4 leave a remainder of 2.",
    "```python\nprint(f'{0.5:.0%}')  # 50 %\n```",
    "    workshop train --config configs/camvid.yaml --max-minutes 10",
    "the threshold (0.5); an empty mask at a loss of 0; `Dice = 2 IoU / (1 + IoU)`",
])
def test_the_finder_leaves_plain_prose_and_code_alone(text: str) -> None:
    assert find_claims(text) == []


def test_notebook_00_as_it_was_fails_and_a_printed_entry_catches_the_wrong_number() -> None:
    """Issue 24's first row: cell 15 said 'about 40 times' where cell 14 prints 'gpu 62.500 x'."""
    nb = nbtools.read_notebook(ROOT / "notebooks" / "00_setup.ipynb")
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown" and "is how many times the work" in nbtools.cell_source(c))
    nbtools.set_cell_source(cell, "So the `gpu` recipe is about 40 times the work of the `cpu` one (more with its bigger encoder):\n"
                                  "minutes on a T4, hours on a laptop CPU. That is why the profile follows the hardware.")
    assert unlisted_claims(nb, "00") == [f"cell {nb['cells'].index(cell)}: '40 times'"]
    printed = Printed("def training_pixels", r"gpu\s+([\d.]+) x the work")
    assert check_claim("40 times", printed, nb) == "'40 times' but the cell prints 62.500"
    assert check_claim("62.5 times", printed, nb) is None
    assert check_claim("63 times", printed, nb) is None  # "about 63": right to the claim's precision
    assert "is not tagged" in check_claim("62.5 times", Printed("cfg = start(seed=0)", r"(\d+)"), nb)


def test_the_other_kinds_catch_a_wrong_number() -> None:
    nb = nbtools.read_notebook(ROOT / "notebooks" / "08_inference.ipynb")
    assert check_claim("11 %", Computed(max_overhead_percent), nb) == "'11 %' but the library gives 10"
    assert "docs/measured.md says 0.518" in check_claim("mAP 0.55", Measured("Penn-Fudan, 15 min", "mask mAP"), nb)
    with pytest.raises(AssertionError, match="no column"):
        check_claim("mAP 0.52", Measured("Penn-Fudan, 15 min", "mask mAP@.99"), nb)
    assert "no longer in the notebook" in check_claim("2 times", Fact("the size", code="image_size * 2"), nb)
    assert check_claim("1.5 times", CLAIMS[("08", "1.5 times")], nb) is None


def test_a_listed_claim_said_a_second_time_is_reported() -> None:
    nb = nbtools.read_notebook(ROOT / "notebooks" / "06_train_val_functions.ipynb")
    assert unlisted_claims(nb, "06") == []
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["With about 10 % building pixels ..."]})
    assert unlisted_claims(nb, "06") == [f"cell {len(nb['cells']) - 1}: '10 %' again (CLAIMS lists it for its first place only)"]


def test_agrees_uses_the_precision_of_the_claim() -> None:
    assert agrees("2.2 M", 2.223872) and not agrees("2.3 M", 2.223872)
    assert agrees("mIoU 0.60", 0.604) and not agrees("mIoU 0.60", 0.614)
    assert agrees("21 M", 21.28) and not agrees("21 M", 21.6)
    assert claimed_value("mAP@[.5:.95] 0.52") == (0.52, 2) and claimed_value("6,628,945 parameters") == (6628945.0, 0)
