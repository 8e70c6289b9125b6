"""The keyed endpoint: GET /api/v1/me answers the same JSON latchkey's
/api/v1/me gave for a bench key (read once at start-up). The key check
(HasAPIKey) and the per-key throttle come from the REST_FRAMEWORK settings."""
import json
import os

from rest_framework.response import Response
from rest_framework.views import APIView

with open(os.environ.get("DRF_ME_JSON", "me.json"), encoding="utf-8") as f:
    ME = json.load(f)


class Me(APIView):
    def get(self, request):
        return Response(ME)
