"""Cache keys: what makes a stage's result what it is.

key = sha256 of (stage code, values of the parameters it reads, hashes of
the upstream outputs it loads, environment fingerprint). Same key, same
result: the stage is reused. Keys are kept per execution, not just the
latest, so flipping a parameter back is a hit again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from nbops.spec import StageSpec

__all__ = ["stage_cache_key", "CACHE_KEY_VERSION"]

CACHE_KEY_VERSION = 1


def stage_cache_key(stage: StageSpec, params: Mapping[str, Any], inputs: Mapping[str, str], env_fingerprint: str) -> str:
    """``inputs`` maps each input variable to the sha256 of the artifact loaded."""
    payload = {
        "v": CACHE_KEY_VERSION,
        "code": stage.code_sha256,
        "params": {name: params[name] for name in sorted(stage.parameters)},
        "inputs": dict(sorted(inputs.items())),
        "env": env_fingerprint,
        "metrics": stage.metrics,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()
