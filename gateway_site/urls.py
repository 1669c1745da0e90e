from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import member_views
from proxy_app.admin.site import dashboard_view
from proxy_app.ops.detail_views import detail_log_file

urlpatterns = [
    path("admin/detail-log/<str:request_id>/", detail_log_file, name="detail_log_file"),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin_dashboard"),
    path("admin/", admin.site.urls),
    # The member page and its login (any active Django account; not staff-only).
    path("accounts/login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", include(member_views.urlpatterns)),
    path("", include("proxy_app.urls")),
]
