"""The documentation cannot go stale unseen: generated pages match what `connector docs`
writes now, every relative link resolves, and the reference tables cover what the code has.
"""

from __future__ import annotations

import doctest
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import attrs
import pytest

from connector_core import Engine, docgen, errors
from connector_core.cli import main
from connector_mparticle.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md"), ROOT / "examples" / "README.md"])
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


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
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


# -- every snippet runs ------------------------------------------------------------------
#
# Fenced blocks of README.md and docs/*.md in `sh`, `console`, `python` and `pycon` run in
# order, page by page, in a fresh working folder with one namespace per page (a running
# sandbox is `sandbox` in it). An HTML comment right before a block steers it:
#
#   <!-- docs-test: skip REASON -->     not run; the reason is required
#   <!-- docs-test: file NAME -->       any block: its text is written to NAME first
#   <!-- docs-test: setup               python run before the block, not shown
#   CODE
#   -->
#   <!-- docs-test: include PATH -->    the block is the file PATH of the repository, verbatim
#   <!-- docs-test: pytest [DIR...] -->  the python block is a test module: pytest runs it in a
#                                        process of its own, DIRs of the repository on sys.path
#
# `connector ...` lines run in-process through connector_core.cli.main; a line ending in `&`
# starts the command in a process of its own, stopped when the page is done; `> FILE` and
# `< FILE` redirect; `NAME=value` before a command and `export NAME=value` set variables (for
# that command, for the rest of the page); `echo $?` prints the last exit code. Output shown after a `$ ` line of a
# `console` block, and after `>>>` in a `pycon` block, is compared with what runs, with
# doctest's rules: runs of whitespace are equal, and `...` matches anything (ids, times, ports).

RUNNABLE = {"sh", "console", "python", "pycon"}
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(\w+)(.*?)-->", re.S)
MATCH_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@attrs.frozen
class Block:
    page: Path
    line: int
    lang: str
    text: str
    directive: str | None = None
    argument: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text("utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        directive = DIRECTIVE.fullmatch(before[before.rindex("<!--"):]) if before.endswith("-->") else None
        line = text.count("\n", 0, match.start()) + 1
        lang = {"bash": "sh", "shell": "sh"}.get(match.group(1), match.group(1))
        if directive:
            found.append(Block(page, line, lang, match.group(2), directive.group(1), directive.group(2).strip()))
        else:
            found.append(Block(page, line, lang, match.group(2)))
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def test_every_directive_is_known_and_every_skip_says_why():
    for block in ALL_BLOCKS:
        if block.directive == "include":
            assert (ROOT / block.argument).is_file(), f"{block.where}: {block.argument} does not exist"
        assert block.directive in (None, "skip", "file", "setup", "include", "pytest"), f"{block.where}: unknown docs-test directive {block.directive}"
        if block.directive == "skip":
            assert len(block.argument.split()) >= 3, f"{block.where}: a skipped block must say why it cannot run"
        if block.directive == "file":
            assert re.fullmatch(r"[\w.-]+", block.argument), f"{block.where}: file NAME must be a plain file name"
    assert sum(b.lang in RUNNABLE and b.directive != "skip" for b in ALL_BLOCKS) >= 15  # the collector finds them


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.directive == "include"], ids=lambda b: b.where)
def test_an_included_file_is_shown_verbatim(block):
    assert block.text == (ROOT / block.argument).read_text("utf-8"), f"{block.where} differs from {block.argument}: copy the file again"


def _run_pytest(block: Block, folder: Path) -> None:
    module = folder / f"test_snippet_{block.line}.py"
    module.write_text(block.text, "utf-8")
    paths = [str(ROOT / d) for d in block.argument.split()]
    # Only the framework's own pytest plugins load (the others of the test environment, such
    # as hypothesis's, cost seconds of start-up and are nothing a plugin author's tests have).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    plugins = [arg for ep in metadata.distribution(PROJECT).entry_points if ep.group == "pytest11" for arg in ("-p", ep.value)]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins, module.name],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{block.where}: the test module fails\n{run.stdout}{run.stderr}"


