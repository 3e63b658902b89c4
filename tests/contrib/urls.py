from django.urls import include, path

urlpatterns = [
    path("", include("jobbox.http.urls")),
    path("", include("jobbox.contrib.tasks.urls")),
]
