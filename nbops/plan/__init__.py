"""Run planning: parameter resolution, secrets, cache keys, the reuse decision and its reason."""

from nbops.plan.cache import cache_key, stage_key_parts
from nbops.plan.environment import base_environment, installed_packages
from nbops.plan.explain import REASON_KINDS, Reason, explain_change
from nbops.plan.params import is_secret, load_params_file, mask_secrets, parse_assignments, resolve_params, run_params
from nbops.plan.reuse import REUSE, RUN, Decision, ReusePlanner

__all__ = [
    "REASON_KINDS",
    "REUSE",
    "RUN",
    "Decision",
    "Reason",
    "ReusePlanner",
    "base_environment",
    "cache_key",
    "explain_change",
    "installed_packages",
    "is_secret",
    "load_params_file",
    "mask_secrets",
    "parse_assignments",
    "resolve_params",
    "run_params",
    "stage_key_parts",
]
