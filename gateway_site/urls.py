"""The project URLconf: the admin and its staff pages, login, the member page, then every proxied route."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Included by name, so this project file is the only place that wires the apps' pages together.
urlpatterns = [
    path("admin/", include("proxy_app.admin.urls")),  # the dashboard and detail logs, ahead of the admin's catch-all
    path("admin/", admin.site.urls),
    # The member page and its login (any active Django account; not staff-only).
    path("accounts/login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", include("proxy_app.pages.member")),
    *([path("oidc/", include("mozilla_django_oidc.urls"))] if settings.OIDC_ENABLED else []),  # single sign-on
    path("", include("proxy_app.urls")),
]
