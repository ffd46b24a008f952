"""What in a data source's readable ``options`` looks like a credential. Credentials
belong in ``secrets`` (write-only): the API refuses them in ``options`` with a 400 and
never returns options entries that look like one (rows written before that rule, or by
other means than the API).

An entry looks like a credential when its key names one (``password``, ``api_key``,
``dsn``, ``Authorization``, ... in any case, with ``-``/``_`` or none), or its text is
a URL with user info (``postgres://user:pw@host``) or a keyword DSN with a password
(``host=db password=...``), at any depth (``headers``, lists)."""

import re

CREDENTIAL_KEY_PARTS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey",
    "clientkey", "dsn", "connectionstring", "connstr", "credential", "authorization", "cookie",
    "sessionid", "signature",
)
CREDENTIAL_KEYS = {"pwd", "pass", "auth"}
URL_WITH_USERINFO = re.compile(r"^\s*[a-z][a-z0-9+.\-]*://[^/?#@\s]*@", re.IGNORECASE)
DSN_WITH_PASSWORD = re.compile(r"(?:^|[\s;])(?:password|pwd)\s*=", re.IGNORECASE)


def is_credential_key(key: str) -> bool:
    normalized = re.sub(r"[\s_\-.]", "", key).lower()
    return normalized in CREDENTIAL_KEYS or any(part in normalized for part in CREDENTIAL_KEY_PARTS)


def is_credential_text(text: str) -> bool:
    return bool(URL_WITH_USERINFO.search(text) or DSN_WITH_PASSWORD.search(text))


def credential_paths(value, path: str = "") -> list[str]:
    """Dotted paths (``headers.Authorization``, ``hosts[1]``) of the entries of ``value``
    that look like credentials, in document order."""
    if isinstance(value, str):
        return [path] if is_credential_text(value) else []
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = f"{path}.{key}" if path else str(key)
            if is_credential_key(str(key)):
                found.append(item_path)
            else:
                found.extend(credential_paths(item, item_path))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(credential_paths(item, f"{path}[{index}]"))
    return found


def without_credentials(value):
    """A copy of ``value`` without the entries ``credential_paths`` names (a list item
    that is a credential is dropped from its list)."""
    if isinstance(value, dict):
        return {key: without_credentials(item) for key, item in value.items()
                if not is_credential_key(str(key)) and not (isinstance(item, str) and is_credential_text(item))}
    if isinstance(value, list):
        return [without_credentials(item) for item in value if not (isinstance(item, str) and is_credential_text(item))]
    return value
