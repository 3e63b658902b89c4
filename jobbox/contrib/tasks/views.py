"""A tracked task's status over HTTP: `GET api/tasks/<result id>/`, zero SQL on a hit, the
caller's tenant checked on every path (another tenant's task is the same 404 as none)."""

from jobbox.contrib.tasks.tracking import KIND
from jobbox.http.views import JobStatusAPIView


class TaskStatusAPIView(JobStatusAPIView):
    kind = KIND
