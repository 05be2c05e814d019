"""Writes sr_keras/zoo/figures.json: each zoo model's parameters and PSNR-Y/SSIM-Y on the sample photos, as its
conversion measures them (`sr_keras.evaluate.protocol.sample_figures`, the project's one protocol), so that `sr-models` prints
them at once on every install. Run by `make zoo-figures` after a change to the zoo, the sample photos or the
protocol; models whose package is not installed keep their previous figures.

  python benchmarks/zoo_figures.py
"""

import datetime
import json
import os
import platform
import sys

from sr_keras import version, zoo
from sr_keras.cli.utils import quiet_tf_logs
from sr_keras.evaluate import protocol
from sr_keras.savedmodel import layout
from sr_keras.zoo import cache as zoo_cache


def main() -> int:
    quiet_tf_logs()
    figures = zoo_cache.shipped_figures()
    for name in zoo.MODELS:
        if not zoo_cache.available(name):
            print(f"{name}: {zoo_cache.status(name)}; its figures are kept", flush=True)
            continue
        folder = zoo_cache.ensure(name)
        card = zoo_cache.card(name)
        card["sample_photos"] = protocol.sample_figures(layout.resolve(folder))
        figures[name] = {"parameters": card["parameters"], "sample_photos": card["sample_photos"],
                         "measured_with": {"sr_keras": version.__version__,
                                           "package": f"{card['provenance']['package']} "
                                                      f"{card['provenance']['package_version']}",
                                           "date": datetime.date.today().isoformat(),
                                           "machine": platform.machine()}}
        print(f"{name}: {card['sample_photos']['gain_db']:+.3f} dB over bicubic", flush=True)
    text = json.dumps({"protocol": "sr_keras.evaluate.protocol.sample_figures: mean PSNR-Y / SSIM-Y (scale pixels shaved) of the "
                                   "model and of bicubic on the held-back sample photos",
                       "models": dict(sorted(figures.items()))}, indent=2) + "\n"
    with open(zoo_cache.FIGURES_FILE, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(zoo_cache.FIGURES_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
