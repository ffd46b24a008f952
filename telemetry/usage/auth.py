"""Login attempts and session lengths, from Django's auth signals."""

import time
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest
from django.utils.module_loading import import_string

from telemetry import conf
from telemetry.core import guard, labels
from telemetry.core.bus import emit

SESSION_LOGIN_KEY = "_telemetry_login_at"


def _user_organization(user):
    """The user's (first) organization, or ``None``; a failing resolver still lets the
    event count."""
    path = conf.get("USER_ORGANIZATION_RESOLVER")
    if not path or user is None:
        return None
    with guard.guarded("user_organization"):
        resolved = import_string(path)(user)
        if isinstance(resolved, (list, tuple)):
            return resolved[0] if resolved else None
        return resolved
    return None


def _method(request):
    if request is None:
        return "password"
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    return "token" if authorization.startswith("Token ") else "password"


def on_login(sender: object, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    with guard.guarded("signals"):
        organization = labels.organization(_user_organization(user))
        emit("inc", ("business", "logins"), ("success", _method(request), organization), 1)
        session = getattr(request, "session", None)
        if session is not None:
            session[SESSION_LOGIN_KEY] = time.time()


def on_login_failed(sender: object, credentials: dict[str, Any], request: HttpRequest | None = None,
                    **kwargs: Any) -> None:
    with guard.guarded("signals"):
        emit("inc", ("business", "logins"), ("failure", _method(request), ""), 1)


def on_logout(sender: object, request: HttpRequest | None, user: AbstractBaseUser | None, **kwargs: Any) -> None:
    with guard.guarded("signals"):
        session = getattr(request, "session", None)
        started = session.get(SESSION_LOGIN_KEY) if session is not None else None
        if started is not None:
            record_session_end(user, time.time() - started)


def record_session_end(user: AbstractBaseUser | None, seconds: float) -> None:
    organization = labels.organization(_user_organization(user))
    emit("observe", ("business", "session_duration"), (organization,), max(seconds, 0.0))


def connect() -> None:
    user_logged_in.connect(on_login, dispatch_uid="telemetry.login")
    user_login_failed.connect(on_login_failed, dispatch_uid="telemetry.login_failed")
    user_logged_out.connect(on_logout, dispatch_uid="telemetry.logout")
