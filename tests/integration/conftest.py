"""Makes the lab fixtures (lab_fixtures.py) available to the integration tests.

If tests/conftest.py registers tests.integration.lab_fixtures as a plugin for the
whole tree, delete this file.
"""
from tests.integration.lab_fixtures import lab, lab_factory  # noqa: F401
