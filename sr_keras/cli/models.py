"""sr-models: the models this install can use by name, with what each is for, its scale and size, its PSNR gain on
clean (bicubic) inputs, its LPIPS on real-world photos (JPEG, noise, blur), its licence, and what the default
precision runs it in on a CPU with native bfloat16 (float32 when its exactness check found bfloat16 not exact).

  sr-models                      # the table
  sr-models --convert=span_x2    # convert one now (otherwise each converts on first use)

Every name works in sr_keras.load(NAME), sr-enhance/sr-evaluate/sr-serve --model=NAME and sr-export --model=NAME.
"""

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs

_CONVERT = flags.DEFINE_list("convert", [], "Convert these zoo models into the cache now (`all`: every installed "
                             "one), measuring each on the sample photos.")


def table() -> str:
    """The models as a Markdown table, `default` marked."""
    from sr_keras import zoo
    from sr_keras.zoo import cache as zoo_cache

    default = zoo_cache.default_name()
    real = zoo_cache.real_world_figures()
    rows = ["| name | for | scale | parameters | PSNR-Y gain on the sample photos (clean) | real-world LPIPS "
            "(lower: closer) | license | on bfloat16 CPUs | status |", "|---|---|---|---|---|---|---|---|---|"]
    for name in zoo.NAMES:
        c = zoo_cache.card(name) or {}  # None: a shipped model missing from this install (its status says so).
        sample = c.get("sample_photos") or {}
        status = zoo_cache.status(name)
        if sample.get("gain_db") is not None:
            gain = f"{sample['gain_db']:+.2f} dB"
        else:
            gain = "not measured (needs scikit-image)" if status == "ready" else "after conversion"
        params = f"{c['parameters']:,}" if c.get("parameters") else "-"
        licence = c.get("provenance", {}).get("license_short", "?")
        label = f"{name} (default)" if name == default else name
        lpips = f"{real[name]['lpips']:.3f}" if name in real else "-"
        rows.append(f"| {label} | {zoo.purpose(name)} | x{c.get('scale')} | {params} | {gain} | {lpips} | {licence} "
                    f"| {zoo_cache.bfloat16_use(name)} | {status} |")
    rows.append("\nClean images (screenshots, renders, clean photos): a PSNR model. Real photos (phone JPEGs, noise, "
                "blur): a real-photo model; a PSNR model sharpens JPEG blocks and noise.")
    return "\n".join(rows)


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras import zoo
    from sr_keras.savedmodel import layout
    from sr_keras.zoo import cache as zoo_cache

    names = list(zoo.MODELS) if _CONVERT.value == ["all"] else _CONVERT.value
    for name in names:
        if name not in zoo.MODELS:
            fail(f"--convert={name}: not a zoo model ({', '.join(zoo.MODELS)})")
        if _CONVERT.value == ["all"] and not zoo_cache.available(name):
            print(f"skipped {name}: {zoo_cache.status(name)}")
            continue
        try:
            print(f"{name}: {zoo_cache.ensure(name)}")
        except (layout.ModelNotFoundError, layout.SavedModelError) as e:
            fail(str(e))
    try:
        print(table())
    except zoo_cache.CacheError as e:
        fail(str(e))
    print(f"\nconverted models live in {zoo.cache_dir()}/zoo (set ${zoo.CACHE_ENV} to move them)")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
