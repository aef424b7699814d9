"""Saving, rendering and printing a run: results files, HTML report and ROC plots, console table."""

from mmia.report.console import print_run
from mmia.report.render import render_report
from mmia.report.save import save_run

__all__ = ["print_run", "render_report", "save_run"]
