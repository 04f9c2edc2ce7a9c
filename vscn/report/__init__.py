"""The results report: one self-contained HTML page (`write_report`) and its figure files."""

from vscn.report.build import FIGURE_NAMES, check_published, package_versions, write_report
from vscn.report.inputs import ReportInputError, RunData, load_run

__all__ = ["FIGURE_NAMES", "ReportInputError", "RunData", "check_published", "load_run", "package_versions",
           "write_report"]
