"""`make bench`: every benchmark in one run, plus the hardware reference, into benchmarks/results.{json,md}.

Runs bench_data.py, bench_train.py, bench_infer.py, bench_memory.py, bench_zoo.py (span_x4 against ncnn, float32
and the bfloat16 policy, with the share of peak and the tiling overhead), bench_bf16.py (bfloat16 against float32
per image kind on the varied set), bench_percore.py (the default precision against ncnn at 1 thread and all) and
bench_process.py (the whole sr-enhance process against an ncnn script, REST against the API, encoding) one after
another (each in its own process, so one's memory does not weigh on the next) and a dense fp32 matmul as the
machine's reference rate. Figures are not pass/fail:
compare ratios measured in the same run, since the machine is shared and noisy.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")


def run(out_dir, script, *args):
    out = os.path.join(out_dir, script.replace("bench_", "").replace(".py", ".json"))
    print(f"== {script} ==", flush=True)
    start = time.time()
    subprocess.run([sys.executable, os.path.join(HERE, script), f"--out={out}", *args], check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    print(f"   ({time.time() - start:.0f} s)", flush=True)
    with open(out) as f:
        return json.load(f)


def main():
    # --quick: the same pipeline with small sizes and few steps (checks that `make bench` works; figures are rough).
    quick = "--quick" in sys.argv
    out_dir, suffix = (os.path.join(OUT, "quick"), "_quick") if quick else (OUT, "")
    os.makedirs(out_dir, exist_ok=True)
    data = run(out_dir, "bench_data.py", *(["--repeats=1", "--batches=10"] if quick else []))
    train = run(out_dir, "bench_train.py", *(["--steps=1"] if quick else []))
    infer = run(out_dir, "bench_infer.py", *(["--sizes=64,128", "--big=300,400", "--repeats=1"] if quick else []))
    memory = run(out_dir, "bench_memory.py", *(["--sizes=64x64,500x400"] if quick else []))
    # span_x4 against ncnn (float32, and the bfloat16 policy precision="auto" picks), share of peak, tiling.
    zoo = run(out_dir, "bench_zoo.py", "--variants=ncnn,saved_model,api_bf16",
              *(["--quick"] if quick else ["--sizes=512,768", "--big=1350x1010", "--repeats=3"]))
    bf16 = run(out_dir, "bench_bf16.py", *(["--models=span_x4", "--images=camera,horse"] if quick else []))
    # Per core as users run it: the default precision against ncnn float32 at 1 thread and all threads.
    percore = run(out_dir, "bench_percore.py", *(["--quick", "--models=span_x4"] if quick else []))
    process = run(out_dir, "bench_process.py", *(["--quick"] if quick else []))
    matmul = infer["matmul_fp32_gflops"]
    results = {"data": data, "train": train, "infer": infer, "memory": memory, "zoo": zoo, "bf16": bf16,
               "percore": percore, "process": process, "matmul_fp32_gflops": matmul}
    with open(os.path.join(HERE, f"results{suffix}.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    b = data["build"]
    rows = [
        ("build images/s, 1 worker", f"{b['images_per_s_1_worker']:.1f}"),
        (f"build images/s, {b['cores']} workers",
         f"{b['images_per_s_%d_workers' % b['cores']]:.1f} ({b['speedup']:.2f}x)"),
        ("reader crops/s (96 px, decode every crop)",
         f"{data['reader_96px_batch16']['crops_per_s_decode_every_crop']:.0f}"),
    ]
    for kind in ("srgan", "dcgan"):
        t = train[kind]
        rows.append((f"{kind} train step images/s (synthetic / reader / bf16 / XLA)",
                     f"{t['synthetic_fp32']:.2f} / {t['reader_fp32']:.2f} / {t['synthetic_bf16']} / "
                     f"{t['synthetic_xla']}"))
    for size in [k for k in infer if k.endswith(tuple("0123456789")) and "x" in k and not k.startswith("tiled")]:
        i = infer[size]
        rows.append((f"SRGAN inference output MP/s, {size} input (API / SavedModel / REST)",
                     f"{i['api_mp_per_s']:.3f} / {i['savedmodel_mp_per_s']:.3f} / {i['rest_mp_per_s']:.3f}"))
        rows.append((f"SRGAN inference GFLOP/s, {size} (fraction of matmul)",
                     f"{i['savedmodel_gflops']:.1f} ({i['savedmodel_fraction_of_matmul']:.2f})"))
    rows.append(("dense fp32 matmul GFLOP/s (reference)", f"{matmul:.1f}"))
    for key in [k for k in infer if k.startswith("tiled_")]:
        t = infer[key]
        rows.append((f"peak RSS, {key.replace('_', ' ')} input, x4", f"{t['peak_rss_mb']:.0f} MB ({t['seconds']:.0f} s)"))
    for path_kind, per_size in memory.items():
        rows.append((f"bytes per output pixel above the loaded model, {path_kind} ("
                     + ", ".join(f"{v['input_mp']:.2g} MP" for v in per_size.values()) + " in)",
                     " / ".join(f"{v['bytes_per_output_pixel']:.2f}" for v in per_size.values())))
    rows += zoo_rows(zoo, bf16) + percore_rows(percore) + process_rows(process)
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    with open(os.path.join(HERE, f"results{suffix}.md"), "w") as f:
        f.write(f"# Benchmarks ({os.cpu_count()} CPU cores)\n\n{table}\n")
    print(table)


def zoo_rows(zoo, bf16):
    """Issue 23's ratios: span_x4 against ncnn, share of peak, tiling overhead, bfloat16 quality."""
    rows = []
    speed, share, res = zoo["speed_relative_to_ncnn"], zoo["share_of_peak"], zoo["results"]
    peaks = zoo["matmul_peak_gflops"]
    rows.append(("dense matmul GFLOP/s, float32 / bfloat16 (the peaks)",
                 f"{peaks['float32']:.0f} / {peaks['bfloat16']:.0f}"))
    for variant in ("saved_model", "api_bf16"):
        if variant not in res:
            continue
        for case in [c for c in res[variant] if c != "overlap"]:
            rows.append((f"span_x4 {variant} {case}: x ncnn float32 / share of peak",
                         f"{speed[variant][case]:.2f}x / {share[variant][case]:.0%}"))
        for size in [c[:-len(" tiled")] for c in res[variant] if c.endswith(" tiled")]:
            if f"{size} whole" in res[variant]:
                rows.append((f"span_x4 {variant}: tiling overhead on {size} (default tile, overlap "
                             f"{res[variant]['overlap']}), over the whole image at once",
                             f"{res[variant][f'{size} tiled'] / res[variant][f'{size} whole'] - 1:+.0%}"))
    for model, row in bf16.items():
        for kind, per in row["summary"].items():
            rows.append((f"{model} bfloat16 PSNR-Y loss vs float32 on {kind} (varied set): worst |.| / mean; "
                         "checked policy, body convs all bf16, every layer bf16",
                         " ; ".join(f"{per[p]['worst_abs_db']:.3f} / {per[p]['mean_db']:+.3f}"
                                    for p in ("checked", "body_bfloat16", "all_bfloat16")) + " dB"))
        rows.append((f"{model}: precision auto picks on a CPU with native bfloat16",
                     f"{row['auto_precision_on_native_bf16']} (float32 layers added by the check: "
                     f"{len(row['exactness'].get('float32_layers', []))})"))
    return rows


