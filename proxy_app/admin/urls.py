"""Staff pages beside Django's admin: the usage dashboard and one request's detailed log."""

from django.contrib import admin
from django.urls import path

from proxy_app.admin.site import dashboard_view
from proxy_app.ops.detail_views import detail_log_file

urlpatterns = [
    path("detail-log/<str:request_id>/", detail_log_file, name="detail_log_file"),
    path("dashboard/", admin.site.admin_view(dashboard_view), name="admin_dashboard"),
]
