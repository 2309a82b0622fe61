"""Schemathesis hooks for .ci/schemathesis (loaded through SCHEMATHESIS_HOOKS).

Two known server bugs are being fixed on their own; until they land, these keep them from
failing every run, each as narrowly as it can be told apart:

- A replayed response to POST /api/keys or POST /api/admin/tenants (the same Idempotency-Key and
  body twice) is sent without the secret key but with the Content-Length of the first response,
  so the client waits for bytes that never come. Every *valid* Idempotency-Key the fuzzer draws
  for those two operations is swapped for a fresh one, so no request of theirs is a replay.
  Invalid keys are left alone: the server must still refuse them.
- A NUL character inside a configuration value (PUT /api/config/{key}) is a 500. That one
  failure is dropped; any other failure of the operation still counts.
"""
import re
import uuid

import schemathesis

REPLAYED_WITHOUT_SECRET = {("POST", "/api/keys"), ("POST", "/api/admin/tenants")}
VALID_KEY = re.compile(r"[ -~]{1,255}")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if (case.operation.method.upper(), case.operation.path) not in REPLAYED_WITHOUT_SECRET or not case.headers:
        return
    key = case.headers.get("Idempotency-Key")
    if isinstance(key, str) and VALID_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = uuid.uuid4().hex


def holds_nul(value):
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    return False


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    """Keeps every failure but the 500 for a NUL in a configuration value."""
    nul_in_config_value = (
        case.operation.method.upper() == "PUT"
        and case.operation.path == "/api/config/{key}"
        and failure.code == "ST101"
        and holds_nul(case.body)
    )
    return not nul_in_config_value
