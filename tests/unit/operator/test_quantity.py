"""Kubernetes quantities, against values k8s.io/apimachinery's resource.Quantity gives."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kingbus_operator.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1", 1),
        ("10Gi", 10 * 2**30),
        ("1Ki", 1024),
        ("1Mi", 2**20),
        ("1Ti", 2**40),
        ("1Pi", 2**50),
        ("1Ei", 2**60),
        ("1.5Gi", 3 * 2**29),
        ("500M", 500 * 10**6),
        ("1k", 1000),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("100m", Fraction(1, 10)),
        ("5u", Fraction(5, 10**6)),
        ("7n", Fraction(7, 10**9)),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2e-3", Fraction(2, 1000)),
        ("1.5e+2", 150),
        (".5Gi", 2**29),
        ("5.", 5),
        ("+4Ki", 4096),
        ("-1", -1),
        (" 2Gi ", 2 * 2**30),
    ],
)
def test_quantities(text: str, value: Fraction | int) -> None:
    assert parse_quantity(text) == value


def test_binary_and_decimal_units_order_as_expected() -> None:
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("1024Mi") == parse_quantity("1Gi")
    assert parse_quantity("1000M") == parse_quantity("1G")


@pytest.mark.parametrize(
    "text", ["", "Gi", "lots", "1 Gi", "1gi", "1GB", "1KiB", "1e", "1e1.5", "1.2.3", "--1", "0x10"]
)
def test_malformed_quantities_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(QuantityError, match="not a Kubernetes quantity"):
        parse_quantity(text)
