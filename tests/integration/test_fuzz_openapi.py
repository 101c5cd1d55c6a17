"""A schema-based fuzzer (schemathesis) against the OpenAPI document: no input answers 5xx.

Authentication is off for this app so the generated requests reach every parser and every
endpoint's own checks (with it on, most would stop at the 401 that comes first). The number of
examples per operation is bounded and derandomized: a few tens of seconds, the same each run.
"""

from __future__ import annotations

from dataclasses import replace

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from api.app import create_app

EXAMPLES_PER_OPERATION = 20


def test_no_generated_request_answers_5xx(settings):
    app = create_app(replace(settings, auth_disabled=True))
    app.config["TESTING"] = True
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    server_errors: list[tuple] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20

    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                             derandomize=True, suppress_health_check=list(HealthCheck),
                             database=None)
        def call(case) -> None:
            response = case.call()
            if response.status_code >= 500:
                server_errors.append((case.method, case.formatted_path, case.query, case.body,
                                      response.status_code, response.text[:300]))

        call()
    assert server_errors == []
