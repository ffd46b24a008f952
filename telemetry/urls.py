from django.urls import path

from telemetry import extras
from telemetry.http import views

app_name = "telemetry"

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("health", views.health, name="health"),
    path("health/ready", views.health, name="health-ready"),
    path("health/live", views.live, name="health-live"),
]

if extras.installed(extras.API):  # without DRF the REST API is off (system check telemetry.W006)
    from telemetry.api import views as api_views

    urlpatterns += [
        path("telemetry/api/traces", api_views.TraceListView.as_view(), name="api-traces"),
        path("telemetry/api/traces/<str:trace_id>", api_views.TraceDetailView.as_view(), name="api-trace"),
        path("telemetry/api/logs", api_views.LogListView.as_view(), name="api-logs"),
        path("telemetry/api/metrics", api_views.MetricsView.as_view(), name="api-metrics"),
        path("telemetry/api/usage/<str:organization_id>", api_views.UsageView.as_view(), name="api-usage"),
    ]
