"""HTML report and ROC plots rendered from a results directory."""

from mmia.report.render import render_report

__all__ = ["render_report"]
