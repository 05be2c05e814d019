"""Model versions under a TF Serving model base path: discovery by polling, loading, and the serving policy.

Like TF Serving's default ("latest") policy, the newest complete version is served; a new version folder is picked
up without a restart, and the previous one keeps serving until the new one has loaded. A version that fails to
load is reported in the status and does not replace the one being served.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Optional

import tensorflow as tf
from absl import logging


@dataclasses.dataclass
class Version:
    number: int
    state: str  # LOADING | AVAILABLE | END
    model: Optional[object] = None
    error: str = ""


class ModelRegistry:
    """The versions of one model name."""

    def __init__(self, name: str, base_path: str, keep_versions: int = 1):
        self.name = name
        self.base_path = base_path
        self.keep_versions = keep_versions
        self._versions: dict = {}
        self._lock = threading.Lock()

    def on_disk(self) -> list:
        """Complete version folders (numeric name with saved_model.pb), ascending."""
        from sr_keras.export_lib import complete_versions

        return complete_versions(self.base_path)

    def poll(self) -> None:
        """Loads the newest version on disk if it is new; retires versions beyond `keep_versions`."""
        disk = self.on_disk()
        if not disk:
            return
        newest = disk[-1]
        with self._lock:
            if newest in self._versions:
                return
            self._versions[newest] = Version(newest, "LOADING")
        try:
            model = tf.saved_model.load(os.path.join(self.base_path, str(newest)))
            for sig in ("serving_default", "enhance"):
                model.signatures[sig]  # noqa: B018 - a version without our signatures is not servable.
        except Exception as e:  # Any load failure: keep serving what we had.
            logging.error("version %d of %s failed to load: %s", newest, self.name, e)
            with self._lock:
                self._versions[newest] = Version(newest, "END", error=f"{type(e).__name__}: {e}"[:500])
            return
        with self._lock:
            self._versions[newest] = Version(newest, "AVAILABLE", model)
            available = sorted(n for n, v in self._versions.items() if v.state == "AVAILABLE")
            for n in available[:-self.keep_versions]:
                self._versions[n] = Version(n, "END")  # Dropping the reference unloads it.
        logging.info("serving %s version %d", self.name, newest)

    def get(self, version: Optional[int] = None) -> Optional[Version]:
        """The requested (or latest) AVAILABLE version, or None."""
        with self._lock:
            available = {n: v for n, v in self._versions.items() if v.state == "AVAILABLE"}
        if not available:
            return None
        if version is None:
            return available[max(available)]
        return available.get(version)

    def status(self, version: Optional[int] = None) -> list:
        with self._lock:
            items = sorted(self._versions.values(), key=lambda v: -v.number)
        if version is not None:
            items = [v for v in items if v.number == version]
        return [{"version": str(v.number), "state": v.state,
                 "status": {"error_code": "UNKNOWN" if v.error else "OK", "error_message": v.error}}
                for v in items]
