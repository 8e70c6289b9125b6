#!/usr/bin/env python3
"""Creates N API keys and prints `<key> <id>` lines: python seed.py N > keys."""
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
django.setup()

from rest_framework_api_key.models import APIKey  # noqa: E402

for i in range(int(sys.argv[1])):
    obj, key = APIKey.objects.create_key(name=f"bench key {i}")
    print(key, obj.id)
