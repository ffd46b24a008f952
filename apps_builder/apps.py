from django.apps import AppConfig


class AppsBuilderConfig(AppConfig):
    name = "apps_builder"
    verbose_name = "App builder"
    default_auto_field = "django.db.models.BigAutoField"
