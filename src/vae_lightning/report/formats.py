"""How the report writes numbers: nats to two decimals, counts with thousands separators,
training budgets as powers of ten."""

import math

NONE = "—"


def powers_of_ten(n: float) -> str:
    """1000000 -> '10^6', 2500000 -> '2.5 x 10^6'."""
    mantissa, exponent = f"{n:.1e}".split("e")
    power = f"10^{int(exponent)}"
    return power if mantissa == "1.0" else f"{mantissa.rstrip('0').rstrip('.')} x {power}"


def parse_power(text: str) -> int:
    """'10^6' -> 1000000, '2.5 x 10^6' -> 2500000; plain integers as they are."""
    mantissa, _, power = text.rpartition("10^") if "^" in text else ("", "", "")
    if not power:
        return int(text.replace(",", ""))
    scale = float(mantissa.rstrip(" x") or 1)
    return round(scale * 10 ** int(power))


def wall_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def nats(value: float, signed: bool = False) -> str:
    """A value in nats to two decimals ('+' before a positive difference if ``signed``)."""
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def as_text(value: float | int | str) -> str:
    """A quantity as the text shows it: floats as nats, integers with separators."""
    if isinstance(value, float):
        return nats(value)
    return f"{value:,}" if isinstance(value, int) else value


def with_sem(value: dict[str, float] | None) -> str:
    return NONE if value is None else f"{value['mean']:.2f} ± {value['sem']:.2f}"


def p_value(p: float) -> str:
    """Two significant digits, as '0.18', '0.10', '0.063' or '0.0020'."""
    return f"{p:.{max(1, 1 - math.floor(math.log10(p)))}f}"


def setting(value: object) -> str:
    """A config value as the text shows it: lists joined by commas, floats in short form."""
    if isinstance(value, list):
        return ", ".join(map(setting, value))
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
