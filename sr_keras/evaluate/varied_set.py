"""A varied set of HR images by kind (photo, graphic, line art, text, screenshot), made only from what the
installed packages ship: scikit-image's data photos and pictures, matplotlib's fonts and renderer, and Pillow.

It is where an approximation that holds on photos can fail: bfloat16 inference (`models.precision`) rounds the
ringing along every hard edge of a black-and-white graphic, and `make bench` reports its loss per kind on this set.
Each image is deterministic (no randomness, no download), so the figures are comparable across runs and machines.
"""

from __future__ import annotations

import io
from typing import Callable, Dict, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("photo", "graphic", "line_art", "text", "screenshot")


def _rgb(a: np.ndarray) -> np.ndarray:
    """uint8 RGB from scikit-image's grey, boolean, float or RGBA arrays (alpha composited over white)."""
    a = np.asarray(a)
    if a.dtype == bool:
        a = np.where(a, 0, 255).astype(np.uint8)  # Black shapes on white, as a printed graphic.
    elif a.dtype != np.uint8:
        a = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if a.shape[-1] == 4:
        alpha = a[..., 3:].astype(np.float32) / 255
        a = np.round(a[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])


def _skimage(name: str, side: int = 0) -> Callable[[], np.ndarray]:
    def make():
        import skimage.data  # Here: scikit-image is a test and benchmark dependency, and slow to import.
        a = _rgb(getattr(skimage.data, name)())
        if side:
            y, x = max(0, (a.shape[0] - side) // 2), max(0, (a.shape[1] - side) // 2)
            a = a[y:y + side, x:x + side]
        return np.ascontiguousarray(a)
    return make


def _font(size: int, mono: bool = False) -> ImageFont.FreeTypeFont:
    import matplotlib  # Here, as below: slow to import. Its DejaVu fonts: the same glyphs on every machine.
    name = "DejaVuSansMono.ttf" if mono else "DejaVuSans.ttf"
    return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/{name}", size)


def shapes_and_silhouette() -> np.ndarray:
    """A black-and-white graphic: filled shapes, outlines and scikit-image's horse silhouette, no antialiasing."""
    import skimage.data  # Here: scikit-image is a test and benchmark dependency, and slow to import.
    img = Image.new("L", (400, 320), 255)
    draw = ImageDraw.Draw(img)
    draw.rectangle((16, 16, 120, 100), fill=0)
    draw.ellipse((140, 20, 240, 120), fill=0)
    draw.polygon([(270, 110), (330, 12), (390, 110)], fill=0)
    draw.rectangle((20, 130, 110, 220), outline=0, width=3)
    draw.line((130, 140, 230, 230), fill=0, width=2)
    horse = Image.fromarray(np.where(skimage.data.horse(), 0, 255).astype(np.uint8)).resize((200, 164),
                                                                                              Image.NEAREST)
    img.paste(horse, (190, 148))
    return _rgb(np.asarray(img))


def line_drawing() -> np.ndarray:
    """Line art: thin black strokes and hatching on white, as a scanned drawing or a comic's inks."""
    img = Image.new("L", (384, 320), 255)
    draw = ImageDraw.Draw(img)
    for i in range(0, 160, 8):
        draw.line((20 + i, 20, 20, 20 + i), fill=0, width=1)
    for r in range(10, 90, 12):
        draw.ellipse((250 - r, 90 - r, 250 + r, 90 + r), outline=0, width=2)
    pts = [(20 + x, 250 + int(40 * np.sin(x / 18))) for x in range(0, 344, 4)]
    draw.line(pts, fill=0, width=2)
    draw.rectangle((200, 200, 360, 300), outline=0, width=1)
    for x in range(204, 360, 6):
        draw.line((x, 204, x, 296), fill=80, width=1)
    return _rgb(np.asarray(img))


def text_page() -> np.ndarray:
    """Text as people upscale it: black on white at small sizes, plus coloured text on a coloured band."""
    img = Image.new("RGB", (448, 256), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    lines = ["Super-resolution turns low-resolution", "images into high-resolution ones.",
             "0123456789 ABCDEFGHIJKLM nopqrstuvwxyz", "def enhance(image, scale=4): return"]
    y = 10
    for i, line in enumerate(lines):
        draw.text((10, y), line, fill=(0, 0, 0), font=_font(14 + 4 * (i % 2), mono=i == 3))
        y += 30
    draw.rectangle((0, 140, 448, 200), fill=(200, 30, 40))
    draw.text((12, 150), "WARNING: hard edges ahead", fill=(255, 255, 255), font=_font(26))
    draw.text((12, 212), "small grey caption text, 11 px", fill=(90, 90, 90), font=_font(11))
    return np.asarray(img)


def chart_screenshot() -> np.ndarray:
    """A screenshot of a plotting window: axes, ticks, a legend, flat colour bars, crisp 1 px lines (Agg)."""
    # Here: matplotlib is slow to import, and only this picture renders with it.
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4.8, 3.2), dpi=100)
    ax = fig.add_subplot(1, 2, 1)
    x = np.linspace(0, 6.3, 200)
    ax.plot(x, np.sin(x), label="sin")
    ax.plot(x, np.cos(x), "--", label="cos")
    ax.legend(fontsize=7)
    ax.set_title("signals", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.bar(["a", "b", "c", "d"], [3, 5, 2, 4], color=["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"])
    ax2.set_title("counts", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return _rgb(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))


def ui_screenshot() -> np.ndarray:
    """A screenshot of an application window: flat panels, 1 px borders, buttons and small antialiased text."""
    img = Image.new("RGB", (400, 280), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 399, 28), fill=(45, 50, 60))
    draw.text((10, 7), "sr_keras - Enhance", fill=(255, 255, 255), font=_font(12))
    for i, c in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        draw.ellipse((340 + 18 * i, 9, 350 + 18 * i, 19), fill=c)
    draw.rectangle((10, 40, 130, 270), fill=(255, 255, 255), outline=(190, 190, 190))
    for i, item in enumerate(["Photos", "Graphics", "Line art", "Text", "Screens"]):
        if i == 1:
            draw.rectangle((11, 48 + 24 * i, 129, 68 + 24 * i), fill=(0, 120, 215))
        draw.text((18, 50 + 24 * i), item, fill=(255, 255, 255) if i == 1 else (20, 20, 20), font=_font(12))
    draw.rectangle((145, 40, 390, 230), fill=(255, 255, 255), outline=(190, 190, 190))
    for i in range(6):
        draw.line((155, 60 + 25 * i, 380, 60 + 25 * i), fill=(220, 220, 220))
        draw.text((158, 45 + 25 * i), f"row {i}: 4x, bfloat16, tile 512", fill=(30, 30, 30), font=_font(11))
    draw.rounded_rectangle((290, 240, 390, 268), radius=5, fill=(0, 120, 215))
    draw.text((318, 246), "Enhance", fill=(255, 255, 255), font=_font(13))
    return np.asarray(img)


