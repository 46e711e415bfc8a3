"""Literal features of a (query, cached prompt) pair: what a sentence encoder reads poorly and a cached
answer depends on exactly. They are inputs of the learned decision (so calibration accounts for them),
never rules that decide alone; the shipped head reads the first two (``HeadWeights.literals``).

- numbers: the numbers written in digits differ ("2 GB" vs "4 GB", "Python 3.11" vs "3.12");
- identifiers: code identifiers, flags, file names or paths differ (``snake_case``, ``camelCase``,
  ``module.attr``, ``app.py``, ``--force``, ``/etc/hosts``, ```code```);
- units: the units of measure named differ ("512 MB" vs "512 GB", "10 km in miles" vs "10 miles in km"
  is caught by the head's word order instead: the same units on both sides).
"""

from __future__ import annotations

import functools
import re

import numpy as np

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_IDENTIFIER = re.compile(
    r"`[^`]+`|\B--?[A-Za-z][\w-]*|\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b|\b[a-z]+[A-Z][A-Za-z0-9]*\b"
    r"|\b[a-z_]\w*(?:\.[a-z_]\w*)+\b|\b[\w-]+\.[a-z]{1,5}\b|(?<![\w/.~:])(?:~|\.{1,2})?(?:/[\w.-]*[\w-])+"
)
# Units of measure, by every spelling that names one unit (a spelling maps to the unit's one name).
_UNITS = {
    **dict.fromkeys(["b", "byte", "bytes"], "byte"),
    **dict.fromkeys(["kb", "kib", "kilobyte", "kilobytes"], "kb"),
    **dict.fromkeys(["mb", "mib", "megabyte", "megabytes"], "mb"),
    **dict.fromkeys(["gb", "gib", "gigabyte", "gigabytes"], "gb"),
    **dict.fromkeys(["tb", "tib", "terabyte", "terabytes"], "tb"),
    **dict.fromkeys(["bit", "bits"], "bit"),
    **dict.fromkeys(["mm", "millimeter", "millimeters", "millimetre", "millimetres"], "mm"),
    **dict.fromkeys(["cm", "centimeter", "centimeters", "centimetre", "centimetres"], "cm"),
    **dict.fromkeys(["m", "meter", "meters", "metre", "metres"], "m"),
    **dict.fromkeys(["km", "kilometer", "kilometers", "kilometre", "kilometres"], "km"),
    **dict.fromkeys(["in", "inch", "inches"], "inch"),
    **dict.fromkeys(["ft", "foot", "feet"], "foot"),
    **dict.fromkeys(["yd", "yard", "yards"], "yard"),
    **dict.fromkeys(["mi", "mile", "miles"], "mile"),
    **dict.fromkeys(["mg", "milligram", "milligrams"], "mg"),
    **dict.fromkeys(["g", "gram", "grams"], "g"),
    **dict.fromkeys(["kg", "kilo", "kilos", "kilogram", "kilograms"], "kg"),
    **dict.fromkeys(["lb", "lbs", "pound", "pounds"], "lb"),
    **dict.fromkeys(["oz", "ounce", "ounces"], "oz"),
    **dict.fromkeys(["ml", "milliliter", "milliliters", "millilitre", "millilitres"], "ml"),
    **dict.fromkeys(["l", "liter", "liters", "litre", "litres"], "l"),
    **dict.fromkeys(["gallon", "gallons"], "gal"),
    **dict.fromkeys(["cup", "cups"], "cup"),
    **dict.fromkeys(["tbsp", "tablespoon", "tablespoons"], "tbsp"),
    **dict.fromkeys(["tsp", "teaspoon", "teaspoons"], "tsp"),
    **dict.fromkeys(["ms", "millisecond", "milliseconds"], "ms"),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], "s"),
    **dict.fromkeys(["min", "mins", "minute", "minutes"], "min"),
    **dict.fromkeys(["h", "hr", "hrs", "hour", "hours"], "h"),
    **dict.fromkeys(["day", "days"], "day"),
    **dict.fromkeys(["week", "weeks"], "week"),
    **dict.fromkeys(["month", "months"], "month"),
    **dict.fromkeys(["year", "years"], "year"),
    **dict.fromkeys(["celsius", "°c"], "celsius"),
    **dict.fromkeys(["fahrenheit", "°f"], "fahrenheit"),
    **dict.fromkeys(["kelvin"], "kelvin"),
    **dict.fromkeys(["%", "percent"], "percent"),
    **dict.fromkeys(["$", "usd", "dollar", "dollars"], "usd"),
    **dict.fromkeys(["€", "eur", "euro", "euros"], "eur"),
    **dict.fromkeys(["£", "gbp"], "gbp"),
    **dict.fromkeys(["mph"], "mph"),
    **dict.fromkeys(["kmh", "km/h", "kph"], "kmh"),
    **dict.fromkeys(["hz", "hertz"], "hz"),
    **dict.fromkeys(["khz"], "khz"),
    **dict.fromkeys(["mhz"], "mhz"),
    **dict.fromkeys(["ghz"], "ghz"),
    **dict.fromkeys(["w", "watt", "watts"], "w"),
    **dict.fromkeys(["kw", "kilowatt", "kilowatts"], "kw"),
    **dict.fromkeys(["v", "volt", "volts"], "v"),
    **dict.fromkeys(["px", "pixel", "pixels"], "px"),
    **dict.fromkeys(["pt", "points"], "pt"),
    **dict.fromkeys(["acre", "acres"], "acre"),
    **dict.fromkeys(["hectare", "hectares"], "ha"),
}
# Single letters ("m", "s", "g", "l", "in", "v", "w", "b", "h") name a unit only right after a number.
_AMBIGUOUS = {
    k for k in _UNITS if len(k) == 1 or k in {"in", "pt", "min", "sec", "day", "days", "week", "weeks"}
}
_WORD = re.compile(r"\d+(?:[.,]\d+)*\s*|[%$€£]|°[cf]|km/h|[a-z]+", re.IGNORECASE)
NAMES = ("numbers_differ", "identifiers_differ", "units_differ")
WIDTH = len(NAMES)


def _units(text: str) -> frozenset[str]:
    """The units a text names; an ambiguous short one only right after a number ("5 m", "10 in")."""
    found, after_number = set(), False
    for match in _WORD.finditer(text):
        word = match.group().strip().lower()
        if word[:1].isdigit():
            after_number = True
            continue
        unit = _UNITS.get(word)
        if unit is not None and (after_number or word not in _AMBIGUOUS):
            found.add(unit)
        after_number = False
    return frozenset(found)


@functools.lru_cache(maxsize=8192)  # a cached prompt is compared again and again
def _literals(text: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    numbers = frozenset(n.replace(",", "") for n in _NUMBER.findall(text))
    identifiers = frozenset(i.strip("`").lower() for i in _IDENTIFIER.findall(text))
    return numbers, identifiers, _units(text)


def features(query: str, cached: str) -> np.ndarray:
    """The pair's literal features, in the order of :data:`NAMES` (1.0 = differ)."""
    left, right = _literals(query), _literals(cached)
    return np.array([float(a != b) for a, b in zip(left, right, strict=True)], dtype=np.float32)
