"""Schemathesis hooks for the run against `perdure serve`.

`timeout` on a start asks the server to wait for the orchestration's result
for up to a day; the orchestrators schemathesis starts have no worker (any
name may be started, for remote workers), so each such case would hold the
run for as long as the value says. The wait is still exercised, capped at
a quarter of a second; every other value is sent as generated.
"""

import schemathesis

CAP_SECONDS = 0.25


@schemathesis.hook
def before_call(ctx, case, kwargs):
    query = case.query or {}
    value = query.get("timeout")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return
    if seconds > CAP_SECONDS:
        query["timeout"] = CAP_SECONDS