# name -> (kind, maker). Photos are whole pictures or 256-320 px crops, a small one among them.
IMAGES: Dict[str, Tuple[str, Callable[[], np.ndarray]]] = {
    "astronaut": ("photo", _skimage("astronaut", 320)),
    "chelsea": ("photo", _skimage("chelsea")),
    "coffee": ("photo", _skimage("coffee", 320)),
    "rocket": ("photo", _skimage("rocket", 320)),
    "brick": ("photo", _skimage("brick", 256)),
    "camera": ("photo", _skimage("camera", 256)),
    "immunohistochemistry": ("photo", _skimage("immunohistochemistry", 256)),
    "coins_small": ("photo", _skimage("coins", 128)),
    "horse": ("graphic", _skimage("horse")),
    "shapes_and_silhouette": ("graphic", shapes_and_silhouette),
    "logo": ("graphic", _skimage("logo", 320)),
    "checkerboard": ("graphic", _skimage("checkerboard")),
    "phantom": ("graphic", _skimage("shepp_logan_phantom", 320)),
    "colorwheel": ("graphic", _skimage("colorwheel")),
    "line_drawing": ("line_art", line_drawing),
    "clock": ("line_art", _skimage("clock")),
    "text_page": ("text", text_page),
    "scanned_page": ("text", _skimage("page")),
    "text_photo": ("text", _skimage("text")),
    "chart_screenshot": ("screenshot", chart_screenshot),
    "ui_screenshot": ("screenshot", ui_screenshot),
}


def load(names=None) -> Dict[str, Tuple[str, np.ndarray]]:
    """{name: (kind, HR uint8 RGB)} for `names` (default: all of IMAGES)."""
    return {n: (IMAGES[n][0], IMAGES[n][1]()) for n in (names or IMAGES)}
