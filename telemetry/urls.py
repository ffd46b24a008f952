from django.urls import path

from . import views

app_name = "telemetry"

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("health", views.health, name="health"),
]
