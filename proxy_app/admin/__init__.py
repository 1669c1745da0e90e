"""The admin of the gateway's models and the usage dashboard; Django's autodiscovery imports this."""

from proxy_app.admin import accounts, audit, responses, site  # noqa: F401  (register every ModelAdmin, chat sessions included)
