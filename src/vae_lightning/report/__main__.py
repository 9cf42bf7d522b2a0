"""`python -m vae_lightning.report RECORDS... --out DIR` (page.main)."""

from vae_lightning.report.page import main

main()
