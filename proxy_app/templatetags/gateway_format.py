"""Number formats for the admin dashboard and the member page: tokens, USD, percentages."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def num(value) -> str:
    """12345678 -> '12,345,678'."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—" if value in (None, "") else str(value)


@register.filter
def usd(value) -> str:
    """Two decimals from a dollar, four below, six below a cent (token costs are small):
    '12.50', '0.0042', '0.000021', and '0.00' for nothing."""
    try:
        amount = Decimal(value or 0)
    except (TypeError, ValueError, ArithmeticError):
        return str(value)
    if abs(amount) >= 1 or not amount:
        return f"{amount:,.2f}"
    return f"{amount:.4f}" if abs(amount) >= Decimal("0.01") else f"{amount:.6f}"


@register.filter
def percent(value) -> str:
    """0.0312 -> '3.1%'; None (no requests) -> '—'."""
    return "—" if value is None else f"{value * 100:.1f}%"
