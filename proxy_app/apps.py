"""The proxy_app Django app: label, default auto field."""

from django.apps import AppConfig


class ProxyAppConfig(AppConfig):
    name = "proxy_app"
    verbose_name = "Gateway"
