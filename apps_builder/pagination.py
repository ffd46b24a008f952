"""Pages of the platform API: DRF's ``limit``/``offset`` with both numbers bounded, so a
huge value is clamped here instead of overflowing the database's bigint (a 500)."""

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``limit`` at most ``max_limit``; ``offset`` at most ``MAX_OFFSET`` (far past any
    table's end, where a page is simply empty)."""

    max_limit = 1000
    MAX_OFFSET = 10**12

    def get_offset(self, request) -> int:
        return min(super().get_offset(request), self.MAX_OFFSET)
