"""``connector new``: what it writes installs into a fresh venv, passes ``connector validate``
and its own tests (the contract check among them) as generated; bad requests are typed errors."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from fresh_venv import Venv

from connector_core.cli import main


def _new(*args: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code = main(["new", *args], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A connector package with a second capability added, and a package attaching a
    capability to the installed mparticle connector, both installed in one fresh venv."""
    work = tmp_path_factory.mktemp("new")
    _new("connector", "Acme_Shop", "--output", str(work))
    connector_package = work / "acme-shop-connector"
    _new("capability", "Acme_Shop", "listOrders", "--output", str(connector_package))
    _new("capability", "mparticle", "countThings", "--output", str(work))
    attach_package = work / "mparticle-count-things"
    venv = Venv.create(work / "venv")
    install = venv.pip_install("-e", f"{connector_package}[test]", "-e", f"{attach_package}[test]", cwd=work)
    runs = {"install": install}
    if install.returncode == 0:
        with ThreadPoolExecutor(3) as pool:
            tests = {name: pool.submit(venv.run, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", cwd=path) for name, path in (("connector", connector_package), ("attach", attach_package))}
            validate = pool.submit(
                venv.connector, "validate", "acme_shop_connector/manifests/Acme_Shop.json", "acme_shop_connector/manifests/listOrders.json", cwd=connector_package
            )
            runs.update({name: future.result() for name, future in tests.items()}, validate=validate.result())
    return runs


def test_the_generated_packages_install(generated):
    assert generated["install"].returncode == 0, generated["install"].output


def test_the_added_capability_passes_connector_validate(generated):
    assert generated["validate"].returncode == 0, generated["validate"].output


@pytest.mark.parametrize(("package", "passed"), [("connector", 8), ("attach", 4)])
def test_the_generated_tests_pass(generated, package, passed):
    run = generated[package]
    assert run.returncode == 0, run.output
    # The added capability is contract-checked too (offline and against the sandbox), and the
    # attached one runs its check against the connector's sandbox: nothing skipped.
    assert f"{passed} passed" in run.stdout and "skipped" not in run.stdout, run.output


def test_the_manifests_written_pass_validate_in_process(cli, tmp_path):
    assert cli("new", "connector", "shop", "--output", str(tmp_path)).code == 0
    manifests = tmp_path / "shop-connector" / "shop_connector" / "manifests"
    run = cli("validate", str(manifests / "shop.json"), str(manifests / "getItem.json"))
    assert run.code == 0, run
    connector = json.loads((manifests / "shop.json").read_text("utf-8"))
    # The token URL can be pointed at a sandbox: tests never reach the real host.
    assert connector["auth"]["oauth"]["tokenUrlField"] == "tokenUrl"


def test_a_capability_is_added_to_the_packages_entry_points(cli, tmp_path):
    cli("new", "connector", "shop", "--output", str(tmp_path))
    package = tmp_path / "shop-connector"
    setup = package / "setup.cfg"
    setup.write_text(setup.read_text("utf-8").replace("[tool:pytest]", "# kept\n[tool:pytest]"), "utf-8")
    run = cli("new", "capability", "shop", "get-Invoice", "--output", str(package))
    assert run.code == 0, run
    assert run.json()["files"] == ["shop_connector/get_invoice.py", "shop_connector/manifests/get-Invoice.json"]
    text = setup.read_text("utf-8")
    assert "connector_core =\n    getItem = shop_connector.get_item\n    shop-sandbox = shop_connector.sandbox\n    get-Invoice = shop_connector.get_invoice\n" in text
    assert "# kept\n[tool:pytest]" in text
    again = cli("new", "capability", "shop", "get-Invoice", "--output", str(package))
    assert (again.code, again.error()["code"], again.error()["faults"]) == (7, "already_exists", [{"path": "$.id", "message": "already exists"}])


@pytest.mark.parametrize(
    ("args", "path"),
    [(["connector", "2shop"], "$.name"), (["connector", "my.shop"], "$.name"), (["capability", "shop", "get item"], "$.id"), (["capability", "sh op", "x"], "$.connector")],
)
def test_a_bad_name_is_a_typed_error_with_its_path(cli, tmp_path, args, path):
    run = cli("new", *args, "--output", str(tmp_path))
    assert run.code == 3
    assert run.error()["code"] == "invalid_input"
    assert [f["path"] for f in run.error()["faults"]] == [path]
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(cli, tmp_path):
    (tmp_path / "shop-connector").mkdir()
    run = cli("new", "connector", "shop", "--output", str(tmp_path))
    assert (run.code, run.error()["code"]) == (7, "already_exists")
    assert list((tmp_path / "shop-connector").iterdir()) == []


def test_a_capability_for_a_connector_nobody_declares_says_what_to_do(cli, tmp_path):
    run = cli("new", "capability", "nowhere", "getThing", "--output", str(tmp_path))
    assert run.code == 3
    assert "connector 'nowhere' is not installed" in run.error()["message"]
    assert "--output pointing at the package that declares it" in run.error()["message"]
    assert list(tmp_path.iterdir()) == []
