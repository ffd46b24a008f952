"""HTTP APIs through requests. Options: ``{"base_url", "headers"}`` and the secret
``token`` (sent as ``Authorization: Bearer``). Query: ``{"method", "path", "params",
"body", "headers"}``; ``:name``, ``{name}`` and ``{{name}}`` in the path become
URL-quoted parameter values; a string that is exactly ``{{name}}`` in params, body or
headers becomes the value itself, and ``{{name}}`` inside a longer string its text.

Every request (each redirect hop too) passes the egress policy (``plugins.egress``) and
goes to the checked address, with the URL's name in ``Host``, in TLS SNI and in the
certificate check; proxies and ``.netrc`` from the environment are ignored.

Time limits: (connect, read) socket timeouts from the time left, and the body is read in
chunks against the run's deadline, so a server that trickles cannot hold the run."""

import json
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import egress
from .base import Plugin
from .errors import ConfigurationError, ConnectionFailed, QueryFailed, QueryTimeout
from .result import QueryResult

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
_PATH_PARAMETER = re.compile(r"\{\{\s*(\w+)\s*\}\}|\{(\w+)\}|(?<![\w:]):([A-Za-z_]\w*)")
_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _check_url(url):
    """The egress policy's ``Target`` for ``url``."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        raise ConfigurationError("The URL is not valid", code="invalid_options") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigurationError("Only http(s) URLs can be requested", code="invalid_options")
    return egress.check(parts.hostname, port)


class PinnedAdapter(HTTPAdapter):
    """Sends every request (redirect hops included: requests sends each one through its
    adapter) to the address the egress policy checked for the request's host, so a name
    that resolves elsewhere at connect time cannot slip through."""

    def send(self, request, *args, **kwargs):
        request.egress_target = target = _check_url(request.url)
        host = f"[{target.host}]" if ":" in target.host else target.host
        port = urlsplit(request.url).port
        request.headers["Host"] = f"{host}:{port}" if port else host
        return super().send(request, *args, **kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            # TLS still names and verifies the URL's host, not the address connected to.
            pool_kwargs["server_hostname"] = pool_kwargs["assert_hostname"] = host_params["host"]
        host_params["host"] = request.egress_target.address
        return host_params, pool_kwargs


@dataclass(eq=False)
class RestConnection:
    """A keep-alive HTTP session bound to one base URL."""

    session: requests.Session
    base_url: str

    def __repr__(self):
        return f"<RestConnection {urlsplit(self.base_url).netloc}>"


class RestAPIPlugin(Plugin):
    kind = "restapi"

    def connect(self, options, deadline):
        base_url = options.get("base_url") or options.get("url")
        if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigurationError("The data source needs an http(s) 'base_url'", code="invalid_options")
        headers = options.get("headers") or {}
        if not isinstance(headers, dict):
            raise ConfigurationError("'headers' must be an object", code="invalid_options")
        _check_url(base_url)
        session = requests.Session()
        session.trust_env = False  # no proxy or .netrc from the platform's environment
        session.max_redirects = MAX_REDIRECTS
        for prefix in _DEFAULT_PORTS:
            session.mount(f"{prefix}://", PinnedAdapter())
        session.headers.update({str(key): str(value) for key, value in headers.items()})
        if options.get("token"):
            session.headers["Authorization"] = f"Bearer {options['token']}"
        return RestConnection(session, base_url.rstrip("/"))

    def test_connection(self, connection, deadline):
        response = self._request(connection, "GET", connection.base_url, {}, None, {}, deadline)
        if response.status_code in (401, 403):
            raise ConnectionFailed(f"The API rejected the credentials (HTTP {response.status_code})")
        return {"server": connection.base_url, "status_code": response.status_code}

    def run(self, connection, query, parameters, deadline):
        method = str(query.get("method") or "GET").upper()
        if method not in METHODS:
            raise ConfigurationError(f"Unsupported HTTP method {method!r}", code="invalid_query")
        path = _substitute_path(str(query.get("path") or ""), parameters)
        url = f"{connection.base_url}/{path.lstrip('/')}" if path else connection.base_url
        params = _fill(query.get("params") or {}, parameters)
        headers = {str(key): str(value) for key, value in _fill(query.get("headers") or {}, parameters).items()}
        body = _fill(query["body"], parameters) if query.get("body") is not None else None
        response = self._request(connection, method, url, params, body, headers, deadline)
        content = _read_body(response, deadline)
        if response.status_code in (401, 403):
            raise ConnectionFailed(f"The API rejected the credentials (HTTP {response.status_code})")
        if response.status_code >= 400:
            raise QueryFailed(f"The API answered HTTP {response.status_code} {response.reason or ''}".strip(),
                              code="http_error")
        data = _decode(content, response.headers.get("Content-Type", ""))
        return QueryResult(
            data=data,
            row_count=len(data) if isinstance(data, list) else int(data is not None and data != ""),
            metadata={"status_code": response.status_code,
                      "content_type": response.headers.get("Content-Type", "")},
        )

    def close(self, connection):
        connection.session.close()

    def translate_error(self, exc, phase):
        if isinstance(exc, requests.Timeout):
            return QueryTimeout("The API did not answer within the timeout")
        if isinstance(exc, requests.ConnectionError):
            return ConnectionFailed("Could not connect to the API")
        if isinstance(exc, requests.RequestException):
            return QueryFailed(f"The API request failed: {type(exc).__name__}")
        return None

    @staticmethod
    def _request(connection, method, url, params, body, headers, deadline):
        remaining = deadline.remaining()
        return connection.session.request(
            method, url, params=params, json=body, headers=headers,
            timeout=(remaining, remaining), stream=True, allow_redirects=True,
        )


def _read_body(response, deadline):
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            if deadline.expired():
                raise deadline.timeout_error()
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise QueryFailed(f"The API response is larger than {MAX_RESPONSE_BYTES} bytes",
                                  code="response_too_large")
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def _decode(content, content_type):
    if not content:
        return None
    if "json" in content_type:
        try:
            return json.loads(content)
        except ValueError:
            pass
    return content.decode("utf-8", errors="replace")


def _missing(name):
    return QueryFailed(f"Missing query parameter(s): {name}", code="missing_parameter")


def _substitute_path(path, parameters):
    def replace(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in parameters:
            raise _missing(name)
        return quote(str(parameters[name]), safe="")

    return _PATH_PARAMETER.sub(replace, path)


def _fill(value, parameters):
    """``value`` with ``{{name}}`` templates in its strings replaced by parameters."""
    if isinstance(value, dict):
        return {key: _fill(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, parameters) for item in value]
    if not isinstance(value, str):
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        if whole.group(1) not in parameters:
            raise _missing(whole.group(1))
        return parameters[whole.group(1)]

    def replace(match):
        if match.group(1) not in parameters:
            raise _missing(match.group(1))
        return str(parameters[match.group(1)])

    return _TEMPLATE.sub(replace, value)
