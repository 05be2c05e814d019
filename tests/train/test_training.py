"""The adversarial train step under tf.distribute, phases, checkpoints/resume, logs and the sr-train binary."""

import dataclasses
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_cli
from PIL import Image

from sr_keras.train import config, distribute, loop, run_dir
from sr_keras.train import state as train_state
from sr_keras.train.step import LOG_KEYS, AdversarialTrainer


def tiny_cfg(data, kind="srgan", **overrides):
    cfg = config.get_preset("tiny", kind)
    return dataclasses.replace(cfg, data=data, **overrides)


def _batch(seed=0, n=4, hr=32, scale=4):
    r = np.random.default_rng(seed)
    hr_img = r.random((n, hr, hr, 3)).astype("float32")
    lr_img = tf.image.resize(hr_img, (hr // scale, hr // scale), "bicubic", antialias=True).numpy()
    return lr_img, hr_img


def _build(cfg, strategy, seed=0):
    keras.utils.set_random_seed(seed)  # Same seed, same G, D and (random) VGG on either strategy.
    return train_state.TrainState(cfg, strategy)


def _one_step(state, strategy, phase, batch, steps=1):
    it = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
    return [{k: float(v) for k, v in state.trainer.train_step(it, phase).items()} for _ in range(steps)][-1]


@pytest.mark.parametrize("kind", ["srgan", "dcgan"])
def test_one_step_on_two_replicas_matches_one_replica(sample_data, kind):
    cfg = tiny_cfg(sample_data, kind)
    batch = _batch()
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    two = distribute.make_strategy("mirrored", cpu_replicas=2)
    assert two.num_replicas_in_sync == 2
    run1, run2 = _build(cfg, one), _build(cfg, two)
    for a, b in zip(run1.generator.weights + run1.discriminator.weights,
                    run2.generator.weights + run2.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    g0 = [w.numpy().copy() for w in run2.generator.trainable_weights]
    d0 = [w.numpy().copy() for w in run2.discriminator.trainable_weights]
    logs1 = _one_step(run1, one, 2, batch)
    logs2 = _one_step(run2, two, 2, batch)
    assert set(logs1) == set(LOG_KEYS[2])
    for k in logs1:
        assert logs2[k] == pytest.approx(logs1[k], rel=1e-4, abs=1e-5), k
    assert any(np.abs(w.numpy() - w0).max() > 0 for w, w0 in zip(run2.generator.trainable_weights, g0))
    assert any(np.abs(w.numpy() - w0).max() > 0 for w, w0 in zip(run2.discriminator.trainable_weights, d0))
    for a, b in zip(run1.generator.trainable_weights, run2.generator.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    # The step owns its bookkeeping: one step counted and one EMA update, on either strategy.
    for run in (run1, run2):
        assert run.step == 1 and int(run.trainer.ema.updates.numpy()) == 1


def test_the_step_returns_the_global_mean_not_a_replica_share(sample_data):
    """The logged loss on 2 replicas is the loss of the whole batch, computed here directly (not 1/2 of it, which
    is what Keras's fit() would log for per-replica shares)."""
    cfg = tiny_cfg(sample_data, "dcgan")
    lr, hr = _batch(seed=3)
    two = distribute.make_strategy("mirrored", cpu_replicas=2)
    state = _build(cfg, two)
    sr = state.generator(lr, training=True)
    want = float(tf.reduce_mean(tf.abs(hr - sr)))  # Phase 1 of the DCGAN variant: L1 over the global batch.
    got = _one_step(state, two, 1, (lr, hr))["g/total"]
    assert got == pytest.approx(want, rel=1e-4)
    assert not isinstance(state.trainer, keras.Model)  # No fit() that would average shares.
    assert isinstance(state.trainer, AdversarialTrainer)


def test_overfitting_one_batch_lowers_the_pixel_loss(sample_data):
    cfg = tiny_cfg(sample_data, learning_rate=2e-3)
    strategy = tf.distribute.get_strategy()
    run = _build(cfg, strategy)
    batch = _batch(seed=1)
    first = _one_step(run, strategy, 1, batch)["g/total"]
    last = _one_step(run, strategy, 1, batch, steps=40)["g/total"]
    assert last < 0.5 * first, (first, last)


def test_validation_and_sr_evaluate_give_one_number_for_one_model_on_one_split(sample_data, tmp_path, capsys):
    """A run's last val/ scores are what sr-evaluate prints for its export on the same images (the first
    eval_images of the val split, as the run says at its start)."""
    from conftest import run_cli

    workdir, out = str(tmp_path / "run"), str(tmp_path / "eval")
    cfg = tiny_cfg(sample_data, pretrain_steps=2, gan_steps=1, eval_every=3)
    loop.train_and_evaluate(cfg, workdir)
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("validation: ")]
    assert said == [f"validation: the first {cfg.eval_images} of the 3 val images; sr-evaluate --images={sample_data} "
                    f"--max_images={cfg.eval_images} --model=<the export> scores the same"], said
    last = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))][-1]
    run_cli("export", f"--workdir={workdir}", f"--export_dir={tmp_path / 'export'}", check=True)
    run_cli("evaluate", f"--model={tmp_path / 'export' / 'srgan'}", f"--images={sample_data}",
            f"--max_images={cfg.eval_images}", f"--out={out}", check=True)
    methods = json.load(open(os.path.join(out, "results.json")))["methods"]
    model = next(v for k, v in methods.items() if k != "bicubic")
    assert len(model["images"]) == cfg.eval_images
    assert methods["bicubic"]["mean"]["psnr_y"] == pytest.approx(last["val/bicubic_psnr_y"], abs=1e-3)
    assert model["mean"]["psnr_y"] == pytest.approx(last["val/psnr_y"], abs=0.05)  # bfloat16 here: within 0.05 dB.


