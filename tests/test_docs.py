"""The documentation site (issue 24, item 7): the result pages are generated from the committed result files
by ``tools/make_docs.py`` and match them, the site builds with ``mkdocs build --strict``, and the README
stays short and in step with the docs' walk-through."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "tools" / "make_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_docs = _make_docs()


def _page(name: str) -> str:
    return (ROOT / "docs" / "results" / name).read_text(encoding="utf-8")


def _row(page: str, first_cell: str) -> str:
    """The first table row of ``page`` whose first cell is ``first_cell``."""
    for line in page.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return line
    raise AssertionError(f"no table row for {first_cell!r}")


def test_generated_pages_match_the_result_files():
    assert make_docs.stale(ROOT) == [], "run: python tools/make_docs.py"
    for name in make_docs.PAGES:
        assert _page(name).startswith(make_docs.MARK)


def test_check_mode_fails_when_a_result_file_changes(tmp_path):
    for rel in list(make_docs.FIGURES.values()) + [
        "checkpoints/summary.json",
        "checkpoints/results/results.md",
        "checkpoints/results/results.json",
        "checkpoints/results/suite.md",
        "checkpoints/study/study.md",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert make_docs.main(["--root", str(tmp_path)]) == 0
    assert make_docs.main(["--root", str(tmp_path), "--check"]) == 0
    suite = tmp_path / "checkpoints/results/suite.md"
    suite.write_text(suite.read_text(encoding="utf-8") + "\nOne more line of results.\n", encoding="utf-8")
    assert make_docs.main(["--root", str(tmp_path), "--check"]) == 1
    assert make_docs.stale(tmp_path) == [Path("docs/results/suite.md")]
    (tmp_path / "docs/results/old.md").write_text(make_docs.MARK + "\n", encoding="utf-8")  # no longer generated
    assert Path("docs/results/old.md") in make_docs.stale(tmp_path)


def test_the_readme_study_block_is_the_reports_failures_and_claims(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(make_docs.README_BEGIN, 1)[1].split(make_docs.README_END, 1)[0]
    study = (ROOT / "checkpoints/study/study.md").read_text(encoding="utf-8")
    claims = make_docs._section(study, "#### The paper's three claims").strip()
    failures = make_docs._section(study, "#### Training failures").strip()
    assert claims and failures and claims in block and failures in block
    assert "| claim | level |" in block and "| family | runs | failed |" in block
    # a README without the markers is an error naming the file, not a silently dropped block
    (tmp_path / "checkpoints/study").mkdir(parents=True)
    shutil.copy(ROOT / "checkpoints/study/study.md", tmp_path / "checkpoints/study/study.md")
    (tmp_path / "README.md").write_text("# drive\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="README.md: the study block's markers"):
        make_docs.readme_text(tmp_path)
    # the block is replaced, not appended to, and the text around it is kept
    (tmp_path / "README.md").write_text(
        f"# drive\nbefore\n{make_docs.README_BEGIN}\nold numbers\n{make_docs.README_END}\nafter\n", encoding="utf-8"
    )
    text = make_docs.readme_text(tmp_path)
    assert "old numbers" not in text and text.startswith("# drive\nbefore\n") and text.endswith("\nafter\n")
    assert claims in text
    # the report's at-a-glance tables go in when the report has them (reports before them do not)
    glance = make_docs._section(study, "#### At a glance").strip()
    assert ("**At a glance.** " + glance in block) if glance else "**At a glance.**" not in block
    # a report with at-a-glance tables and failed runs: the tables go in, and the verdict counts without the
    # failed runs follow the claims (their tables stay in the report)
    (tmp_path / "checkpoints/study/study.md").write_text(
        "## Robustness study\n\nWhat ran.\n\n#### Training failures\n\n| family | failed |\n\n"
        "#### At a glance\n\n| family | off-road per km, σ²=0.1 |\n|---|---|\n| ncp19 | 1.5 [1, 2] |\n\n"
        "#### The paper's three claims\n\n| claim | level |\n|---|---|\n\n- Crashes: y\n\n"
        "#### The paper's three claims without the failed runs\n\n| claim | level |\n|---|---|\n\n- Crashes: x\n",
        encoding="utf-8",
    )
    text = make_docs.readme_text(tmp_path)
    assert "**At a glance.** | family | off-road per km, σ²=0.1 |" in text
    assert "**Without the failed runs** (every table is in the report):\n\n- Crashes: x\n" in text
    assert text.count("| claim | level |") == 1  # the claims table without the failed runs stays in the report


def test_closed_loop_numbers_are_those_of_results_json():
    results = json.loads((ROOT / "checkpoints/results/results.json").read_text(encoding="utf-8"))
    page = _page("simulator.md")
    for model, figures in results["models"].items():
        cells = _row(page, model).split(" | ")
        assert f"{figures['clean']['mean_abs_lateral_m']:.3g}" in cells
        assert f"{figures['clean']['distance_m'] / 1000:.3g}" in cells


def test_suite_numbers_are_those_of_suite_csv():
    page = _page("suite.md")
    mean_table = page.split("**Mean |lateral| (m)**", 1)[1].split("**Max", 1)[0]
    with open(ROOT / "checkpoints/results/suite.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    drivers = [c.strip() for c in _row(mean_table, "case").strip("|").split("|")][1:]
    assert rows
    for r in rows:
        cells = [c.strip() for c in _row(mean_table, r["case"]).strip("|").split("|")][1:]
        shown = float(cells[drivers.index(r["driver"])])  # 3 decimals; the CSV keeps 4 significant digits
        assert abs(shown - float(r["mean_abs_lateral_m"])) <= 6e-4, (r["case"], r["driver"])


def test_shipped_models_table_is_summary_json():
    summary = json.loads((ROOT / "checkpoints/summary.json").read_text(encoding="utf-8"))
    page = _page("shipped.md")
    for model, s in summary["models"].items():
        row = _row(page, model)
        assert f"| {s['parameters']:,} |" in row and f"| {s['best_val_loss']:.3g} |" in row


def test_readme_is_short_and_its_walkthrough_is_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 260
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    walk = [b for b in blocks if "drive import" in b and "drive simulate" in b]
    assert walk, "the README's walk-through block"
    assert walk[0] in (ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8")


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs not installed (pip install -c constraints.txt -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material not installed (the docs extra)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "-f",
            "tools/mkdocs.yml",
            "--strict",
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
