"""The proxy_app Django app: label, and tracing switched on at start when configured."""

from django.apps import AppConfig


class ProxyAppConfig(AppConfig):
    name = "proxy_app"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from django.conf import settings

        if settings.OTEL_ENABLED:  # OTEL_EXPORTER_OTLP_ENDPOINT is set
            from proxy_app.ops import tracing

            tracing.configure()
