"""Auth schemes: how a connector's requests are authenticated, as plugins.

An entry of a connector manifest's ``auth`` section names a scheme by its ``type``. A
scheme is an :class:`AuthScheme` registered by a plugin's ``register_auth_schemes(register)``
hook; the two built-in schemes (``oauth2_client_credentials`` and ``basic``) are
registered by this module through that same hook. A scheme owns its manifest fragment
(a JSON Schema plus cross-checks), the config fields it reads and which are secrets, and
builds one :class:`Auth` per connection, which signs each request, decides what a 401
means, names its credential by a digest (never the secret itself), registers derived
secrets for redaction and tells ``connector check`` whether the credentials work.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pluggy
import requests
import requests.auth

from .errors import AuthenticationFailed, Fault, InvalidConfig, UpstreamError
from .hookspecs import hookimpl
from .http import AuthEnv, CallStats, HttpClient, _snippet, _upstream_message, error_for_response, read_json
from .redact import basic_credentials
from .tokens import TokenCache
from .validation import compile_schema

__all__ = [
    "Auth",
    "AuthEnv",
    "AuthField",
    "AuthScheme",
    "BasicAuth",
    "BasicScheme",
    "OAuth2ClientCredentials",
    "OAuth2ClientCredentialsScheme",
    "collect_auth_schemes",
    "credential_key",
]

URL_SCHEMA = {"type": "string", "pattern": "^https?://[^\\s/?#]+[^\\s?#]*$"}
FIELD_SCHEMA = {"type": "string", "minLength": 1}

# Keys credential digests within this process, so a digest seen in a log cannot be tested
# against guessed secrets offline.
_DIGEST_KEY = os.urandom(32)


def credential_key(scheme: str, *parts: Any) -> str:
    """A stable name for a credential that does not reveal it: ``scheme:`` plus a keyed digest.

    Equal ``parts`` give equal keys within one process (so tokens can be cached by
    credential across connections); the secret cannot be read back from the key.
    """
    digest = hmac.new(_DIGEST_KEY, json.dumps(parts, default=str).encode(), hashlib.sha256).hexdigest()
    return f"{scheme}:{digest[:32]}"


@attrs.frozen
class AuthField:
    """A config field an auth entry reads: ``key`` is where the entry names it (such as
    ``clientSecretField`` or ``passwordFields[1]``); ``secret`` and ``url`` say what it holds."""

    key: str
    field: str
    secret: bool = False
    url: bool = False


class Auth(requests.auth.AuthBase):
    """One connection's credentials for one auth entry; subclass it in a scheme.

    The transport calls :meth:`signer` before every attempt and sends the attempt with the
    ``requests`` auth callable it returns; when the answer is 401 it calls
    :meth:`unauthorized` with that signer once, and repeats the request when it returns
    true. Implement :meth:`__call__` (sign a prepared request) and :attr:`credential_key`.
    """

    def signer(self, stats: CallStats) -> requests.auth.AuthBase:
        """What signs the next attempt; may fetch credentials first (counted into ``stats``)."""
        return self

    def unauthorized(self, signer: requests.auth.AuthBase) -> bool:
        """The service answered 401 to a request signed by ``signer``: renew and repeat once?"""
        return False

    @property
    def credential_key(self) -> str:
        """A digest naming the credential (see :func:`credential_key`); never a secret in clear."""
        raise NotImplementedError

    def check(self, client: HttpClient) -> dict[str, Any]:
        """Test the credentials for ``connector check``: ``{"ok": True|False|None, "message": ...}``.

        ``client`` is the endpoint's client, for schemes that can only be tested by a
        request; ``None`` means "not checked". Raise ``ConnectorError`` for a failure.
        """
        return {"ok": None, "message": "cannot be checked without sending data"}

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class AuthScheme:
    """An auth scheme: subclass it, set :attr:`type` and :attr:`manifest_schema`, implement
    :meth:`fields` and :meth:`build`, and register an instance from a plugin's
    ``register_auth_schemes(register)`` hook."""

    #: The ``type`` a connector manifest's auth entry uses to pick this scheme.
    type: str = ""
    #: JSON Schema of an auth entry of this type; ``type`` and ``description`` are added.
    manifest_schema: Mapping[str, Any] = {"type": "object"}

    @property
    def validator(self):
        """The compiled schema of an auth entry of this scheme (compiled once)."""
        compiled = self.__dict__.get("_validator")
        if compiled is None:
            schema = dict(self.manifest_schema)
            schema["properties"] = {"type": {"const": self.type}, "description": {"type": "string"}, **schema.get("properties", {})}
            schema["required"] = ["type", *schema.get("required", ())]
            compiled = self.__dict__["_validator"] = compile_schema(schema)
        return compiled

    def fields(self, spec: Mapping[str, Any]) -> list[AuthField]:
        """The config fields an entry ``spec`` reads (the loader checks that they are declared)."""
        return []

    def check_manifest(self, spec: Mapping[str, Any]) -> list[Fault]:
        """Cross-checks beyond the schema; fault paths relative to the entry (``$.key``)."""
        return []

    def build(self, spec: Mapping[str, Any], env: AuthEnv) -> Auth:
        """The credentials of one connection for entry ``spec``, from ``env.config``.

        Raise ``InvalidConfig`` (``env.required``) for missing fields; register derived
        secrets (encoded headers, tokens) with ``env.secret`` as soon as they exist.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.type!r})"


