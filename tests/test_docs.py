"""The documentation cannot go stale unseen: generated pages match what `connector docs`
writes now, every relative link resolves, and the reference tables cover what the code has.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from connector_core import Engine, docgen, errors
from connector_core.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])
PROJECT = "connector-framework"  # the distribution whose capabilities and commands the pages document


@pytest.fixture(scope="module")
def engine():
    with Engine() as engine:
        yield engine


def test_the_capability_reference_is_what_connector_docs_writes(engine):
    expected = docgen.capability_reference(engine, distributions=[PROJECT])
    assert (DOCS / docgen.CAPABILITIES_PAGE).read_text("utf-8") == expected, (
        "docs/capabilities.md is stale: run `connector docs --distribution connector-framework`"
    )


def test_the_cli_reference_is_what_connector_docs_writes(engine):
    committed = (DOCS / docgen.CLI_PAGE).read_text("utf-8")
    written_with = re.search(r"Python (\d+\.\d+)'s argparse", committed).group(1)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if written_with != running:
        pytest.skip(f"docs/cli.md was written with Python {written_with}'s argparse, whose help layout differs from {running}'s")
    assert committed == docgen.cli_reference(engine, distributions=[PROJECT]), (
        "docs/cli.md is stale: run `connector docs --distribution connector-framework`"
    )


def test_the_cli_reference_has_every_command_and_option(engine):
    from connector_core.cli import build_parser

    page = (DOCS / docgen.CLI_PAGE).read_text("utf-8")
    for name, parser in docgen._commands(build_parser(engine, distributions=[PROJECT])):
        assert f"## `{name}`" in page
        for action in parser._actions:
            for option in action.option_strings:
                assert option in page, f"{name} {option} is not in docs/cli.md"


def test_connector_docs_writes_checks_and_filters(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["docs", "--output", str(tmp_path), "--check"], stdout=out, stderr=err) == 1
    assert json.loads(out.getvalue())["stale"] == [str(tmp_path / "capabilities.md"), str(tmp_path / "cli.md")]
    assert main(["docs", "--output", str(tmp_path), "--connector", "mparticle"], stdout=io.StringIO(), stderr=err) == 0
    page = (tmp_path / "capabilities.md").read_text("utf-8")
    assert "### `mparticle.uploadEventBatch`: Upload an event batch" in page and "**Errors**" in page
    assert "## `connector upload-events`" in (tmp_path / "cli.md").read_text("utf-8")
    assert main(["docs", "--output", str(tmp_path), "--connector", "mparticle", "--check"], stdout=io.StringIO(), stderr=err) == 0
    assert main(["docs", "--output", str(tmp_path), "--connector", "nosuch"], stdout=io.StringIO(), stderr=err) == 0
    assert "mparticle" not in (tmp_path / "capabilities.md").read_text("utf-8")
    blocked = tmp_path / "file"
    blocked.write_text("")
    err = io.StringIO()
    assert main(["docs", "--output", str(blocked / "sub")], stdout=io.StringIO(), stderr=err) == 3
    assert json.loads(err.getvalue())["code"] == "invalid_input"


def _anchors(text: str) -> set[str]:
    return {docgen._anchor(heading) for heading in re.findall(r"^#+ (.+)$", _outside_fences(text), re.M)}


def _outside_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = _outside_fences(page.read_text("utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in _anchors(linked.read_text("utf-8")), f"{page.name}: no heading for #{anchor} in {linked.name}"


def test_the_errors_table_has_every_category_exit_code_and_error_class():
    text = (DOCS / "hosts.md").read_text("utf-8")
    table = {row[0].strip("` "): row for row in (line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| `"))}
    for category, code in errors.EXIT_CODES.items():
        assert category in table, f"category {category} is not in the errors table of docs/hosts.md"
        assert table[category][-1].strip() == str(code), category
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.ConnectorError)]
    for cls in classes:
        assert f"`{cls.__name__}`" in text, cls.__name__
        assert f"`{cls.code}`" in table[cls.category][2], f"{cls.code} is not in the {cls.category} row"


@pytest.mark.parametrize("kind", ["connector", "capability"])
def test_the_manifest_reference_has_every_field_of_the_meta_schema(kind):
    schema = json.loads((ROOT / "connector_core" / "schemas" / f"{kind}.schema.json").read_text("utf-8"))
    text = (DOCS / "plugins.md").read_text("utf-8")
    section = text[text.index(f"### {kind.capitalize()} manifest"):]
    for field in schema["properties"]:
        assert f"`{field}`" in section, f"{kind} manifest field {field} is not in docs/plugins.md"
