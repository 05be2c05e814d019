"""The record of a model's bfloat16 exactness check (`precision.exactness_check`) as an export's metadata holds it,
read without TensorFlow or Keras (the zoo cache checks a conversion has a current one)."""

from __future__ import annotations

from typing import Optional

CHECK_VERSION = 2  # Bumped when the probes or the rule change: older records are measured again (the shipped
# models' with `release.model_card.refresh_exactness`). 2: a smooth colour-wheel probe and the expected loss.
POLICY = "mixed_bfloat16"  # The low precision every export is checked in (`precision="bfloat16"`).
METADATA_KEY = "exactness"


def record(meta: dict, policy: str = POLICY) -> Optional[dict]:
    """The exactness record in an export's metadata for `policy`, when it is there and current."""
    found = (meta or {}).get(METADATA_KEY)
    if (isinstance(found, dict) and found.get("version") == CHECK_VERSION and found.get("policy") == policy
            and found.get("precision") in ("bfloat16", "float32")
            and isinstance(found.get("float32_layers"), list)):
        return found
    return None