def collect_auth_schemes(pm: pluggy.PluginManager) -> tuple[dict[str, AuthScheme], dict[str, str]]:
    """Every scheme registered through the ``register_auth_schemes`` hook, by type.

    Returns the schemes and, per plugin name, why a plugin's registration was refused
    (a type already taken, something that is not an ``AuthScheme``, an exception).
    """
    schemes: dict[str, AuthScheme] = {}
    owners: dict[str, str] = {}
    problems: dict[str, str] = {}
    # In registration order, so the built-in schemes (registered with the plugin manager) win.
    for impl in pm.hook.register_auth_schemes.get_hookimpls():
        offered: list[Any] = []
        try:
            impl.function(register=offered.append)
        except Exception as exc:  # a broken plugin must not stop the host
            problems[impl.plugin_name] = f"register_auth_schemes failed: {type(exc).__name__}: {exc}"
            continue
        problem = None
        for scheme in offered:
            kind = getattr(scheme, "type", None)
            if not isinstance(scheme, AuthScheme) or not isinstance(kind, str) or not kind:
                problem = f"registered {scheme!r}, which is not an AuthScheme with a type"
            elif kind in schemes or [getattr(s, "type", None) for s in offered].count(kind) > 1:
                problem = f"auth scheme {kind!r} is already registered by {owners.get(kind, impl.plugin_name)}"
        if problem is not None:  # all or nothing: a rejected plugin adds no scheme
            problems[impl.plugin_name] = problem
            continue
        for scheme in offered:
            schemes[scheme.type], owners[scheme.type] = scheme, impl.plugin_name
    return schemes, problems


# -- OAuth2 client credentials ---------------------------------------------------------


class _Bearer(requests.auth.AuthBase):
    """Signs with one access token (one object per token, made when it is fetched)."""

    __slots__ = ("token", "header")

    def __init__(self, token: str) -> None:
        self.token = token
        self.header = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.header
        return request

    def __repr__(self) -> str:
        return "Bearer(***)"