def percore_rows(percore):
    """The default precision against ncnn float32, per thread count (ncnn s / ours s: above 1, we are faster)."""
    rows = []
    for model, per in percore["models"].items():
        for threads, row in per.items():
            for case, r in [(k, v) for k, v in row.items() if isinstance(v, dict)]:
                rows.append((f"{model} ({row['precision']}) {case}, {threads.replace('_', ' ')}: s/MP ours / "
                             "ncnn float32 (x ncnn)",
                             f"{r['sr_keras_s_per_mp']:.3f} / {r['ncnn_s_per_mp']:.3f} ({r['x_ncnn']:.2f}x)"))
    return rows


def process_rows(process):
    """Around the model: the whole sr-enhance process, REST, encoding."""
    p, c = process["processes"], process["in_process"]
    return [
        (f"sr-enhance process / 20-line ncnn script ({process['photo']} -> PNG)",
         f"{p['sr_enhance']:.2f} s / {p['ncnn_script']:.2f} s = {process['sr_enhance_over_ncnn_script']:.2f}x "
         f"(import tensorflow alone {p['import_tensorflow']:.2f} s)"),
        ("REST serving_default / in-process PNG-to-PNG call",
         f"{c['rest']:.2f} s / {c['png_to_png']:.2f} s = {process['rest_over_in_process_png']:.2f}x"),
        (f"encoding share of model + encoding ({c['output_mp']:.1f} MP out): PNG level 1 / JPEG q95 / WebP q95",
         " / ".join(f"{process['encoding_share'][k]:.0%}" for k in ("png", "jpeg", "webp"))),
    ]


if __name__ == "__main__":
    main()
