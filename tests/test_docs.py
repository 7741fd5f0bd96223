"""The README and the documentation site say what is true of the code: the README says what
projbench is before how to install it, stays short and links only to pages that exist; the docs
explain every column the report tables show, document every hook, study preset, study-file key,
report format, public name, environment variable and package module, and speak only of the
product (no references to internal tickets or working notes). The strict
site build (`make docs`) checks links and anchors; these checks need no docs toolchain."""

from __future__ import annotations

import inspect
import re
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: what the product must not say of itself (checked in every file git tracks)
INTERNAL = re.compile(r"[Ii]ssue [0-9]|[Ii]tem [0-9]|this session|DESIGN §|the seed report|this machine")


def _page(name: str) -> str:
    return (DOCS / name).read_text()


def test_readme_says_what_before_how() -> None:
    text = README.read_text()
    assert text.index("benchmark toolkit for **random projections") < text.index("make run")
    assert "pip install -e ." in text


def test_readme_keeps_the_two_make_commands() -> None:
    text = README.read_text()
    assert "make run " in text and "make test " in text


def test_readme_is_a_front_door_not_a_notebook() -> None:
    assert len(README.read_text().splitlines()) <= 160


def test_readme_links_point_at_existing_pages() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert links, "the README links into the documentation"
    for link in links:
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f": {page.name}" in nav, f"docs/{page.name} is not in the nav of mkdocs.yml"


def _tracked_text_files() -> list[Path]:
    """Every file git tracks in the repository (code, tests, presets, benchmarks, docs, results),
    except this file, which holds the pattern; the README and docs when git is not there."""
    import subprocess

    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [README, *sorted(DOCS.glob("*.md"))]
    paths = [ROOT / name for name in listed.decode().split("\0") if name]
    return [p for p in paths if p.is_file() and p.resolve() != Path(__file__).resolve()]


def test_the_product_speaks_only_of_itself() -> None:
    found = []
    for path in _tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # images and other binary files
        found += [f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}"
                  for n, line in enumerate(text.splitlines(), 1) if INTERNAL.search(line)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("suite", ["distortion", "speed", "memory", "accuracy"])
def test_docs_explain_every_table_column(suite) -> None:
    from projbench.manager import get_registry

    text = _page("file-formats.md")
    section = text[text.index("| suite | column | meaning |"):]
    section = section[:section.index("\n\n")]
    for header, _key in get_registry("suites").get(suite).table_columns:
        assert header.replace("|", "\\|") in section, f"docs do not explain {suite} column {header!r}"


def test_every_hook_is_documented() -> None:
    from projbench import hookspecs

    hooks = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("projbench_")}
    documented = set(re.findall(r"^::: projbench\.hookspecs\.(projbench_\w+)$", _page("plugins.md"), re.M))
    assert documented == hooks


def test_every_preset_is_in_the_preset_table() -> None:
    folder = resources.files("projbench.study") / "presets"
    presets = {p.name[:-len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml")}
    text = _page("studies.md")
    table = text[text.index("| preset |"):]
    table = table[:table.index("\n\n")]
    listed = set(re.findall(r"`([\w-]+)`", "\n".join(
        row.split("|")[1] for row in table.splitlines()[2:])))
    assert listed == presets


def test_every_public_name_is_in_the_api_page() -> None:
    import projbench

    text = _page("api.md")
    missing = [name for name in projbench.__all__ if not re.search(rf"\b{re.escape(name)}\b", text)]
    assert not missing, f"docs/api.md does not mention projbench.{', projbench.'.join(missing)}"


def test_every_environment_variable_is_in_the_cli_page() -> None:
    used = {m for path in (ROOT / "projbench").rglob("*.py")
            for m in re.findall(r"\bPROJBENCH_[A-Z_]+\b", path.read_text())}
    text = _page("cli.md")
    table = text[text.index("| variable | effect |"):]
    table = table[:table.index("\n\n")]
    documented = set(re.findall(r"^\| `(PROJBENCH_[A-Z_]+)`", table, re.M))
    assert used <= documented, f"cli.md's variable table lacks {sorted(used - documented)}"


def test_every_module_is_on_the_architecture_page() -> None:
    text = _page("architecture.md")
    package = ROOT / "projbench"
    modules = [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
    modules += [f"study/{p.name}" for p in (package / "study").glob("*.py") if p.name != "__init__.py"]
    missing = [m for m in modules
               if f"`{m}`" not in text and not re.search(rf"`{re.escape(m)}`,|, `{re.escape(m)}`", text)]
    assert not missing, f"docs/architecture.md does not describe {missing}"


def test_every_study_key_is_in_the_studies_page() -> None:
    from projbench.recipe import WEIGHT_DECAY_ON
    from projbench.study.spec_fields import ACCURACY_CHOICES, RECIPE_KEYS, RUN_KEYS, SEARCH_KEYS

    text = _page("studies.md")
    section = text[text.index("## The study file"):text.index("## Checks before anything runs")]
    for key in (*SEARCH_KEYS, *RECIPE_KEYS, *RUN_KEYS, *ACCURACY_CHOICES, *WEIGHT_DECAY_ON):
        assert re.search(rf"\b{re.escape(key)}\b", section), f"studies.md's study file section lacks {key!r}"


def test_every_report_format_is_documented() -> None:
    from projbench.report.study import FORMATS

    for page in ("cli.md", "studies.md"):
        text = _page(page)
        for fmt in FORMATS:
            assert re.search(rf"`{fmt}`|--format {fmt}\b", text), f"{page} does not document --format {fmt}"


def test_the_machine_is_stated_once() -> None:
    pages = {p.name: p.read_text() for p in DOCS.glob("*.md")}
    stating = [name for name, text in pages.items() if "L3 32 MiB" in text]
    assert stating == ["performance.md"]


def test_findings_keep_a_place_for_the_li_et_al_study() -> None:
    text = _page("findings.md")
    assert "## Li et al. at their recipe" in text
    assert "results/study-li2018-mnist" in text


def test_run_result_counts_unstable_cases() -> None:
    from projbench.benchmark import RunResult

    result = RunResult(path=Path("x"), records=[{"status": "ok", "stats": {"unstable": True}},
                                                {"status": "ok", "stats": {"unstable": False}}])
    assert result.unstable() == 1