class OAuth2ClientCredentials(Auth):
    """OAuth2 client-credentials grant with a cached token.

    Tokens live in a :class:`~connector_core.tokens.TokenCache` keyed by
    :attr:`credential_key`, which an engine shares between its connections, so a tenant's
    token outlives its connection. A fetch is single flight for failures as for successes:
    one thread asks, the others wait (by their call's deadline) and share its token or its
    error (a refusal is remembered for ``reject_for`` seconds, other failures briefly). The
    token is refreshed ``refresh_margin`` seconds before it expires (or at half its life)
    and once when the service answers 401. Errors of the token endpoint are about the
    credentials or the token URL, never about what the request was for.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        send: Callable[..., requests.Response],
        secret: Callable[..., None] = lambda *values: None,
        token_url_field: str | None = None,
        audience: str | None = None,
        scope: str | None = None,
        request_format: str = "json",
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 60.0,
        reject_for: float = 10.0,
        cache: TokenCache | None = None,
    ) -> None:
        self.token_url = token_url
        self._token_url_field = token_url_field
        self._client_id = client_id
        self._client_secret = client_secret
        self._send = send
        self._secret = secret
        self._audience = audience
        self._scope = scope
        self._format = request_format
        self._clock = clock
        self._margin = refresh_margin
        self._cache = cache if cache is not None else TokenCache(remember_rejection=reject_for)
        self._signer: _Bearer | None = None
        self._key = credential_key("oauth2_client_credentials", token_url, client_id, client_secret, audience, scope)

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self.token_url!r})"

    @property
    def credential_key(self) -> str:
        return self._key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return self.signer(CallStats())(request)

    def token(self, stats: CallStats | None = None) -> str:
        """The cached access token, fetching a new one when missing or about to expire."""
        return self.signer(stats if stats is not None else CallStats()).token

    def signer(self, stats: CallStats) -> _Bearer:
        token = self._cache.token(
            self._key, lambda: self._fetch(stats), clock=self._clock, refresh_margin=self._margin, wait=stats.left()
        )
        signer = self._signer
        if signer is None or signer.token != token:
            self._secret(token)  # a token another connection fetched is a secret here too
            signer = self._signer = _Bearer(token)
        return signer

    def unauthorized(self, signer: requests.auth.AuthBase) -> bool:
        """The token may have been revoked or expired early: forget it, fetch a new one once."""
        self.invalidate(getattr(signer, "token", None))
        return True

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given)."""
        self._cache.invalidate(self._key, token)

    def check(self, client: HttpClient) -> dict[str, Any]:
        self.token()
        return {"ok": True, "message": "token obtained"}

    def _fetch(self, stats: CallStats) -> tuple[str, float]:
        body = {"client_id": self._client_id, "client_secret": self._client_secret, "grant_type": "client_credentials"}
        if self._audience:
            body["audience"] = self._audience
        if self._scope:
            body["scope"] = self._scope
        payload: dict[str, Any] = {"json": body} if self._format == "json" else {"data": body}
        response = self._send("POST", self.token_url, retry_safe=True, stats=stats, **payload)
        status = response.status_code
        if status in (400, 401, 403):
            raise AuthenticationFailed(
                f"the token endpoint rejected the client credentials ({status}: {_upstream_message(response)}); "
                "check the client ID, client secret and token URL of the connection",
                status=status,
                body=_snippet(response),
            )
        if status == 429 or status >= 500:
            raise error_for_response(response, "the token endpoint")
        if not 200 <= status < 300:
            # A 404, 405 or redirect here means the token URL is wrong, whatever the request was for.
            where = f"config field {self._token_url_field!r}" if self._token_url_field else "the connector's token URL"
            raise InvalidConfig(
                f"the token endpoint {self.token_url} answered {status} ({_upstream_message(response)}); "
                f"it is not an OAuth token endpoint: check {where}",
                faults=[Fault(f"$.{self._token_url_field}", f"the token endpoint answered {status}")] if self._token_url_field else [],
                status=status,
                body=_snippet(response),
            )
        data = read_json(response, "the token endpoint")
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError("the token endpoint answered without an access_token", code="invalid_response", status=status)
        self._secret(token)
        expires_in = data.get("expires_in")
        return token, float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 3600.0