def test_train_and_evaluate_writes_logs_and_resumes_in_process(sample_data, tmp_path):
    workdir = str(tmp_path / "run")
    cfg = tiny_cfg(sample_data, pretrain_steps=2, gan_steps=1, ckpt_every=2, eval_every=2)
    r1 = loop.train_and_evaluate(cfg, workdir, verbose=False)
    assert r1["step"] == 3 and np.isfinite(r1["psnr_y"]) and r1["bicubic_psnr_y"] > 15
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [x["step"] for x in lines] == [1, 2, 3]
    assert [x["phase"] for x in lines] == [1, 1, 2]
    assert "val/psnr_y" in lines[1] and "val/bicubic_ssim_y" in lines[1] and "g/adv" in lines[2]
    assert lines[0]["learning_rate/generator"] == pytest.approx(1e-4)
    assert json.load(open(os.path.join(workdir, "config.json")))["model"]["kind"] == "srgan"
    tags = set()
    for event_file in glob.glob(os.path.join(workdir, "tensorboard", "events.*")):
        for raw in tf.data.TFRecordDataset(event_file):
            tags |= {v.tag for v in tf.compat.v1.Event.FromString(raw.numpy()).summary.value}
    assert {"g/total", "d/acc", "learning_rate/generator", "val/psnr_y", "val/bicubic_psnr_y", "val/0_bicubic|sr|hr"} <= tags
    assert Image.open(os.path.join(workdir, "training_curves.png")).size == (800, 650)
    # Resume: same workdir, more steps.
    saved = _build(cfg, tf.distribute.get_strategy(), seed=5)
    saved.checkpoint.restore(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))).expect_partial()
    cfg2 = dataclasses.replace(cfg, gan_steps=3)
    r2 = loop.train_and_evaluate(cfg2, workdir, verbose=False)
    assert r2["step"] == 5
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5]
    assert saved.step == 3


@pytest.fixture(scope="module")
def four_step_run(sample_data, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("four") / "run")
    cfg = tiny_cfg(sample_data, pretrain_steps=2, gan_steps=2, ckpt_every=2, eval_every=100, log_every=1)
    loop.train_and_evaluate(cfg, workdir, verbose=False)
    return cfg, workdir


