"""TF Serving's REST wire format as pure functions, in process: paths, request parsing (row and columnar, b64,
limits), answers, and a fuzz of the parser that only ever answers a 4xx RestError."""

import base64
import json

import numpy as np
import pytest

from sr_keras.serving import rest
from sr_keras.serving.rest import RestError, Spec

SIGNATURES = {
    "serving_default": {"inputs": {"image_bytes": Spec("string", (None,))},
                        "outputs": {"sr_png_bytes": Spec("string", (None,))}},
    "enhance": {"inputs": {"lr_image": Spec("uint8", (None, None, None, 3))},
                "outputs": {"sr_image": Spec("uint8", (None, None, None, 3))}},
    "enhance_float_alpha": {"inputs": {"lr_image": Spec("float32", (None, None, None, 3)),
                                       "alpha": Spec("float32", (None,))},
                            "outputs": {"sr_image": Spec("float32", (None, None, None, 3))}},
}


def _parse(body, max_instances=4):
    return rest.parse_predict(json.dumps(body).encode() if not isinstance(body, bytes) else body, SIGNATURES,
                              max_instances)


def test_paths():
    assert rest.parse_path("/v1/models/sr") == ("sr", None, rest.STATUS)
    assert rest.parse_path("/v1/models/sr/versions/3:predict") == ("sr", 3, rest.PREDICT)
    assert rest.parse_path("/v1/models/sr/metadata") == ("sr", None, rest.METADATA)
    for bad, status in (("/v1/models/sr/versions/x", 400), ("/v1/models/", 400), ("/nowhere", 404),
                        ("/v1/models/sr:explode", 400)):
        with pytest.raises(RestError) as e:
            rest.parse_path(bad)
        assert e.value.status == status, bad


def test_row_and_columnar_formats_give_the_same_arrays():
    img = [[[1, 2, 3], [4, 5, 6]]]
    sig, row_arrays, row = _parse({"signature_name": "enhance", "instances": [img, img]})
    assert (sig, row) == ("enhance", True)
    sig, col_arrays, row = _parse({"signature_name": "enhance", "inputs": [img, img]})
    assert row is False
    assert row_arrays["lr_image"].dtype == np.uint8 and row_arrays["lr_image"].shape == (2, 1, 2, 3)
    np.testing.assert_array_equal(row_arrays["lr_image"], col_arrays["lr_image"])


def test_b64_strings_and_several_inputs():
    png = b"\x89PNG fake bytes"
    _, arrays, _ = _parse({"instances": [{"b64": base64.b64encode(png).decode()}]})
    assert arrays["image_bytes"].tolist() == [png]
    img = np.zeros((1, 1, 3)).tolist()
    _, arrays, _ = _parse({"signature_name": "enhance_float_alpha",
                           "instances": [{"lr_image": img, "alpha": 0.5}, {"lr_image": img, "alpha": 1.0}]})
    assert arrays["alpha"].tolist() == [0.5, 1.0] and arrays["lr_image"].shape == (2, 1, 1, 3)


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "malformed JSON"),
    ([1, 2], 400, "must be a JSON object"),
    ({}, 400, "exactly one of"),
    ({"instances": [], "inputs": []}, 400, "exactly one of"),
    ({"signature_name": "nope", "instances": [1]}, 400, "unknown signature_name"),
    ({"instances": []}, 400, "non-empty list"),
    ({"instances": [{"b64": "!!!"}]}, 400, "base64"),
    ({"signature_name": "enhance", "instances": [[[[300, 0, 0]]]]}, 400, ""),
    ({"signature_name": "enhance", "instances": [[[[0, 0, 0]]]] * 5}, 413, "--max_instances"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
])
def test_malformed_requests_get_a_4xx_naming_the_problem(body, status, fragment):
    with pytest.raises(RestError) as e:
        _parse(body)
    assert e.value.status == status and fragment in e.value.message


def test_answers_round_trip_as_json():
    out = {"sr_image": np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)}
    row = json.loads(b"".join(rest.encode_outputs(out, row=True, chunk_bytes=7)))
    assert row == {"predictions": out["sr_image"].tolist()}
    col = json.loads(b"".join(rest.encode_outputs(out, row=False)))
    assert col == {"outputs": out["sr_image"].tolist()}
    png = json.loads(b"".join(rest.encode_outputs({"sr_png_bytes": np.array([b"ab"], dtype=object)}, row=True)))
    assert png == {"predictions": [{"b64": base64.b64encode(b"ab").decode()}]}
    status = rest.status_body([(2, "AVAILABLE", ""), (1, "END", "gone")])
    assert status["model_version_status"][1]["status"]["error_code"] == "UNKNOWN"


def test_fuzzed_requests_only_ever_raise_a_4xx_rest_error():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaves = st.one_of(st.none(), st.booleans(), st.integers(-300, 300), st.floats(allow_nan=False, width=32),
                       st.text(max_size=8), st.fixed_dictionaries({"b64": st.text(max_size=12)}))
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["b64", "lr_image", "alpha", "image_bytes", "x"]), inner, max_size=3), max_leaves=25)
    bodies = st.fixed_dictionaries({}, optional={
        "signature_name": st.sampled_from(list(SIGNATURES) + ["nope", 3]),
        "instances": values, "inputs": values})
    valid = st.builds(lambda px, n: {"signature_name": "enhance", "instances": [[[[px, px, px]]]] * n},
                      st.integers(0, 255), st.integers(1, 4))  # So that mutations start from real requests too.
    outcomes = set()

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=valid | bodies | values, garble=st.one_of(st.just(-1), st.integers(0, 40)))
    def check(body, garble):
        raw = json.dumps(body).encode()
        if garble >= 0:  # Bytes cut or flipped: malformed JSON must be a 400 too.
            raw = raw[:garble] + b"\xff" + raw[garble + 1:]
        try:
            sig, arrays, _ = rest.parse_predict(raw, SIGNATURES, 4)
        except RestError as e:
            assert 400 <= e.status < 500 and e.message
            outcomes.add("refused")
            return
        assert sig in SIGNATURES and set(arrays) == set(SIGNATURES[sig]["inputs"])
        outcomes.add("parsed")
    check()
    assert outcomes == {"parsed", "refused"}
