"""The product guide's restart-service template, shared by the template and execute tests."""

from __future__ import annotations

RESTART_TEMPLATE = {
    "name": "restart-service",
    "category": "system",
    "job_document": {
        "version": "1.0",
        "includeStdOut": True,
        "steps": [{
            "name": "Restart Service",
            "type": "runCommand",
            "input": {"command": "systemctl,restart,{{SERVICE_NAME}}"},
            "runAsUser": "root",
        }],
    },
}
