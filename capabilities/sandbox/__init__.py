"""mParticle sandbox: a local HTTP server that behaves like mParticle's OAuth, Platform and
Events APIs, with fault injection, rate limiting and an inspection API.

Start it from Python (``with Sandbox(seed=0) as sb: sb.config``), from pytest (the
``mparticle_sandbox`` fixture), in a child process (``SandboxProcess``) or from a shell
(``connector sandbox`` / ``python -m connector_mparticle.sandbox``, which prints the
connector config as one JSON line). It binds to loopback only unless told otherwise.

Served paths (one port): ``POST /oauth/token``; ``GET|POST|DELETE /v1/accounts``;
``GET|PUT /v1/accounts/{id}``; ``GET /v1/audiences``;
``GET|HEAD /platform/v2/workspaces/{id}/calculatedattributes``; ``POST /v2/events``;
``POST /v2/bulkevents``; ``POST /v2/bulkevents/historical``; admin under ``/_sandbox/`` (see ``admin.py``).

Seeded data (``seed.py``): the demo client's organisation owns accounts 1001 (with
applications), 1002 and 1003 and workspaces 5001-5004; account 2001 and workspace 6001
belong to another organisation and are out of scope.

Behaviour where mParticle's documentation is silent or disagrees (the connector accepts
both sides; these are the sandbox's choices):

* Token endpoint (Auth0): JSON or form-encoded body. Missing/other ``grant_type`` → 400
  ``invalid_request``/``unsupported_grant_type``; unknown client or wrong secret → 401
  ``{"error": "access_denied", "error_description": "Unauthorized"}``; wrong or missing
  ``audience`` → 403 ``access_denied`` ("Service not enabled within domain: ..."); other
  content types or bad JSON → 400 ``invalid_request``. Answers carry ``Cache-Control:
  no-store``. Tokens are opaque and expire after ``token_lifetime`` (28800 s).
* Platform errors, v1 and v2 alike, use the envelope ``{"data": null, "dataType": ...,
  "errors": [{"code", "message"}]}``; 401 answers add ``WWW-Authenticate``.
* ``accountId``: missing or empty → 401; not a number, unknown or in another organisation
  → 404. For ``GET``/``PUT /v1/accounts/{id}`` both the query account and the path account
  must be in scope. ``POST /v1/accounts`` needs no ``accountId`` (checked if given); the new
  account joins the caller's organisation.
* Create → 201, update → 202, both with the envelope holding the account. Delete → 202 with
  an empty body (the Events API's style; older docs said 204). ``DELETE /v1/accounts/{id}``
  is 405: the documented delete takes the id from ``accountId`` only.
* Account names are trimmed and unique per organisation, compared case-insensitively;
  a clash → 422 ``VALIDATION_ERROR``. Invalid JSON → 400 ``BAD_REQUEST``; a body that is
  not an object, or a missing, non-string or blank ``name`` → 422 ``VALIDATION_ERROR``.
  Deleting an account that still has applications → 422 ``VALIDATION_ERROR``.
* POST/PUT bodies must be ``application/json`` (parameters allowed) or get 415.
* Audiences and calculated attributes are bare JSON arrays. The calculated-attributes
  ``name`` filter is an exact, case-sensitive match (empty means no filter); ``HEAD`` answers
  204 when any match, else 404. Workspace ids that are not numbers, unknown or out of scope
  → 404. Definitions spell the key ``datapoint`` (the list example), not ``data_point``.
* Events API Basic auth: no header → 401; any other scheme, bad encoding or wrong
  key/secret → 403. Deliberate difference: besides the input API key/secret, the OAuth
  client id/secret are accepted too (``client_credentials_for_events``, on by default),
  because the connector falls back to them when no API key is configured.
* Batches are checked by ``validation.py``, the sandbox's own reading of the documentation
  (it shares no code with the connector), tolerating what the official SDKs send.
* A request body over 256 KB (the documented limit) → 413 ``REQUEST_TOO_LARGE`` (the
  answer is not documented; a choice). Invalid JSON, an invalid batch to ``/v2/events``, a bulk body that is not a non-empty
  array, or more than 100 batches → 400 ``{"errors": [{"code": "BAD_REQUEST", "message":
  "<json path>: <message>"}]}`` listing up to 100 faults.
* ``/v2/bulkevents`` with some invalid batches → 202, as mParticle documents ("if some
  batches fail and others succeed, the response is still 202 Accepted"): the valid batches
  are accepted, the invalid ones dropped and kept for inspection (``rejected_batches``,
  ``GET /_sandbox/rejected``, counters ``batches_rejected``/``events_rejected``). When every
  batch is invalid the answer is 202 too: the documentation does not describe that case,
  and the sandbox keeps one rule. ``/v2/bulkevents/historical`` refuses the whole request
  (400) for any fault, as mParticle documents for its own rules.
* Event markers: with ``configure(marker_attribute="m")`` the sandbox counts the values of
  the custom attribute ``m`` over every accepted event (``event_markers()``,
  ``GET /_sandbox/markers``), so tests count lost and doubled events however many batches
  are kept.
* Success is 202 with an empty body. A batch whose ``source_request_id`` was already
  accepted for the same API key is answered 202 but not stored again (counted as a
  duplicate dropped).
* Rate limits count requests per fixed window, per group, except the Events API's, which
  count batches as mParticle's do (a bulk of 100 costs 100); rejected requests do not use
  the budget. The table of docs/sandbox.md lists every behaviour with its source. Default: no limits and no faults.
* Faults: one ``random.Random`` per group (``token``, ``platform``, ``events``) seeded from
  ``seed``, one draw per request, so a seed and a request sequence give the same faults.
  A truncated answer keeps its head and loses half its body (half the status line when
  there is no body); a garbage answer keeps its status with an HTML body.
* ``reset()`` is a fresh start: tokens issued before it are no longer valid.
* New account ids count up from the highest id in use; timestamps are UTC.
"""

from .app import AUDIENCE, Emulator
from .cli import add_arguments, run_command
from .faults import GROUPS, Failure, FaultConfig, RateLimit
from .handle import Sandbox
from .process import SandboxProcess

__all__ = [
    "AUDIENCE",
    "GROUPS",
    "Emulator",
    "Failure",
    "FaultConfig",
    "RateLimit",
    "Sandbox",
    "SandboxProcess",
    "add_arguments",
    "run_command",
]
