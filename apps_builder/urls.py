from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import views


class OptionalSlashRouter(SimpleRouter):
    """``/api/apps/<slug>/`` and ``/api/apps/<slug>/view`` alike: the slash is optional."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("organizations", views.OrganizationViewSet, basename="organization")
router.register("apps", views.AppViewSet, basename="app")
router.register("data-sources", views.DataSourceViewSet, basename="data-source")
router.register("data-queries", views.DataQueryViewSet, basename="data-query")
router.register("templates", views.TemplateViewSet, basename="template")
router.register("tasks", views.BackgroundTaskViewSet, basename="task")
router.register("schedules", views.QueryScheduleViewSet, basename="schedule")

urlpatterns = [
    path("auth/login", views.login_view, name="login"),
    path("auth/logout", views.logout_view, name="logout"),
    path("invitations/accept", views.accept_invitation_view, name="accept-invitation"),
    path("organizations/<int:organization_pk>/members/",
         views.MemberViewSet.as_view({"get": "list"}), name="members"),
    path("organizations/<int:organization_pk>/members/<int:pk>/",
         views.MemberViewSet.as_view({"patch": "partial_update", "put": "update", "delete": "destroy"}),
         name="member"),
    path("organizations/<int:organization_pk>/invitations/",
         views.InvitationViewSet.as_view({"get": "list", "post": "create"}), name="invitations"),
    path("organizations/<int:organization_pk>/invitations/<int:pk>/",
         views.InvitationViewSet.as_view({"delete": "destroy"}), name="invitation"),
    path("", include(router.urls)),
]
