"""The results report from run records: `python -m vae_lightning.report RECORDS... --out DIR`.

Each argument is a record or a folder of records (records.py). The report is
``<out>/results.md`` and ``<out>/figures/*.png``: the same records give the same bytes
(records in a fixed order, paths relative to the working directory, no dates, PNGs without
metadata). A folder of records that holds a ``study.md`` is a study: runs that differ in a
few settings, reported in a section of their own (its title and text from ``study.md``)
with the settings that differ, instead of in the data set's grid. The discussion is the
``discussion.md`` templates among the arguments' folders; they and ``study.md`` state no
number that the report does not compute from the records or take from the literature module
(text.py).

Modules: records (reading records), variants (a record's method, networks and optimiser, and
where the page shows it), statistics (the tests and standard errors), quantities and
comparisons (the named quantities of the templates), frey_split (a Frey Face split's test
frames), text (templates), tables, figures, page (the page and the command line).
"""

from vae_lightning.report.page import main, write_report

__all__ = ["main", "write_report"]
