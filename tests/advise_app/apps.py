from django.apps import AppConfig


class AdviseAppConfig(AppConfig):
    name = "tests.advise_app"
    label = "advise_app"
    default_auto_field = "django.db.models.BigAutoField"
