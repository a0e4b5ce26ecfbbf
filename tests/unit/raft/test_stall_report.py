"""kingbus.raft.tuned.describe_stall: where a long Raft tick went, as the warning says it."""

from __future__ import annotations

from kingbus.raft.tuned import describe_stall


def test_phases_in_name_order_then_the_rest() -> None:
    text = describe_stall(0.937, {"send": 0.04, "apply": 0.05, "journal sync": 0.03})
    assert text == "0.937 s (apply 0.050, journal sync 0.030, send 0.040, messages and the rest 0.817)"


def test_negligible_phases_are_left_out_and_the_rest_is_never_negative() -> None:
    assert describe_stall(0.3, {"apply": 0.0001, "checkpoint": 0.35}) == (
        "0.300 s (checkpoint 0.350, messages and the rest 0.000)"
    )


def test_a_stall_with_no_phase_measured_is_all_rest() -> None:
    assert describe_stall(0.5, {}) == "0.500 s (messages and the rest 0.500)"
