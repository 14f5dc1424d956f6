"""The app's pods start on what the stack gives them: the ConfigMap and the Secret their `envFrom` reads
pass the app's own staging and production checks (verified TLS to Postgres and Redis, field keys, an
https public URL, mail over STARTTLS), so the first `up` does not leave the pods crash-looping."""

from __future__ import annotations

import os

import pytest

from chatwizard.core.crypto import new_key_entry
from chatwizard.core.settings import Settings

from .conftest import Stack
from .test_mail import app_config, app_secrets


def test_the_apps_pods_pass_the_apps_own_checks(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith(("CHATWIZARD_", "OPENAI_"))]:
        monkeypatch.delenv(name)
    for name, value in {**app_config(stack), **app_secrets(stack)}.items():  # envFrom's order: Secret last
        monkeypatch.setenv(name, str(value))
    # The operator's key ring (`chatwizard:fieldKeys`): the mock's placeholder secret is not one.
    assert os.environ["CHATWIZARD_FIELD_KEYS"]
    monkeypatch.setenv("CHATWIZARD_FIELD_KEYS", new_key_entry("v1"))
    settings = Settings()
    assert settings.environment == stack.name
    assert settings.public_url.startswith("https://") and settings.smtp_starttls
