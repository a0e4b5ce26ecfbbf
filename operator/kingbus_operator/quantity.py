"""Kubernetes resource quantities ("10Gi", "500M", "1.5e3") as exact numbers.

The operator compares a claim's requested storage with ``spec.storage.size``.  The only
maintained parser in Python is ``kubernetes.utils.parse_quantity`` in the synchronous client,
which the operator does not otherwise need (it uses kubernetes_asyncio, which has none), so the
grammar of k8s.io/apimachinery's resource.Quantity is implemented here: a signed decimal number
followed by a binary suffix (Ki..Ei), a decimal suffix (n, u, m, "", k, M..E) or a decimal
exponent (e/E and an integer).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Final

_BINARY: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SHAPE: Final = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(.*)")
_EXPONENT: Final = re.compile(r"[eE]([+-]?\d+)")


class QuantityError(ValueError):
    pass


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity; QuantityError with the text when it is not one."""
    match = _SHAPE.fullmatch(text.strip())
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity")
    number, suffix = Fraction(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * (1 << (10 * _BINARY[suffix]))
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix]
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent is not None:
        return number * Fraction(10) ** int(exponent.group(1))
    raise QuantityError(f"{text!r} is not a Kubernetes quantity (unknown suffix {suffix!r})")
