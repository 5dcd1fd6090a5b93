"""Which environment this deployment runs in: ``AESTHETIC_PROFILE=local`` (default) or ``production``."""

import os

PROFILE_ENV = "AESTHETIC_PROFILE"
PROFILES = ("local", "production")
#: The judge each profile uses unless ``AESTHETIC_JUDGE`` says otherwise.
DEFAULT_JUDGE = {"local": "heuristic", "production": "openai"}


def current_profile() -> str:
    profile = os.environ.get(PROFILE_ENV, "local")
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={profile!r} is not one of {PROFILES}")
    return profile
