"""What a running stage imports: context, marshalling, metrics, checks.

Kept small and quick to import: it is loaded in every stage kernel.
"""

from nbops.runtime.api import input, log_artifact, log_metric
from nbops.runtime.context import begin_stage, current

__all__ = ["begin_stage", "current", "input", "log_artifact", "log_metric"]
