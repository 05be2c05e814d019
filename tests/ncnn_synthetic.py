"""Writing small ncnn graphs of the zoo's architectures (as onnx2ncnn lays them out: Split layers for blobs read
twice, fused leaky ReLUs, ESRGAN's 0.2-scaled residual Eltwise), with seeded random weights, so a conversion can be
checked against ncnn itself without the 16.7 M-parameter original."""

import numpy as np


class _Graph:
    def __init__(self):
        self.layers, self.weights, self.uses = [], [], {}

    def add(self, kind, name, inputs, output, params="", weights=()):
        for b in inputs:
            self.uses[b] = self.uses.get(b, 0) + 1
        self.layers.append([kind, name, list(inputs), output, params])
        self.weights.extend(weights)
        return output

    def write(self, param_path, bin_path):
        taken, lines, n_blobs = {}, [], 0
        for kind, name, inputs, output, params in self.layers:
            renamed = []
            for b in inputs:
                i = taken.get(b, 0)
                taken[b] = i + 1
                renamed.append(f"{b}_splitncnn_{i}" if self.uses[b] > 1 else b)
            lines.append(f"{kind:24} {name:24} {len(inputs)} 1 {' '.join(renamed + [output])} {params}".rstrip())
            n_blobs += 1
            if self.uses.get(output, 0) > 1:  # As onnx2ncnn: one Split per blob read more than once.
                outs = [f"{output}_splitncnn_{i}" for i in range(self.uses[output])]
                lines.append(f"{'Split':24} {'split_' + output:24} 1 {len(outs)} {output} {' '.join(outs)}")
                n_blobs += len(outs)
        with open(param_path, "w") as f:
            f.write(f"7767517\n{len(lines)} {n_blobs}\n" + "\n".join(lines) + "\n")
        with open(bin_path, "wb") as f:
            for w in self.weights:
                f.write(w)


def write_rrdbnet(param_path: str, bin_path: str, filters: int, num_blocks: int, growth: int, seed: int = 0,
                  scale: int = 4, out_bias: float = 0.0) -> None:
    """An RRDBNet (ESRGAN's, as Real-ESRGAN's ncnn file has it) of the given size with seeded random weights;
    `out_bias` is added to the last convolution's bias (0.5: outputs around mid-grey, not mostly clipped at 0)."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    count = [0]

    def conv(x, cin, cout, leaky, bias=0.0):
        count[0] += 1
        w = rng.normal(0, (2.0 / (9 * cin)) ** 0.5 * 0.5, (cout, cin, 3, 3)).astype("<f4")
        b = (rng.normal(0, 0.02, cout) + bias).astype("<f4")
        act = " 9=2 -23310=1,2.000000e-01" if leaky else ""
        return g.add("Convolution", f"Conv_{count[0]}", [x], f"c{count[0]}",
                     f"0={cout} 1=3 4=1 5=1 6={w.size}{act}",
                     [np.uint32(0).tobytes() + w.tobytes(), b.tobytes()])  # Tag 0: float32 weights.

    def residual(a, skip, name):
        return g.add("Eltwise", name, [a, skip], name, "0=1 -23301=2,2.000000e-01,1.000000e+00")

    g.add("Input", "input.1", [], "data")
    feat = conv("data", 3, filters, False)
    x = feat
    for b in range(num_blocks):
        skip = x
        for r in range(3):
            features = [x]
            for i in range(4):
                cat = features[0] if len(features) == 1 else g.add(
                    "Concat", f"cat_{b}_{r}_{i}", features, f"cat_{b}_{r}_{i}")
                features.append(conv(cat, filters + i * growth, growth, True))
            x5 = conv(g.add("Concat", f"cat_{b}_{r}_4", features, f"cat_{b}_{r}_4"), filters + 4 * growth, filters,
                      False)
            x = residual(x5, x, f"rdb_{b}_{r}")
        x = residual(x, skip, f"rrdb_{b}")
    x = g.add("BinaryOp", "trunk_add", [feat, conv(x, filters, filters, False)], "trunk")
    for i in range(int(np.log2(scale))):
        x = g.add("Interp", f"up_{i}", [x], f"up_{i}", "0=1 1=2.000000e+00 2=2.000000e+00")
        x = conv(x, filters, filters, True)
    x = conv(x, filters, filters, True)
    conv(x, filters, 3, False, out_bias)
    g.layers[-1][3] = "output"  # The blob name both packages' files use for the result.
    g.write(param_path, bin_path)


def write_compact(param_path: str, bin_path: str, filters: int, num_conv: int, scale: int = 4, seed: int = 0,
                  prelu_type: str = "PReLU", add_op: int = 0, interp_mode: int = 1) -> None:
    """An SRVGGNetCompact (Real-ESRGAN's realesr-general-x4v3 layout) of the given size with seeded random weights.
    `prelu_type`, `add_op` (BinaryOp 0=add, 1=sub) and `interp_mode` (1=nearest, 2=bilinear) change the graph the
    way a tampered file would."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    count = [0]

    def conv(x, cin, cout):
        count[0] += 1
        w = rng.normal(0, (2.0 / (9 * cin)) ** 0.5 * 0.5, (cout, cin, 3, 3)).astype("<f4")
        b = rng.normal(0, 0.02, cout).astype("<f4")
        return g.add("Convolution", f"Conv_{count[0]}", [x], f"c{count[0]}", f"0={cout} 1=3 4=1 5=1 6={w.size}",
                     [np.uint32(0).tobytes() + w.tobytes(), b.tobytes()])

    def prelu(x):
        slope = rng.uniform(0.0, 0.3, filters).astype("<f4")
        return g.add(prelu_type, f"PRelu_{count[0]}", [x], f"p{count[0]}", f"0={filters}",
                     [slope.tobytes()] if prelu_type == "PReLU" else [])

    g.add("Input", "input.1", [], "data")
    x = prelu(conv("data", 3, filters))
    for _ in range(num_conv):
        x = prelu(conv(x, filters, filters))
    x = g.add("PixelShuffle", "DepthToSpace", [conv(x, filters, 3 * scale * scale)], "shuffled", f"0={scale}")
    base = g.add("Interp", "Resize", ["data"], "base", f"0={interp_mode} 1={scale:.6e} 2={scale:.6e}")
    g.add("BinaryOp", "Add", [x, base], "output", f"0={add_op}")
    g.write(param_path, bin_path)
