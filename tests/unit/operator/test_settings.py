"""The kopf settings the operator's startup applies (`handlers.configure`)."""

from __future__ import annotations

import kopf

from kingbus_operator import handlers


def test_without_a_peering_flag_the_charts_default_peering_is_used() -> None:
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    assert settings.peering.name == handlers.DEFAULT_PEERING == "kingbus-operator"


def test_the_peering_flag_is_honoured() -> None:
    # What kopf does with `kopf run --peering=other` before any startup handler runs.
    settings = kopf.OperatorSettings()
    settings.peering.mandatory = True
    settings.peering.name = "other"
    handlers.configure(settings)
    assert (settings.peering.name, settings.peering.mandatory) == ("other", True)


def test_a_delete_is_not_held_for_a_minute_by_a_running_pass() -> None:
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    assert settings.background.cancellation_polling == 1.0
    assert settings.posting.loggers is False
    assert settings.persistence.finalizer == handlers.FINALIZER
