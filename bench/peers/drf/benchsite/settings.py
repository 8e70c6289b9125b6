"""A minimal Django project doing latchkey's keyed-endpoint job with
djangorestframework-api-key: the key in X-API-Key is looked up (by prefix,
then its SHA-512 hash checked), 401/403 for an unknown key, a per-key rate
limit (DRF throttle, 10,000 per minute), and a JSON answer.

DRF_DB (the SQLite file) and DRF_ME_JSON (the body of /api/v1/me) come from
the environment; bench/load.sh sets both.
"""
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_api_key",
]
# No session, CSRF or other middleware: only what the keyed endpoint needs.
MIDDLEWARE = []
ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DRF_DB", "db.sqlite3"),
        # Keep the connection open across requests, as latchkey's pool does.
        "CONN_MAX_AGE": None,
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework_api_key.permissions.HasAPIKey"],
    "DEFAULT_THROTTLE_CLASSES": ["benchsite.throttling.PerKeyThrottle"],
    # The same budget as a 10,000/min latchkey key. DRF keeps the throttle's
    # history in the cache (per gunicorn worker with LocMemCache).
    "DEFAULT_THROTTLE_RATES": {"api_key": "10000/min"},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
