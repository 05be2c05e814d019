"""The default model that ships inside the package (sr_keras/default_model/, made by `make default-model`)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli, write_photo
from PIL import Image

import sr_keras
from sr_keras.data import sources
from sr_keras.evaluate import metrics, protocol
from sr_keras.savedmodel import layout, reader

DEFAULT = layout.default_model_path()
OWN = "sr_keras_x4"  # The project's own model (the shipped folder); `default` is the zoo's best (tests/test_zoo.py).


@pytest.fixture(scope="module")
def card():
    with open(os.path.join(DEFAULT, "card.json")) as f:
        return json.load(f)


def test_default_model_ships_small_with_its_signatures(card):
    version = os.path.join(DEFAULT, "1")
    sigs = tf.saved_model.load(version).signatures
    assert {"serving_default", "enhance", "enhance_float"} <= set(sigs)
    assert dict(sigs["enhance"].structured_input_signature[1])["lr_image"].dtype == tf.uint8
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(DEFAULT) for f in fs)
    assert size < 8e6  # "A few MB at most": only the SavedModel ships.
    assert sorted(os.listdir(DEFAULT)) == ["1", "MODEL_CARD.md", "card.json"]
    assert sr_keras.load(OWN).scale == 4 == card["scale"]


def test_keras_generator_rebuilt_from_the_shipped_model_matches_it(card):
    generator, meta = reader.generator_from_saved_model(os.path.join(DEFAULT, "1"))
    assert meta["architecture"] == card["architecture"]
    assert generator.count_params() == card["parameters"]
    lr = np.random.default_rng(0).random((1, 24, 20, 3)).astype("float32")
    want = sr_keras.load(OWN)._fn(tf.constant(lr)).numpy()
    np.testing.assert_allclose(np.clip(generator(lr, training=False).numpy(), 0, 1), want, atol=1e-5)


def test_own_model_beats_bicubic_on_every_held_back_photo():
    m = sr_keras.load(OWN)
    images, _ = protocol.load_images("sample", 4)
    assert sorted(i.name for i in images) == sorted(sources.SAMPLE_VAL)
    for img in images:
        sr = m.enhance(img.lr)
        bic = protocol.bicubic_upscale(img.lr, 4)
        assert metrics.score(img.hr, sr, 4)["psnr_y"] > metrics.score(img.hr, bic, 4)["psnr_y"], img.name


def test_card_numbers_are_what_sr_evaluate_reproduces(card, tmp_path):
    proc = run_cli("evaluate", f"--model={OWN}", "--images=sample", f"--out={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    results = json.load(open(tmp_path / "results.json"))
    label = next(k for k in results["methods"] if k != "bicubic")
    for method, card_method in (("bicubic", "bicubic"), (label, "default")):
        for key in ("psnr_y", "ssim_y"):
            got = results["methods"][method]["mean"][key]
            want = card["validation"]["mean"][card_method][key]
            assert abs(got - want) < (0.02 if key == "psnr_y" else 2e-4), (method, key, got, want)
    gain = results["methods"][label]["mean"]["psnr_y"] - results["methods"]["bicubic"]["mean"]["psnr_y"]
    assert abs(gain - card["validation"]["gain_db"]) < 0.02
    assert f"**{card['validation']['gain_db']:+.2f} dB**" in open(os.path.join(DEFAULT, "MODEL_CARD.md")).read()


def test_make_default_model_ships_a_run_with_its_card(tiny_run, tmp_path):
    """The shipping step on a finished (tiny) run: SavedModel only, card numbers from sr-evaluate's code, both
    held-out sets reported, and the previous model kept until the new one is complete."""
    test_dir, other_dir = tmp_path / "test_photos", tmp_path / "other"
    test_dir.mkdir()
    other_dir.mkdir()
    for i in range(2):
        write_photo(str(test_dir / f"t{i}.png"), h=64, w=72, seed=i)
    write_photo(str(other_dir / "o.png"), h=64, w=64, seed=5)
    out = tmp_path / "default_model"
    out.mkdir()
    (out / "previous.txt").write_text("old model")
    proc = run_cli("make_default_model", f"--workdir={tiny_run}", f"--out_dir={out}",
                   f"--eval_out={tmp_path / 'eval'}", f"--test_images={test_dir},{tmp_path / 'absent'},{other_dir}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ["1", "MODEL_CARD.md", "card.json"]
    card = json.load(open(out / "card.json"))
    results = json.load(open(tmp_path / "eval" / "results.json"))
    for method in ("bicubic", "default"):
        assert card["validation"]["mean"][method]["psnr_y"] == results["methods"][method]["mean"]["psnr_y"]
    assert sorted(card["validation"]["per_image_psnr_y"]) == sorted(sources.SAMPLE_VAL)
    assert [sorted(t["per_image_psnr_y"]) for t in card["tests"]] == [["t0.png", "t1.png"], ["o.png"]]  # absent: skipped
    gains = [v["model"] - v["bicubic"] for t in [card["validation"]] + card["tests"]
             for v in t["per_image_psnr_y"].values()]
    pooled = card["all_unseen"]
    assert pooled["count"] == 6 and abs(pooled["gain_db"] - np.mean(gains)) < 1e-9
    assert pooled["min_gain_db"] == min(gains)
    assert len(card["stages"]) == 1 and card["stages"][0]["steps"] == card["steps"] == 3
    text = (out / "MODEL_CARD.md").read_text()
    for t in [card["validation"]] + card["tests"]:
        assert f"**{t['gain_db']:+.2f} dB**" in text
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".default_model-", ".sr_keras-tmp-")) or p.endswith(".old")]
    assert os.path.exists(tmp_path / "eval" / "training_curves.png")
    # A run that cannot be shipped leaves the current model untouched.
    proc = run_cli("make_default_model", f"--workdir={tmp_path / 'nothing'}", f"--out_dir={out}")
    assert proc.returncode != 0 and "no config.json" in proc.stderr
    assert sorted(os.listdir(out)) == ["1", "MODEL_CARD.md", "card.json"]


def test_training_stages_follow_init_checkpoint_back_to_the_first_run(tiny_run, sample_data, tmp_path):
    import dataclasses

    from sr_keras.release import model_card
    from sr_keras.train import config, loop

    base = dataclasses.replace(config.get_preset("tiny", "srgan"), data=sample_data, pretrain_steps=2, gan_steps=0)
    fine = str(tmp_path / "fine")
    loop.train_and_evaluate(dataclasses.replace(base, init_checkpoint=os.path.join(tiny_run, "checkpoints")),
                                 fine, verbose=False)
    stages = model_card.training_stages(fine)
    assert [s["workdir"] for s in stages] == [tiny_run, fine]
    assert [s["steps"] for s in stages] == [3, 2]
    assert all(s["seconds"] > 0 for s in stages)
    assert model_card.training_stages(tiny_run) == stages[:1]


def test_make_real_model_ships_a_run_with_its_knob_and_card_through_the_same_release_path(tiny_run, tmp_path,
                                                                                             monkeypatch):
    """The real-world model's shipping step: the alpha knob (the run's pixel phase at 0), the card's real-world
    figures from sr-evaluate's code, and, when anything fails, the model that was there kept."""
    from sr_keras.data import degradation
    from sr_keras.release import real_model

    real = tmp_path / "real_set"
    (real / "hr").mkdir(parents=True)
    (real / "lr").mkdir()
    for i in range(2):  # A stand-in for sr-make-real-set: HR photos and their given LR partners.
        write_photo(str(real / "hr" / f"p{i}.png"), h=64, w=64, seed=10 + i)
        hr = np.asarray(Image.open(real / "hr" / f"p{i}.png"))
        Image.fromarray(degradation.bicubic_downscale(hr, 4)).save(real / "lr" / f"p{i}.png")
    out = tmp_path / "real_model"
    out.mkdir()
    (out / "previous.txt").write_text("old model")
    card_path = real_model.make_real_model(tiny_run, str(tmp_path / "eval"), out_dir=str(out), real_dir=str(real),
                                           default_alpha=0.0)
    assert card_path == str(out / "MODEL_CARD.md") and sorted(os.listdir(out)) == ["1", "MODEL_CARD.md", "card.json"]
    card = json.load(open(out / "card.json"))
    assert card["default_alpha"] == 0.0 and card["real_world_set"]["images"] == 2
    results = json.load(open(tmp_path / "eval" / "results.json"))
    assert card["real_world_set"]["means"] == {k: v["mean"] for k, v in results["methods"].items()}
    assert layout.read_metadata(str(out / "1"))["interpolation"]["default_alpha"] == 0.0
    # A failure while the card is made leaves the shipped model as it was, and no staging folder behind.
    monkeypatch.setattr(real_model, "evaluate_on_real_set", lambda *a, **k: 1 / 0)
    before = (out / "card.json").read_text()
    with pytest.raises(ZeroDivisionError):
        real_model.make_real_model(tiny_run, str(tmp_path / "eval2"), out_dir=str(out), real_dir=str(real))
    assert (out / "card.json").read_text() == before and sorted(os.listdir(out)) == ["1", "MODEL_CARD.md", "card.json"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".real_model-", ".sr_keras-tmp-"))]


