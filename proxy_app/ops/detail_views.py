"""Staff-only page showing one request's detail log (linked from the usage record admin)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404

from proxy_app.ops import detail_log


@staff_member_required
def detail_log_file(request, request_id: str):
    path = detail_log.find(request_id)
    if path is None:
        raise Http404("No detail log for this request (not switched on then, or already rotated away).")
    return FileResponse(path.open("rb"), content_type="application/json")
