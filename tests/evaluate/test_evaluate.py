"""sr-evaluate and the end-to-end demo."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli
from conftest import tiny_generator as _tiny_generator
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_keras.data import sources
from sr_keras.evaluate import protocol as evaluate_lib
from sr_keras.release import demo
from sr_keras.savedmodel import writer
from sr_keras.train import loop, run_dir


def _y(x):
    x = x.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def test_sr_evaluate_writes_results_and_its_bicubic_row_is_right(tmp_path):
    model_dir = writer.export(_tiny_generator(), {"model": "srgan", "scale": 4}, str(tmp_path / "exp"), "tiny")
    imgs = tmp_path / "hr"
    imgs.mkdir()
    root = sources.sample_dir()
    for name in ("chelsea.png", "rocket.jpg"):
        Image.open(os.path.join(root, name)).save(imgs / name.replace(".jpg", ".png"))
    (imgs / "broken.png").write_bytes(b"nope")
    out = tmp_path / "eval"
    proc = run_cli("evaluate", f"--model={model_dir}", f"--images={imgs}", "--scale=4", f"--out={out}",
                   "--self_ensemble")
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "broken.png" in proc.stderr
    results = json.load(open(out / "results.json"))
    assert set(results["methods"]) == {"bicubic", "tiny v1", "tiny v1+"}
    ens = results["methods"]["tiny v1+"]["images"]["chelsea.png"]
    assert ens["psnr_y"] != results["methods"]["tiny v1"]["images"]["chelsea.png"]["psnr_y"]
    assert sorted(os.listdir(out / "comparisons")) == ["chelsea.png", "rocket.png"]
    assert "| bicubic |" in (out / "results.md").read_text()
    for name in ("chelsea.png", "rocket.png"):
        hr = np.asarray(Image.open(imgs / name).convert("RGB"))
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        lr = tf.image.resize(hr.astype(np.float32), (hr.shape[0] // 4, hr.shape[1] // 4), "bicubic", antialias=True)
        lr = np.clip(np.round(lr.numpy()), 0, 255)
        up = np.clip(np.round(tf.image.resize(lr, hr.shape[:2], "bicubic").numpy()), 0, 255).astype(np.uint8)
        y_hr, y_up = _y(hr)[4:-4, 4:-4], _y(up)[4:-4, 4:-4]
        row = results["methods"]["bicubic"]["images"][name]
        assert abs(row["psnr_y"] - peak_signal_noise_ratio(y_hr, y_up, data_range=255)) < 0.01
        assert abs(row["ssim_y"] - structural_similarity(y_hr, y_up, data_range=255, gaussian_weights=True, sigma=1.5,
                                                         use_sample_covariance=False)) < 0.001
        assert 20 < row["psnr_y"] < 40 and row["seconds"] >= 0
        model_row = results["methods"]["tiny v1"]["images"][name]
        assert np.isfinite(model_row["psnr_y"]) and 0 <= model_row["ssim_y"] <= 1
    mean = results["methods"]["bicubic"]["mean"]["psnr_y"]
    assert mean == pytest.approx(np.mean([v["psnr_y"] for v in results["methods"]["bicubic"]["images"].values()]))


def test_evaluate_reads_the_val_split_of_a_tfrecord_folder(sample_data):
    images, skipped = evaluate_lib.load_images(sample_data, 4)
    assert sorted(i.name for i in images) == sorted(sources.SAMPLE_VAL) and not skipped
    with pytest.raises(ValueError, match="built for x4"):
        evaluate_lib.load_images(sample_data, 2)


@pytest.mark.slow
def test_demo_smoke_with_the_tiny_preset(tmp_path, capsys):
    import re

    done = demo.run_demo("tiny", str(tmp_path / "data"), str(tmp_path / "runs"), str(tmp_path / "export"),
                         str(tmp_path / "out"), verbose=False)
    steps = re.findall(r"^== (\d)/6 ", capsys.readouterr().out, re.M)
    assert steps == ["1", "2", "3", "4", "5"]  # Each step once, in order (the report is step 6).
    methods = done["results"]["methods"]
    srgan = f"demo_srgan v1 ({loop.RANDOM_VGG_NOTE})"  # The tiny preset's SRGAN is labelled as what it is.
    srgan_rows = {f"{srgan} alpha={a}" for a in ("0", "0.5", "1")}  # The SRGAN's knob: ends and middle.
    assert {"bicubic", "demo_dcgan v1"} | srgan_rows <= set(methods)
    assert all(np.isfinite(m["mean"]["psnr_y"]) for m in methods.values())
    assert os.path.exists(os.path.join(done["eval_dir"], "results.md"))
    assert os.path.exists(os.path.join(done["eval_dir"], "alpha.png"))
    assert len(os.listdir(os.path.join(done["eval_dir"], "comparisons"))) == len(sources.SAMPLE_VAL)
    # The featured picture is the best model's (by mean PSNR-Y), and the SRGAN's comparison stays.
    psnr = {"demo_dcgan v1": methods["demo_dcgan v1"]["mean"]["psnr_y"],
            srgan: methods[f"{srgan} alpha=1"]["mean"]["psnr_y"]}  # The export's default alpha.
    for label in methods:
        if label.startswith("default"):
            psnr[label] = methods[label]["mean"]["psnr_y"]
    featured = done["featured"]
    assert featured["best"]["label"] == max(psnr, key=psnr.get)
    assert featured["srgan"]["label"] == srgan
    for role in ("best", "srgan"):
        assert any(p.endswith("_compare.png") for p in featured[role]["written"])
    assert sorted(os.listdir(tmp_path / "export")) == ["demo_dcgan", "demo_srgan"]


def test_validation_logged_in_training_is_the_number_sr_evaluate_reports(sample_data, tmp_path):
    """One protocol: the val/ scores a run logs are what sr-evaluate reports for its export, on the same photos,
    whether they come from the dataset's val split or from the photo files (degraded by sr-evaluate)."""
    import dataclasses

    from sr_keras.infer import enhancer
    from sr_keras.train import config, loop
    from sr_keras.train.run_dir import RunDir

    workdir = str(tmp_path / "run")
    cfg = dataclasses.replace(config.get_preset("tiny"), data=sample_data, pretrain_steps=2, gan_steps=0,
                              eval_every=2, eval_crop=0, eval_images=len(sources.SAMPLE_VAL))
    loop.train_and_evaluate(cfg, workdir, verbose=False)
    logged = RunDir(workdir).last_validation()
    generator, meta = run_dir.generator_from_workdir(workdir)
    model = enhancer.Enhancer(writer.export(generator, meta, str(tmp_path / "exp"), "m"))
    for spec in (sample_data, "sample"):
        images, _ = evaluate_lib.load_images(spec, 4)
        assert sorted(os.path.basename(i.name) for i in images) == sorted(sources.SAMPLE_VAL)
        means = {k: v["mean"] for k, v in evaluate_lib.evaluate({"m": model}, images, 4, progress=False)
                 ["methods"].items()}
        assert means["bicubic"]["psnr_y"] == pytest.approx(logged["bicubic_psnr_y"], abs=1e-5)  # Logged to 6 decimals.
        assert means["bicubic"]["ssim_y"] == pytest.approx(logged["bicubic_ssim_y"], abs=1e-5)
        # The export tiles and runs the float32 graph; a rare pixel may round the other way.
        assert means["m"]["psnr_y"] == pytest.approx(logged["psnr_y"], abs=0.01)
        assert means["m"]["ssim_y"] == pytest.approx(logged["ssim_y"], abs=1e-4)