def test_both_shipped_models_carry_a_current_exactness_record_and_a_stale_one_is_measured_again_in_place(tmp_path,
                                                                                                          monkeypatch):
    """Loading a shipped model never measures its bfloat16 exactness: both records are current. A record from an
    older check is measured again by `refresh_exactness`, which rewrites model.json alone (weights, graph and card
    keep their bytes) and measures nothing when the record is current."""
    import hashlib
    import shutil

    from sr_keras.models import exactness, precision
    from sr_keras.release import model_card

    for name in ("default_model", "real_model"):
        meta = layout.read_metadata(os.path.join(layout.shipped_model_path(name), "1"))
        assert exactness.record(meta) is not None, name
    source = os.path.join(layout.shipped_model_path("default_model"))
    folder = str(tmp_path / "default_model")
    shutil.copytree(source, folder)
    version = os.path.join(folder, "1")
    meta = layout.read_metadata(version)
    current = meta["exactness"]
    meta["exactness"] = dict(current, version=exactness.CHECK_VERSION - 1, float32_layers=["stale"])
    layout.write_metadata(version, meta)

    def digests():
        return {os.path.relpath(os.path.join(r, f), folder): hashlib.sha256(open(os.path.join(r, f), "rb").read())
                .hexdigest() for r, _, fs in os.walk(folder) for f in fs if f != "model.json"}
    before = digests()
    record = model_card.refresh_exactness(version)
    assert exactness.record(layout.read_metadata(version)) == record
    assert record["float32_layers"] == current["float32_layers"]
    assert record["weights_sha256"] == current["weights_sha256"]
    assert digests() == before
    calls = []
    original = precision.exactness_check
    monkeypatch.setattr(precision, "exactness_check", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert model_card.refresh_exactness(version) == record and calls == []
