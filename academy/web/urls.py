from django.urls import include, path

from academy.web import views

urlpatterns = [
    path("", views.jobbox_page, name="jobbox-page"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
]