class Shell:
    """Runs the shell lines of the docs: `connector` in-process, `&` in a process of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.status = 0
        self.exported: dict[str, str] = {}  # `export NAME=value`: for every later command of the page
        self.background: list[subprocess.Popen] = []

    def run(self, line: str, where: str) -> str:
        output = []
        for command in re.split(r"\s&&\s", line):
            output.append(self._one(command.strip(), where))
            if self.status:
                break
        return "".join(output)

    def _one(self, command: str, where: str) -> str:
        words = shlex.split(command, comments=True)
        env = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # NAME=value before the command
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if not words:
            return ""
        env = {**self.exported, **env}
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            return self._command(words, command, where)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _command(self, words: list[str], command: str, where: str) -> str:
        background = words[-1] == "&"
        words = [w for w in words if w != "&"]
        stdin_path = stdout_path = None
        if "<" in words:
            i = words.index("<")
            stdin_path, words = self.folder / words[i + 1], words[:i] + words[i + 2:]
        if ">" in words:
            i = words.index(">")
            stdout_path, words = self.folder / words[i + 1], words[:i] + words[i + 2:]
        if words == ["echo", "$?"]:
            return f"{self.status}\n"
        if words[0] == "export":
            for word in words[1:]:
                name, _, value = word.partition("=")
                self.exported[name] = value
            return ""
        assert words[0] == "connector", f"{where}: only `connector` commands run here; mark the block `skip` with a reason: {command}"
        if background:
            self._start(words[1:], stdout_path, where)
            return ""
        stdin = io.StringIO(stdin_path.read_text("utf-8") if stdin_path else "")
        out, err = io.StringIO(), io.StringIO()
        self.status = main(words[1:], stdin=stdin, stdout=out, stderr=err)
        if stdout_path:
            stdout_path.write_text(out.getvalue(), "utf-8")
            return err.getvalue()
        return out.getvalue() + err.getvalue()

    def _start(self, argv: list[str], stdout_path: Path | None, where: str) -> None:
        assert stdout_path, f"{where}: a background command writes its output to a file (`> FILE &`)"
        with open(stdout_path, "w", encoding="utf-8") as sink:
            process = subprocess.Popen(
                [sys.executable, "-c", "import sys; from connector_core.cli import main; sys.exit(main())", *argv],
                stdout=sink, stderr=subprocess.DEVNULL, cwd=self.folder,
            )
        self.background.append(process)
        deadline = time.monotonic() + 30
        while not stdout_path.read_text("utf-8").endswith("\n"):  # the first line is its answer
            assert process.poll() is None, f"{where}: `connector {' '.join(argv)}` exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{where}: `connector {' '.join(argv)}` printed nothing in 30 s"
            time.sleep(0.05)

    def close(self) -> None:
        for process in self.background:
            process.terminate()
            process.wait(timeout=10)


def _check_output(block: Block, command: str, expected: str, got: str) -> None:
    if not doctest.OutputChecker().check_output(expected, got, MATCH_FLAGS):
        pytest.fail(f"{block.where}: `{command}` printed\n{got}\nwhere the docs show\n{expected}")


def _run_shell(block: Block, shell: Shell) -> None:
    if block.lang == "sh":
        for line in block.text.replace("\\\n", " ").splitlines():
            shell.run(line, block.where)
            assert shell.status == 0, f"{block.where}: `{line.strip()}` exited with {shell.status}"
        return
    command, expected = None, []
    for line in [*block.text.splitlines(), "$ "]:
        if line.startswith("$ "):
            if command is not None:
                _check_output(block, command, "\n".join(expected) + "\n" if expected else "", shell.run(command, block.where))
            command, expected = line[2:], []
        else:
            expected.append(line)


def _run_python(block: Block, namespace: dict) -> None:
    if block.lang == "python":
        exec(compile(block.text, block.where, "exec"), namespace)
        return
    test = doctest.DocTestParser().get_doctest(block.text, namespace, block.where, str(block.page), block.line)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=MATCH_FLAGS)
    runner.run(test, out=report.write, clear_globs=False)
    namespace.update(test.globs)
    if runner.failures:
        pytest.fail(f"{block.where}: the pycon block does not print what it shows\n{report.getvalue()}")


def _close_all(namespace: dict) -> None:
    for value in namespace.values():
        if isinstance(value, (Sandbox, Engine)):
            (value.stop if isinstance(value, Sandbox) else value.close)()


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.lang in RUNNABLE or b.directive == "file" for b in blocks_of(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_snippet_runs(page, tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith(("MP_", "CONNECTOR_SERVE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    shell = Shell(tmp_path)
    namespace: dict = {"__name__": "__docs__", "sandbox": Sandbox().start()}
    preset = namespace["sandbox"]
    try:
        for block in blocks_of(page):
            if block.directive in ("skip", "include"):
                continue  # included files are compared by test_an_included_file_is_shown_verbatim
            if block.directive == "pytest":
                _run_pytest(block, tmp_path)
                continue
            if block.directive == "file":
                (tmp_path / block.argument).write_text(block.text, "utf-8")
            if block.directive == "setup":
                exec(compile(block.argument, f"{block.where} (setup)", "exec"), namespace)
            if block.lang in ("sh", "console"):
                _run_shell(block, shell)
            elif block.lang in ("python", "pycon"):
                _run_python(block, namespace)
    finally:
        shell.close()
        _close_all(namespace)
        preset.stop()


def test_ci_runs_the_test_command_of_the_readme():
    readme = (ROOT / "README.md").read_text("utf-8")
    (command,) = [line for line in readme.splitlines() if "python -m pytest" in line]
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip(".ci/run is not in this checkout")
    assert ci.read_text("utf-8").rstrip().splitlines()[-1] == command


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "json"], ids=lambda b: b.where)
def test_every_json_block_is_json(block):
    if block.directive == "file" and block.argument.endswith(".ndjson"):
        for line in block.text.splitlines():
            json.loads(line)  # one JSON document per line
    else:
        json.loads(block.text)


def test_the_sandbox_page_has_every_option_with_its_default():
    import argparse

    from connector_mparticle.sandbox import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in (DOCS / "sandbox.md").read_text("utf-8").splitlines()
            if line.startswith("| `--")}
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        (row,) = [cells for option, cells in rows.items() if any(f"`{o}" in option for o in action.option_strings)]
        if isinstance(action.default, (str, int)) and not isinstance(action.default, bool) and action.default != []:
            assert f"`{action.default}`" in row, f"the default of {action.option_strings[0]} is {action.default!r}, the page says {row}"


def test_the_upload_events_table_has_every_option(engine):
    from connector_core.cli import build_parser

    (parser,) = [p for name, p in docgen._commands(build_parser(engine, distributions=[PROJECT])) if name == "connector upload-events"]
    text = (DOCS / "mparticle.md").read_text("utf-8")
    table = "\n".join(line for line in text[text.index("## Backfills: `connector upload-events`"):].splitlines() if line.startswith("| `--"))
    for action in parser._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help", "-v", "--verbose", "--strict"):
                assert f"`{option}" in table, f"upload-events {option} is not in the options table of docs/mparticle.md"


def test_the_context_and_httpclient_reference_has_every_public_member():
    from connector_core import Context, HttpClient

    text = (DOCS / "plugins.md").read_text("utf-8")
    section = text[text.index("## `Context` and `HttpClient` reference"):text.index("## Hooks")]
    members = [f.name for f in attrs.fields(Context) if not f.name.startswith("_")] + [n for n in vars(Context) if not n.startswith("_")]
    members += [n for n in vars(HttpClient) if not n.startswith("_")] + ["base_url", "service"]
    for name in members:
        assert f"`{name}" in section or f"/{name}" in section, f"{name} is not in the Context and HttpClient reference"


def test_connector_docs_writes_a_third_party_connector(make_engine, monkeypatch):
    # The tinydesk example (examples/), registered without installing it.
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "tinydesk"))
    import tinydesk_connector
    from tinydesk_connector import create_ticket, list_tickets

    engine = make_engine(create_ticket, list_tickets, connectors=[tinydesk_connector.CONNECTOR_MANIFEST])
    page = docgen.capability_reference(engine, connectors=["tinydesk"])
    assert "## Tinydesk helpdesk (`tinydesk`)" in page
    assert "| `apiToken` | string |  | yes |" in page  # a secret field, not required by the connector
    assert "| `oauth` | `oauth2_client_credentials` |" in page and "| `basic` | `basic` |" in page
    create = page[page.index("### `tinydesk.createTicket`"):page.index("### `tinydesk.listTickets`")]
    assert "- config: none required by the connector; this capability also needs `clientId`, `clientSecret` (secret)" in create
    assert '| `priority` | one of `"low"`, `"normal"`, `"high"`, `"urgent"` |  |' in create
    assert "| `tags` | array of string |" in create
    assert "`outcome_unknown`" in create and "`retrySafe` is false" in create
    listing = page[page.index("### `tinydesk.listTickets`"):]
    assert "`outcome_unknown`" not in listing and "(auth `basic`)" in listing


def test_every_error_code_of_the_code_is_documented():
    # Codes are set as `code = "x"` on error classes, `code="x"` where raised, and
    # `_error("x", ...)` by the sandbox command; the HTTP layer maps statuses to a few more.
    pattern = re.compile(r'\bcode(?:=| = )"([a-z_]+)"|_error\("([a-z_]+)"|cls, hint, code = \w+, "[^"]*", "([a-z_]+)"')
    codes = set()
    for path in [*(ROOT / "connector_core").rglob("*.py"), *(ROOT / "capabilities").rglob("*.py")]:
        codes |= {c for match in pattern.findall(path.read_text("utf-8")) for c in match if c}
    assert {"invalid_input", "server_error", "cannot_listen", "method_not_allowed"} <= codes  # the patterns still find them
    documented = " ".join((DOCS / page).read_text("utf-8") for page in ("hosts.md", "serve.md", "mparticle.md", "operators.md", "sandbox.md"))
    assert not {c for c in codes if f"`{c}`" not in documented}, "error codes missing from the docs"


def test_every_page_of_docs_is_linked_from_the_index_and_the_readme():
    index = (DOCS / "README.md").read_text("utf-8")
    readme = (ROOT / "README.md").read_text("utf-8")
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name}" in index, f"docs/README.md does not link {page.name}"
            assert f"](docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
