"""The service set an end-to-end module runs against unless it defines its own ``services``."""

from __future__ import annotations

import pytest

from tests.support.services import ServiceSet


@pytest.fixture(scope="module")
def services(sms_pipeline: ServiceSet) -> ServiceSet:
    """The four services, notify sending SMS to the module's gateway, with the module's
    ``pipeline_env``."""
    return sms_pipeline
