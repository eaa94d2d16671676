"""The service's OpenAPI document against the live service: schemathesis over every operation.

The service runs on loopback with the mParticle sandbox behind it (named connections).
No answer may be a 5xx, and every answer must match the document (status, media type,
schema). A CI profile keeps it to a few examples per operation.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from serving import ServedApp, needs_serve_extra

from connector_core import Engine
from connector_core.config import ConnectionSpec
from connector_core.serve.commands import document

needs_serve_extra()

KEY = "schemathesis-key-0123456789"


@pytest.fixture(scope="module")
def live(mparticle_sandbox_server):
    config = {**mparticle_sandbox_server.config, "maxRetries": 0}
    specs = {
        "sandbox": ConnectionSpec("sandbox", config, "mparticle"),
        "readonly": ConnectionSpec("readonly", config, "mparticle", ("getAccount", "getAudiences")),
    }
    # Named connections only: a caller config schemathesis made up would send requests to the
    # connector's real hosts (the untrusted policy refuses URL overrides, as it must).
    with Engine() as engine, ServedApp(engine, specs, api_keys=[KEY]) as app:
        yield app


def test_every_operation_answers_as_documented(live):
    # Imported here, not at collection: only the worker that runs this test pays for it.
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e '.[test]')")
    # schemathesis' pytest integration (from_fixture) does not run under pytest 9; its
    # hypothesis strategies are driven directly, one bounded run per operation.
    api_schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        # uploadEventBatch takes its batches as JSON text, which no schema can describe: the
        # capability refuses text that is not a batch (422), as it must.
        checks = {}
        if operation.label.endswith(".uploadEventBatch/execute"):
            checks["excluded_checks"] = [schemathesis.checks.positive_data_acceptance]

        @settings(max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(base_url=live.url, headers={"Authorization": f"Bearer {KEY}"}, **checks)

        run()


def test_the_document_is_openapi_3_1_with_one_operation_per_capability(live):
    served = requests.get(live.url + "/openapi.json", timeout=10).json()
    assert served["openapi"] == "3.1.0"
    with Engine() as engine:
        assert served == document(engine, live.service.specs, caller_configs=False)
        ids = sorted(f"{c.connector.id}.{c.manifest.id}" for c in engine.registry.capabilities.values())
    execute = sorted(op["post"]["operationId"] for path, op in served["paths"].items() if path.endswith("/execute"))
    assert execute == ids
    operation = served["paths"]["/v1/capabilities/mparticle.getAccount/execute"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "404", "422", "424", "429", "502", "504"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["connection"]["enum"] == ["readonly", "sandbox"]
    assert served["components"]["schemas"]["mparticle_getAccount.input"]["required"] == ["accountId"]
    assert served["components"]["schemas"]["mparticle.config"]["properties"]["clientSecret"]["format"] == "password"
