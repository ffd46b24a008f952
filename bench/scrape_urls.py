"""The platform's URLs plus django-prometheus's ``/django-prometheus/metrics`` (bench/scrape.py)."""

from django.urls import include, path

from config.urls import urlpatterns as platform_urlpatterns

urlpatterns = [path("django-prometheus/", include("django_prometheus.urls")), *platform_urlpatterns]
