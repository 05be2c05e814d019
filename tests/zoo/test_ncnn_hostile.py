"""Users' own ncnn files are input like any other: a malformed or hostile `.param`/`.bin` gives one NcnnFormatError
line naming the file, within bounded memory, never a traceback of another kind."""

import os
import random

import numpy as np
import pytest
from ncnn_synthetic import write_compact

from sr_keras.zoo import ncnn, user_ncnn

CASES = {
    "only the magic line": "7767517\n",
    "a short layer line": "7767517\n1 1\nInput\n",
    "a convolution with 0=0": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=0 1=3 6=27\n",
    "a missing 6=": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=8 1=3\n",
    "a missing 0=": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 1=3 6=216\n",
    "0=48.0": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=48.0 1=3 6=1296\n",
    "1e999": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=1e999 1=3 6=27\n",
    "nan": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=8 1=nan 6=216\n",
    "an array length of 2.5": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=8 -23310=2.5,1,2\n",
    "a=48": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out a=48\n",
    "a count of abc": "7767517\nabc 2\nInput in 0 1 data\n",
    "an empty array": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=8 1=3 6=216 -23310=\n",
    "a negative weight size": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=8 1=3 6=-216\n",
    "a non-divisible weight size": "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=8 1=3 6=217\n",
    "MemoryData dims of 2^32": "7767517\n2 2\nInput in 0 1 data\nMemoryData m 0 1 mean 0=4294967296 1=1\n",
    "blob counts past the line": "7767517\n2 2\nInput in 0 1 data\nConvolution c 9 9 data out\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_malformed_param_is_one_line(tmp_path, case):
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    param.write_text(CASES[case])
    weights.write_bytes(b"\0" * 1024)
    with pytest.raises(ncnn.NcnnFormatError) as e:
        layers = ncnn.read_model(str(param), str(weights))
        user_ncnn.architecture(layers, str(param))
    assert "\n" not in str(e.value) and str(param) in str(e.value)


def test_bytes_that_are_not_text_and_oversized_files_are_refused_unread(tmp_path):
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    param.write_bytes(b"7767517\n\xff\xfe\x00garbage\n")
    weights.write_bytes(b"")
    with pytest.raises(ncnn.NcnnFormatError, match="not text"):
        ncnn.read_model(str(param), str(weights))
    with open(param, "wb") as f:  # 300 MB, sparse: refused from its size.
        f.truncate(300 << 20)
    with pytest.raises(ncnn.NcnnFormatError, match="MB is not an ncnn"):
        ncnn.read_param(str(param))
    write_compact(str(param), str(weights), filters=8, num_conv=2)
    with open(weights, "r+b") as f:  # A 2 GB sparse .bin: refused before it is read.
        f.truncate(2 << 30)
    with pytest.raises(ncnn.NcnnFormatError, match="needs about"):
        ncnn.read_model(str(param), str(weights))


def test_seeded_mutations_of_a_good_file_convert_or_give_one_line(tmp_path):
    """A fuzz test like the image decoders': 300 seeded mutations of a small compact graph (tokens replaced,
    dropped, duplicated, numbers changed, bytes flipped); each either reads and converts, or is an NcnnFormatError."""
    good_param, good_bin = str(tmp_path / "g.param"), str(tmp_path / "g.bin")
    write_compact(good_param, good_bin, filters=4, num_conv=1)
    text, data = open(good_param).read(), open(good_bin, "rb").read()
    rng = random.Random(0)
    outcomes = {"converted": 0, "refused": 0}
    for i in range(300):
        lines = [line.split() for line in text.splitlines()]
        row = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0 and lines[row]:
            lines[row][rng.randrange(len(lines[row]))] = rng.choice(["0", "-1", "1e999", "nan", "x", "9=9", "=",
                                                                     "0=999999999", "-23310=3,1", "4.5"])
        elif op == 1 and lines[row]:
            del lines[row][rng.randrange(len(lines[row]))]
        elif op == 2:
            lines.insert(row, list(lines[row]))
        elif op == 3 and lines[row]:
            j = rng.randrange(len(lines[row]))
            lines[row][j] = lines[row][j].replace("=", "=" + str(rng.randrange(-5, 100)), 1)
        elif op == 4:
            del lines[row]
        param, weights = str(tmp_path / f"m{i}.param"), str(tmp_path / f"m{i}.bin")
        mutated = data if op != 5 else bytes(b ^ (0xFF if rng.random() < 0.01 else 0) for b in data)
        open(param, "w").write("\n".join(" ".join(line) for line in lines) + "\n")
        open(weights, "wb").write(mutated[:rng.randrange(len(mutated) + 1)] if op == 5 and i % 2 else mutated)
        try:
            generator, _ = user_ncnn.keras_generator(param)
            out = generator(np.zeros((1, 4, 4, 3), np.float32), training=False)
            assert out.shape[1] % 4 == 0
            outcomes["converted"] += 1
        except ncnn.NcnnFormatError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
        finally:
            os.remove(param)
            os.remove(weights)
    assert outcomes["refused"] > 100 and outcomes["converted"] > 10, outcomes


def _span_pair(tmp_path, name, edit):
    from sr_keras import zoo

    entry = zoo.MODELS["span_x2"]
    src = os.path.join(zoo.source_dir(entry), entry.param)
    param, weights = tmp_path / f"{name}.param", tmp_path / f"{name}.bin"
    param.write_text(edit(open(src).read()))
    weights.write_bytes(open(os.path.join(zoo.source_dir(entry), entry.bin), "rb").read())
    return str(param)


SPAN_EDITS = {  # Each converted before, into a model 255 levels off ncnn's own run of the same file.
    "every Swish renamed ReLU": (lambda t: t.replace("Swish   ", "ReLU    "), "ReLU of layer"),
    "the mean's Sub made an Add": (lambda t: t.replace("/Constant_output_0 /Sub_output_0 0=1",
                                                       "/Constant_output_0 /Sub_output_0 0=0"), "BinaryOp 0=0"),
    "an attention reading another block": (lambda t: t.replace(
        "/block_2/c3_r/eval_conv/Conv_output_0_splitncnn_0 /block_1/Mul_output_0_splitncnn_1",
        "/block_2/c3_r/eval_conv/Conv_output_0_splitncnn_0 /conv_1/eval_conv/Conv_output_0_splitncnn_1"), "layer 21"),
}


@pytest.mark.parametrize("case", sorted(SPAN_EDITS))
def test_a_changed_span_graph_is_refused_by_its_wiring_and_operations(tmp_path, case):
    edit, says = SPAN_EDITS[case]
    param = _span_pair(tmp_path, "edited", edit)
    assert open(param).read() != edit("")  # The edit applied.
    with pytest.raises(ncnn.NcnnFormatError, match="does not match the Keras architecture") as e:
        user_ncnn.keras_generator(param)
    assert says in str(e.value) and param in str(e.value)
    user_ncnn.keras_generator(_span_pair(tmp_path, "plain", lambda t: t))  # The same file unedited converts.


def test_a_changed_rrdbnet_graph_is_refused(tmp_path):
    from ncnn_synthetic import write_rrdbnet

    param, weights = str(tmp_path / "e.param"), str(tmp_path / "e.bin")
    write_rrdbnet(param, weights, filters=8, num_blocks=2, growth=4, seed=1)
    user_ncnn.keras_generator(param)
    text = open(param).read()
    for bad, says in ((text.replace("0=1 1=2.000000e+00 2=2.000000e+00", "0=2 1=2.000000e+00 2=2.000000e+00", 1),
                       "Interp 0=2"),  # A bilinear upsampling where ESRGAN has nearest.
                      (text.replace(" 9=2 -23310=1,2.000000e-01", " 9=1", 1), "9=1")):  # ReLU for leaky ReLU.
        assert bad != text
        open(param, "w").write(bad)
        with pytest.raises(ncnn.NcnnFormatError, match=says):
            user_ncnn.keras_generator(param)


def test_ncnns_own_run_is_the_last_check(tmp_path, monkeypatch):
    """A graph the structural check let through (switched off here) is still refused when the conversion does not
    reproduce ncnn's own output of the file."""
    from sr_keras.zoo import convert

    monkeypatch.setattr(convert, "check_graph", lambda layers, arch: None)
    param = _span_pair(tmp_path, "relu", SPAN_EDITS["every Swish renamed ReLU"][0])
    with pytest.raises(ncnn.NcnnFormatError, match="differs from ncnn's own run of the file by up to"):
        user_ncnn.keras_generator(param)
