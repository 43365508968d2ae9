"""The Loader's batches for a fixed seed, recorded before the issue-12 refactor: any change to
sampling, mixing, augmentation or relabelling that alters a batch fails here (labels and masks
exactly, images quantised to 1e-4)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import synth

from neurons_jax.pipeline import Loader

GOLDEN = {
    "default": [
        {
            "semantic": "ed402c1c6ca66421",
            "instance": "0d726a7e36d02b23",
            "mask": "111ce3c2a38d83a2",
            "dataset": "8bd2fa7c6873c97e",
            "position": "67d19981632bcaec",
            "volume": "374708fff7719dd5",
            "image": "a729b665bef570f9"
        },
        {
            "semantic": "ab6839fe2b48eb6a",
            "instance": "99490c92018d97f9",
            "mask": "111ce3c2a38d83a2",
            "dataset": "6c538360293ff9d7",
            "position": "ccb8aaedb4dba3b2",
            "volume": "374708fff7719dd5",
            "image": "ffd551372f70f08b"
        },
        {
            "semantic": "5152fe813debe35d",
            "instance": "e4b94ef96eef9829",
            "mask": "111ce3c2a38d83a2",
            "dataset": "69ca48872b2a2691",
            "position": "20febb4d225a0b3c",
            "volume": "374708fff7719dd5",
            "image": "9214c387af5cfc56"
        }
    ],
    "none": [
        {
            "semantic": "5684deaa9fd3ea79",
            "instance": "1a8a943a05697fd6",
            "mask": "111ce3c2a38d83a2",
            "dataset": "8bd2fa7c6873c97e",
            "position": "b76e18f961190901",
            "volume": "374708fff7719dd5",
            "image": "6bf0d075b8c401cb"
        },
        {
            "semantic": "2a70c1d8455bd305",
            "instance": "fb5acb1910529f64",
            "mask": "111ce3c2a38d83a2",
            "dataset": "6c538360293ff9d7",
            "position": "000de263efa10abe",
            "volume": "374708fff7719dd5",
            "image": "f83df31a91bd0a6f"
        },
        {
            "semantic": "30c6962ac05cbf5f",
            "instance": "b90c8223519e53b7",
            "mask": "111ce3c2a38d83a2",
            "dataset": "69ca48872b2a2691",
            "position": "d4892c0670237b12",
            "volume": "374708fff7719dd5",
            "image": "8e6ec0fa4ce12ea0"
        }
    ]
}


def digest(batch: dict) -> dict:
    out = {}
    for k in ("semantic", "instance", "mask", "dataset", "position", "volume"):
        out[k] = hashlib.sha256(np.ascontiguousarray(np.asarray(batch[k])).tobytes()).hexdigest()[:16]
    img = np.round(np.asarray(batch["image"], np.float64) * 1e4).astype(np.int64)
    out["image"] = hashlib.sha256(img.tobytes()).hexdigest()[:16]
    return out


@pytest.fixture(scope="module")
def sources():
    return {
        "snemi3d": (synth.dataset("snemi3d", seed=1), 1.0),
        "cremi3d": (synth.dataset("cremi3d", seed=2), 2.0),
        "mitoem2": (synth.dataset("mitoem2", seed=3), 0.5),
    }


def run(sources, **kw):
    loader = Loader(sources, (4, 32, 32), batch_size=4, seed=9, output="numpy", **kw)
    got = [digest(next(loader)) for _ in range(3)]
    loader.close()
    return got


@pytest.mark.parametrize("mode", ["default", "none"])
def test_batches_are_the_recorded_ones(sources, mode):
    got = run(sources, **({} if mode == "default" else {"augment": None}))
    for i, (g, want) in enumerate(zip(got, GOLDEN[mode])):
        assert g == want, f"batch {i} ({mode}): {g} != {want}"