@pytest.mark.parametrize("damage", ["truncate_data", "zero_index", "delete_data", "delete_index"])
def test_resume_falls_back_to_the_newest_checkpoint_that_restores(four_step_run, tmp_path, capsys, damage):
    cfg, original = four_step_run
    workdir = str(tmp_path / "run")
    shutil.copytree(original, workdir)
    ckpts = os.path.join(workdir, "checkpoints")
    data, index = os.path.join(ckpts, "ckpt-4.data-00000-of-00001"), os.path.join(ckpts, "ckpt-4.index")
    if damage == "truncate_data":
        open(data, "r+b").truncate(os.path.getsize(data) // 2)
    elif damage == "zero_index":
        open(index, "wb").write(b"\0" * os.path.getsize(index))
    else:
        os.remove(data if damage == "delete_data" else index)
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 5, "phase"')  # A line torn by a kill.
    capsys.readouterr()
    result = loop.train_and_evaluate(dataclasses.replace(cfg, gan_steps=3), workdir, verbose=False)
    out = capsys.readouterr().out
    assert "ckpt-4 does not restore" in out and "Resumed from step 2 (phase 2)" in out
    assert result["step"] == 5
    steps = [json.loads(x)["step"] for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert steps == [1, 2, 3, 4, 5]  # 3 and 4 were logged again after the fallback, once each.


def test_resume_fails_in_one_line_when_no_checkpoint_restores(four_step_run, tmp_path):
    cfg, original = four_step_run
    workdir = str(tmp_path / "run")
    shutil.copytree(original, workdir)
    for path in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.data-*")):
        open(path, "wb").close()
    with pytest.raises(loop.TrainError, match=r"no checkpoint in .* restores \(ckpt-4 .*; ckpt-2 .*\); move"):
        loop.train_and_evaluate(cfg, workdir, verbose=False)
    with pytest.raises(run_dir.RunError, match="no checkpoint in"):
        run_dir.generator_from_workdir(workdir)


def test_init_checkpoint_starts_from_another_runs_ema_generator_with_a_fresh_schedule(sample_data, tmp_path):
    base = str(tmp_path / "base")
    cfg = tiny_cfg(sample_data, pretrain_steps=3, gan_steps=0, ckpt_every=3, eval_every=3)
    loop.train_and_evaluate(cfg, base, verbose=False)
    source = _build(cfg, tf.distribute.get_strategy(), seed=7)
    source.checkpoint.restore(tf.train.latest_checkpoint(os.path.join(base, "checkpoints"))).expect_partial()
    ema = [w.numpy() for w in source.trainer.ema.model.weights]
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(ema, source.generator.weights))

    run = _build(cfg, tf.distribute.get_strategy(), seed=8)  # Different random init.
    assert train_state.init_from_checkpoint(run, base).endswith("ckpt-3")
    for want, got, got_ema in zip(ema, run.generator.weights, run.trainer.ema.model.weights):
        np.testing.assert_array_equal(got.numpy(), want)
        np.testing.assert_array_equal(got_ema.numpy(), want)
    assert run.step == 0 and int(run.trainer.g_optimizer.iterations.numpy()) == 0
    assert train_state._unfinished_note(train_state.resolve_checkpoint(base)) == ""
    with open(os.path.join(base, "config.json")) as f:
        src = json.load(f)
    with open(os.path.join(base, "config.json"), "w") as f:
        json.dump(dict(src, pretrain_steps=10), f)  # As if the source run had been stopped at step 3 of 10.
    assert "step 3 of the 10" in train_state._unfinished_note(train_state.resolve_checkpoint(base))
    with open(os.path.join(base, "config.json"), "w") as f:
        json.dump(src, f)

    # Through train_and_evaluate: a fresh step count and schedule in the new workdir.
    fine = str(tmp_path / "fine")
    r = loop.train_and_evaluate(dataclasses.replace(cfg, pretrain_steps=2, init_checkpoint=base), fine,
                                     verbose=False)
    lines = [json.loads(x) for x in open(os.path.join(fine, "metrics.jsonl"))]
    assert r["step"] == 2 and [x["step"] for x in lines] == [1, 2]
    assert lines[0]["learning_rate/generator"] == pytest.approx(cfg.learning_rate)

    with pytest.raises(loop.TrainError, match="no checkpoint there"):
        loop.validate(dataclasses.replace(cfg, init_checkpoint=str(tmp_path / "nope")),
                           tf.distribute.get_strategy())
    wider = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, filters=16))
    with pytest.raises(loop.TrainError, match="does not match"):
        train_state.init_from_checkpoint(_build(wider, tf.distribute.get_strategy()), base)


def test_training_curves_picture_shows_the_gain_rising_and_survives_a_cut_line(tmp_path):
    from sr_keras.train import curves

    rows = []
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for step in range(10, 1001, 10):
            rec = {"step": step, "g/total": 1.0 / step}
            if step % 250 == 0:
                rec.update({"val/psnr_y": 30.0 + step / 1000, "val/bicubic_psnr_y": 30.0})
            rows.append(rec)
            f.write(json.dumps(rec) + "\n")
        f.write('{"step": 1010, "g/to')  # A write cut short by kill -9.
    path = curves.plot_training_curves(str(tmp_path))
    assert Image.open(path).size == (800, 650)
    fig = curves.training_curves_figure(rows, smooth=1, pretrain_steps=500)
    top, bottom = fig.axes
    assert top.get_ylabel() == "PSNR-Y (dB)" and bottom.get_xlabel() == "training step"
    assert top.get_title() == "Validation PSNR-Y: +1.00 dB over bicubic at step 1,000"
    model, bicubic = top.get_lines()[:2]
    assert list(model.get_ydata()) == [30.25, 30.5, 30.75, 31.0] and set(bicubic.get_ydata()) == {30.0}
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["model (EMA generator)", "bicubic",
                                                                     "GAN phase starts"]
    np.testing.assert_allclose(bottom.get_lines()[0].get_ydata(), [1.0 / s for s in range(10, 1001, 10)])
    assert bottom.get_yscale() == "log"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    assert curves.plot_training_curves(str(tmp_path / "empty")) is None


