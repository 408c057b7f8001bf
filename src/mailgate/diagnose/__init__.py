"""The connection test and the diagnoses behind it."""

from mailgate.diagnose.connection_test import (
    SUCCESS,
    ConnectionReport,
    Step,
    StepStatus,
    run_connection_test,
)
from mailgate.diagnose.remedies import Finding

__all__ = ["SUCCESS", "ConnectionReport", "Finding", "Step", "StepStatus", "run_connection_test"]
