"""MODEL_CARD.md: the shipped model's card (`card.json`, `savedmodel.layout.card_record`) written out for people."""

from __future__ import annotations

import os

TARGET_GAIN_DB = 1.5  # Issue 6: mean PSNR-Y gain over bicubic on unseen photos.


def architecture_text(arch: dict) -> str:
    tail = ("every conv at LR, then one conv to 3x{s}^2 channels and one x{s} pixel shuffle (ESPCN-style tail)"
            if arch.get("upsampler") == "espcn" else "x2 pixel-shuffle stages and a 9x9 conv at HR (SRResNet tail)")
    bn = "with BatchNorm" if arch.get("batch_norm", True) else "without BatchNorm (EDSR-style)"
    return (f"{arch['num_blocks']} residual blocks of {arch['filters']} filters {bn}, "
            + tail.format(s=arch["scale"]))


# What each held-out folder of sr-fetch-photos holds, for the card.
TEST_SET_NOTES = {
    "test": "Photos of other kinds (landscape, interior, objects, nature) from the Ubuntu free culture showcase, "
            "never trained on; prepared like the training photos (camera JPEGs reduced 4x), so clean and sharp.",
    "test_libs": "The sample photos that Python libraries ship in Debian (scikit-learn's china and flower, "
                 "matplotlib's Grace Hopper, PyWavelets' aerial photo and ascent), used as shipped: small camera "
                 "JPEGs and two grayscale images, like the photos a user brings.",
}


def test_section(t: dict) -> str:
    note = TEST_SET_NOTES.get(os.path.basename(os.path.normpath(t["folder"])), "")
    return f"""
### Held out: {t['images']}
{note}
Reproduce with `sr-evaluate --model=default --images={t['folder']}` after `sr-fetch-photos`.

{t['table']}

Mean gain over bicubic: **{t['gain_db']:+.2f} dB** PSNR-Y.

{per_image_table(t)}
"""


def card_markdown(card: dict, table: str) -> str:
    c = card
    gain = c["validation"]["gain_db"]
    test = "".join(test_section(t) for t in c.get("tests", []))
    pooled = c.get("all_unseen")
    if pooled:
        test += (f"\n### All {pooled['count']} unseen photos together\n"
                 f"Mean gain **{pooled['gain_db']:+.2f} dB** PSNR-Y; the lowest single photo {pooled['min_gain_db']:+.2f} dB "
                 f"({pooled['min_image']}).\n")
    verdict = (f"On these photos this meets the target of +{TARGET_GAIN_DB} dB mean PSNR-Y over bicubic on unseen photos"
               if gain >= TARGET_GAIN_DB else
               f"On these photos this is short of the target of +{TARGET_GAIN_DB} dB mean PSNR-Y over bicubic on unseen photos")
    return f"""# sr_keras default model (x{c['scale']})

A PSNR-oriented SRResNet-style generator: {c['architecture_text']}; with a global bicubic residual
(output = bicubic(lr) + f(lr), last conv initialised to zero), trained with an L1 loss and no GAN phase.
{c['parameters']:,} parameters; SavedModel size {c['size_mb']:.1f} MB.

## Data
{c['data']['description']}

Held back for validation (never trained on): {', '.join(c['data']['val'])}.

| training photos | source | licence |
|---|---|---|
{chr(10).join(f"| {r['photos']} | {r['source']} | {r['license']} |" for r in c['data']['train'])}

## Recipe
`make default-model`, i.e. the project's own commands:

```
{c['recipe']}
```
Resolved training config: see card.json (`"config"`).
{stages_text(c)}

## Validation (x{c['scale']}, PSNR/SSIM on the Y channel, {c['scale']} border pixels shaved)

{table}

Mean gain over bicubic: **{gain:+.2f} dB** PSNR-Y. {verdict}
(3 held-back photos; reproduce with `sr-evaluate --model=default --images=sample`).

Per image, PSNR-Y (dB):

{per_image_table(c['validation'])}
{test}
## Runtime
{c['runtime']}

## Limits
It restores detail lost to clean bicubic downscaling and never invents texture (L1 loss, no GAN): expect
sharper edges and text, not hallucinated fur or skin pores. It expects clean input; JPEG artefacts and noise are
enlarged, not removed (train with `sr-build-tfrecords --degradation=realistic` for such inputs). Trained on
{c['data']['count']} photos, many of them nature close-ups; faces, text and man-made scenes are under-represented.
"""


def stages_text(c: dict) -> str:
    stages = c["stages"]
    if len(stages) == 1:
        return (f"Steps: {stages[0]['steps']}. Training time: {c['training_seconds'] / 60:.1f} min on {c['machine']} "
                f"({c['training_time_how']}).")
    rows = "\n".join(f"| {i + 1} | `{s['workdir']}` | {s['data']} | {s['steps']} | {s.get('learning_rate', s.get('lr')):g} | {s['seconds'] / 60:.1f} |"
                     for i, s in enumerate(stages))
    return (f"Trained in {len(stages)} stages, each starting from the previous one's EMA generator "
            f"(`--init_checkpoint`), with a fresh cosine schedule:\n\n"
            f"| stage | run | data | steps | peak lr | minutes |\n|---|---|---|---|---|---|\n{rows}\n\n"
            f"Training time: {c['training_seconds'] / 60:.1f} min in all on {c['machine']} ({stages[-1]['how']}).")


def per_image_table(summary: dict) -> str:
    rows = "\n".join(f"| {n} | {v['bicubic']:.2f} | {v['model']:.2f} | {v['model'] - v['bicubic']:+.2f} |"
                     for n, v in summary["per_image_psnr_y"].items())
    return "| image | bicubic | model | gain |\n|---|---|---|---|\n" + rows