def test_bad_combinations_fail_before_training(sample_data, tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    cases = [
        (dict(hr_crop=30), "not divisible by the scale"),
        (dict(batch_size=3), "not divisible by the 2 replicas"),
        (dict(data=str(tmp_path / "nope")), "no such folder"),
    ]
    for overrides, message in cases:
        with pytest.raises(loop.TrainError, match=message):
            loop.validate(dataclasses.replace(tiny_cfg(sample_data), **overrides), strategy)
    other = dataclasses.replace(tiny_cfg(sample_data), model=config.ModelConfig(scale=2, filters=8, num_blocks=1))
    with pytest.raises(loop.TrainError, match="built for x4"):
        loop.validate(other, strategy)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(loop.TrainError, match="not a dataset built by sr-build-tfrecords"):
        loop.validate(tiny_cfg(str(empty)), strategy)


def test_cli_reports_bad_flags_in_one_line(sample_data, tmp_path):
    proc = run_cli("train", "--preset=tiny", f"--data={sample_data}", f"--workdir={tmp_path}/w", "--hr_crop=30")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: --hr_crop=30 is not divisible by the scale 4"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step_keeps_float32_outputs(sample_data, policy):
    cfg = tiny_cfg(sample_data, mixed_precision=policy)
    strategy = tf.distribute.get_strategy()
    with loop._precision_policy(policy):
        run = _build(cfg, strategy)
        logs = _one_step(run, strategy, 2, _batch())
        assert run.generator.output.dtype == "float32"
        assert run.generator.get_layer("stem_conv").compute_dtype == policy.split("_")[1]
    assert all(np.isfinite(v) for v in logs.values())
    if policy == "mixed_float16":
        assert isinstance(run.trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.slow
def test_killed_training_resumes_at_the_saved_step(sample_data, tmp_path):
    workdir = tmp_path / "run"
    args = [sys.executable, "-m", "sr_keras.cli.train", "--model=dcgan", "--preset=tiny", f"--data={sample_data}",
            f"--workdir={workdir}", "--pretrain_steps=30", "--gan_steps=30", "--ckpt_every=5", "--eval_every=100"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ckpts = workdir / "checkpoints"
    deadline = time.time() + 300
    # The state file names a checkpoint only once it is whole (its index appears a moment before).
    while time.time() < deadline and int((tf.train.latest_checkpoint(str(ckpts)) or "-0").rsplit("-", 1)[1]) < 10:
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = int(tf.train.latest_checkpoint(str(ckpts)).rsplit("-", 1)[1])
    assert 10 <= saved < 60
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Resumed from step {saved} (phase {1 if saved < 30 else 2})" in done.stdout
    steps = [json.loads(x)["step"] for x in open(workdir / "metrics.jsonl")]
    assert steps[-1] == 60 and steps.count(saved + 1) == 1
    assert steps == sorted(set(steps))  # Each step once: records after the checkpoint were dropped on resume.
    assert tf.train.latest_checkpoint(str(ckpts)).endswith("ckpt-60")


@pytest.mark.slow
def test_cli_mirrored_on_two_logical_cpus(sample_data, tmp_path):
    proc = run_cli("train", "--preset=tiny", "--model=dcgan", f"--data={sample_data}", f"--workdir={tmp_path}/m",
                   "--strategy=mirrored", "--cpu_replicas=2", "--pretrain_steps=1", "--gan_steps=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in open(tmp_path / "m" / "metrics.jsonl")]
    assert [x["step"] for x in lines] == [1, 2] and "val/psnr_y" in lines[-1]


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_mirrored_two_local_workers(sample_data, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workdir = tmp_path / "mw"
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO,
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "sr_keras.cli.train", "--preset=tiny", f"--data={sample_data}",
             f"--workdir={workdir}", "--strategy=multi_worker", "--pretrain_steps=1", "--gan_steps=1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    steps = [json.loads(x) for x in open(workdir / "metrics.jsonl")]
    assert [s["step"] for s in steps] == [1, 2]  # Only the chief writes logs.
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-2")


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_the_discriminator_follows_the_generators_schedule(schedule):
    cfg = dataclasses.replace(config.get_preset("sample_x4"), schedule=schedule, pretrain_steps=600, gan_steps=300,
                              d_steps=2)
    g, d = train_state.learning_rates(cfg)
    for i in (0, 1, 150, 299, 300, 301, 599):  # D's own iterations: two per phase-2 step.
        assert float(d(i)) == pytest.approx(float(g(600 + i // 2)))
    assert float(d(599)) < float(d(0))  # It decays with G instead of staying at the peak rate.
