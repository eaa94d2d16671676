"""``connector new``: what it writes, and bad requests as typed errors. That the packages it
writes install into a fresh venv and pass their own tests is in tests/test_examples.py
(one venv and one pip call for every starting package)."""

from __future__ import annotations

import json

import pytest


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


def test_a_package_folder_that_cannot_be_read_or_written_is_a_typed_error(cli, tmp_path):
    cli("new", "connector", "shop", "--output", str(tmp_path))
    package = tmp_path / "shop-connector"
    manifest = package / "shop_connector" / "manifests" / "shop.json"
    manifest.write_text("{not json", "utf-8")
    run = cli("new", "capability", "shop", "getInvoice", "--output", str(package))
    assert (run.code, run.error()["code"]) == (12, "invalid_manifest")
    (package / "setup.cfg").write_text("[options.entry_points\nbroken", "utf-8")
    run = cli("new", "capability", "shop", "getInvoice", "--output", str(package))
    assert (run.code, run.error()["code"], run.error()["faults"][0]["path"]) == (3, "invalid_input", "$.output")
    blocker = tmp_path / "a-file"
    blocker.write_text("", "utf-8")
    run = cli("new", "connector", "shop", "--output", str(blocker))
    assert (run.code, run.error()["code"]) == (3, "invalid_input")
    assert "cannot write" in run.error()["message"]
