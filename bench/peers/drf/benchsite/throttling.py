"""Rate limit per API key (its public prefix), not per user or IP."""
from rest_framework.throttling import SimpleRateThrottle


class PerKeyThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        key = request.META.get("HTTP_X_API_KEY")
        if not key:
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.split(".", 1)[0]}
