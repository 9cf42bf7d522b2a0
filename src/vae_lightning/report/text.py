"""The report's prose: templates whose every number is a computed placeholder.

A template (``discussion.md``, a study's ``study.md``, the prose of the page's sections of
methods and networks in page.py) is markdown with placeholders
``${function(argument, ...)}``:

- a quantity of one record (quantities.PER_RECORD), its first argument the record's name or a
  shell pattern of names; a pattern's records must all give the same value, which is shown;
- a quantity across records (comparisons.ACROSS): differences, tests, lists;
- ``literature(name)``: a value of vae_lightning.literature.LITERATURE (which names its
  source).

Outside the placeholders a template holds no digit but those of the names in ``NAMES``
(figure and table numbers, years of citations, K/2, z_1, N(0, I)): the report refuses any
other, so every number on the page is computed from the records or comes from the literature
module.
"""

import functools
import re
from pathlib import Path

from vae_lightning.errors import UserError
from vae_lightning.literature import LITERATURE
from vae_lightning.report.comparisons import ACROSS
from vae_lightning.report.formats import as_text
from vae_lightning.report.quantities import PER_RECORD
from vae_lightning.report.records import Record, matching

PLACEHOLDER = re.compile(r"\$\{(\w+)\(([^)]*)\)\}")
NAMES = re.compile(r"Figure \d+|Table \d+|\(\d{4}\)|K/2|z_\d|N\(0, I\)")
NUMBER = re.compile(r"\d[\d.,^]*")


def literal_numbers(template: str) -> list[str]:
    """The numbers a template states outside its placeholders and NAMES."""
    return NUMBER.findall(NAMES.sub(" ", PLACEHOLDER.sub(" ", template)))


def value(records: list[Record], function: str, args: list[str]) -> str:
    """The text of one placeholder."""
    match = functools.partial(matching, records)
    if function == "literature":
        return LITERATURE[args[0]][0]
    if function in ACROSS:
        return ACROSS[function](match, *args)
    if function not in PER_RECORD:
        raise UserError(f"No quantity {function!r}.")
    shown = {as_text(PER_RECORD[function](r, *args[1:])) for r in match(args[0])}
    if len(shown) != 1:
        raise UserError(f"{function}({', '.join(args)}) differs between records: {shown}.")
    return shown.pop()


def render(template: str, records: list[Record], source: Path) -> str:
    """The template with its placeholders filled in from the records."""
    if stray := literal_numbers(template):
        raise UserError(f"{source} states numbers that no placeholder computes: {stray}.")

    def fill(placeholder: re.Match) -> str:
        args = [a.strip() for a in placeholder[2].split(",")] if placeholder[2].strip() else []
        try:
            return value(records, placeholder[1], args)
        except (UserError, KeyError, TypeError) as err:
            raise UserError(f"{source}: {placeholder[0]}: {err}") from err

    text = PLACEHOLDER.sub(fill, template)
    if "${" in text:
        raise UserError(f"{source}: a placeholder is not of the form ${{function(arguments)}}.")
    return text
