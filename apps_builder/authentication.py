"""``Authorization: Token <key>`` as DRF's ``TokenAuthentication`` reads it, checked against
the stored digests of ``ApiToken`` rather than clear keys."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from . import tokens
from .models import ApiToken


class HashedTokenAuthentication(TokenAuthentication):
    """Same header, keyword and errors as DRF's token authentication (so clients and the
    401 ``WWW-Authenticate: Token`` challenge are unchanged); one indexed lookup by digest."""

    def authenticate_credentials(self, key):
        token = ApiToken.objects.select_related("user").filter(digest=tokens.digest_of(key)).first()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return token.user, token
