"""The admin of proxy_app's models and the usage dashboard; Django's autodiscovery imports this."""

from proxy_app.admin import site  # noqa: F401  (registers every ModelAdmin, chat sessions included)
