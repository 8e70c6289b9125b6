from django.http import JsonResponse
from django.urls import path

from .views import Me


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("api/v1/me", Me.as_view()),
    path("healthz", healthz),
]