class OAuth2ClientCredentialsScheme(AuthScheme):
    """``oauth2_client_credentials``: a bearer token from a token URL, by client ID and secret."""

    type = "oauth2_client_credentials"
    manifest_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tokenUrl", "clientIdField", "clientSecretField"],
        "properties": {
            "tokenUrl": URL_SCHEMA,
            "tokenUrlField": FIELD_SCHEMA,
            "clientIdField": FIELD_SCHEMA,
            "clientSecretField": FIELD_SCHEMA,
            "audience": {"type": "string"},
            "scope": {"type": "string"},
            "requestFormat": {"enum": ["json", "form"]},
        },
    }

    def fields(self, spec: Mapping[str, Any]) -> list[AuthField]:
        found = [AuthField("clientIdField", spec["clientIdField"]), AuthField("clientSecretField", spec["clientSecretField"], secret=True)]
        if "tokenUrlField" in spec:
            found.append(AuthField("tokenUrlField", spec["tokenUrlField"], url=True))
        return found

    def build(self, spec: Mapping[str, Any], env: AuthEnv) -> OAuth2ClientCredentials:
        field = spec.get("tokenUrlField")
        configured = env.config.get(field) if field else None
        return OAuth2ClientCredentials(
            token_url=env.url(configured, field) if configured else env.url(spec["tokenUrl"], f"auth.{env.name}.tokenUrl"),
            token_url_field=field,
            client_id=env.required(spec["clientIdField"]),
            client_secret=env.required(spec["clientSecretField"]),
            send=env.send,
            secret=env.secret,
            audience=spec.get("audience"),
            scope=spec.get("scope"),
            request_format=spec.get("requestFormat", "json"),
            clock=env.clock,
            cache=env.tokens,
        )


# -- HTTP Basic --------------------------------------------------------------------------


class BasicAuth(Auth):
    """HTTP Basic auth (UTF-8), with a repr that shows no credentials."""

    def __init__(self, username: str, password: str, secret: Callable[..., None] = lambda *values: None) -> None:
        self._header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._key = credential_key("basic", username, password)
        secret(*basic_credentials(username, password))  # the encoded pair, in each base64 spelling

    @property
    def credential_key(self) -> str:
        return self._key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request


class BasicScheme(AuthScheme):
    """``basic``: HTTP Basic from the first configured pair of username and password fields."""

    type = "basic"
    manifest_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["usernameFields", "passwordFields"],
        "properties": {
            "usernameFields": {
                "description": "Candidate username fields in order of preference; the first one set in the config wins "
                "and its password is the field at the same position.",
                "type": "array",
                "minItems": 1,
                "items": FIELD_SCHEMA,
            },
            "passwordFields": {"type": "array", "minItems": 1, "items": FIELD_SCHEMA},
        },
    }

    def fields(self, spec: Mapping[str, Any]) -> list[AuthField]:
        users = [AuthField(f"usernameFields[{i}]", f) for i, f in enumerate(spec["usernameFields"])]
        return users + [AuthField(f"passwordFields[{i}]", f, secret=True) for i, f in enumerate(spec["passwordFields"])]

    def check_manifest(self, spec: Mapping[str, Any]) -> list[Fault]:
        if len(spec["usernameFields"]) != len(spec["passwordFields"]):
            return [Fault("$", "usernameFields and passwordFields must pair up (same length)")]
        return []

    def build(self, spec: Mapping[str, Any], env: AuthEnv) -> BasicAuth:
        for user_field, password_field in zip(spec["usernameFields"], spec["passwordFields"]):
            if env.config.get(user_field):
                password = env.required(password_field, f"it pairs with {user_field!r}")
                return BasicAuth(str(env.config[user_field]), password, env.secret)
        return BasicAuth(env.required(spec["usernameFields"][0]), "", env.secret)


TITLE = "Built-in auth schemes"


@hookimpl
def register_auth_schemes(register: Callable[[AuthScheme], None]) -> None:
    """The built-in schemes, registered like any plugin's."""
    register(OAuth2ClientCredentialsScheme())
    register(BasicScheme())


@functools.cache
def builtin_schemes() -> Mapping[str, AuthScheme]:
    """The built-in schemes by type (for loading manifests without a plugin manager)."""
    found: list[AuthScheme] = []
    register_auth_schemes(found.append)
    return MappingProxyType({scheme.type: scheme for scheme in found})
