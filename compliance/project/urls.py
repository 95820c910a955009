"""The root URL configuration: sign-in, the admin, the dashboard pages (compliance.web)
and the REST API (compliance.api). API paths all start with api/, page paths never do
(the API docs pages aside), so the two lists cannot shadow each other."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("compliance.api.urls")),
    path("", include("compliance.web.urls")),
]
