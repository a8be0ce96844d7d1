"""Run planning: parameter resolution, secrets, cache keys (pure functions)."""

from nbops.plan.cache import stage_cache_key
from nbops.plan.params import is_secret, load_params_file, mask_secrets, parse_assignments, resolve_params

__all__ = ["is_secret", "load_params_file", "mask_secrets", "parse_assignments", "resolve_params", "stage_cache_key"]
