"""Bad input, table-driven: exit code 2, one message naming the problem (and the fix), no
traceback, nothing written, no earlier result lost."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgbench.cli import main


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def make(tmp: Path, mnist_dir: Path) -> dict[str, str]:
    """Files the cases refer to, made in ``tmp``."""
    (tmp / "unknown_key.toml").write_text("modles = ['dcgan']\n")
    (tmp / "wrong_type.toml").write_text("[train]\nsteps = 'many'\n")
    (tmp / "broken.toml").write_text("[train\nsteps = 3\n")
    (tmp / "unknown_table.toml").write_text("[trian]\nsteps = 3\n")
    truncated = tmp / "truncated"
    truncated.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", truncated)
    data = gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    (truncated / "t10k-images-idx3-ubyte").write_bytes(data[: len(data) // 2])
    corrupt = tmp / "corrupt"
    corrupt.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", corrupt)
    (corrupt / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    flat = tmp / "flat"
    flat.mkdir()
    for i in range(600):  # enough for the smoke preset's 500 reference images
        Image.fromarray(np.full((16, 16, 3), i % 256, dtype=np.uint8)).save(flat / f"{i}.png")
    (tmp / "garbage.pth").write_bytes(b"not a checkpoint at all")
    torch.save({"w": Payload(tmp / "PWNED")}, tmp / "payload.pth")
    np.savez(tmp / "five_channels.npz", np.zeros((4, 16, 16, 5), dtype=np.uint8))
    (tmp / "a_file").write_text("")
    places = {"tmp": tmp, "truncated": truncated, "corrupt": corrupt, "flat": flat, "mnist": mnist_dir}
    return {k: str(v) for k, v in places.items()}


RUN = ["run", "--preset", "smoke"]
CASES = [  # (id, argv with {placeholders}, words the message must hold)
    ("unknown model", RUN + ["--models", "dcgna"], ["dcgna", "dcgan", "lapgan"]),
    ("unknown dataset", RUN + ["--dataset", "imagenet"], ["imagenet", "cifar10"]),
    ("unknown preset", ["run", "--preset", "fast"], ["fast", "quick", "smoke"]),
    ("unknown feature extractor", RUN + ["--feature-extractor", "resnet"], ["resnet", "inception", "dinov2"]),
    ("unknown device", RUN + ["--device", "tpu"], ["tpu", "cuda"]),
    ("negative steps", RUN + ["--steps", "-5"], ["train.steps", "positive"]),
    ("batch size 0", RUN + ["--batch-size", "0"], ["train.batch_size", "positive"]),
    ("resolution not a power of two", RUN + ["--resolution", "24"], ["24", "power of two"]),
    ("resolution a model cannot do",
     RUN + ["--dataset", "mnist", "--data-root", "{mnist}", "--resolution", "8", "--models", "dcgan"], ["dcgan", "8"]),
    ("negative seed", RUN + ["--seeds", "-1"], ["seeds"]),
    ("unknown TOML key", ["run", "--config", "{tmp}/unknown_key.toml"], ["modles", "models"]),
    ("unknown TOML table", ["run", "--config", "{tmp}/unknown_table.toml"], ["trian", "train"]),
    ("wrong type in TOML", ["run", "--config", "{tmp}/wrong_type.toml"], ["train.steps", "int", "many"]),
    ("invalid TOML", ["run", "--config", "{tmp}/broken.toml"], ["not valid TOML"]),
    ("missing config file", ["run", "--config", "{tmp}/nope.toml"], ["nope.toml", "does not exist"]),
    ("missing dataset folder", RUN + ["--dataset", "mnist", "--data-root", "{tmp}/nowhere"], ["nowhere"]),
    ("truncated dataset file", RUN + ["--dataset", "mnist", "--data-root", "{truncated}"], ["t10k-images"]),
    ("corrupt dataset file", RUN + ["--dataset", "mnist", "--data-root", "{corrupt}"], ["t10k-images"]),
    ("unlabelled folder for a conditional model",
     RUN + ["--dataset", "folder", "--data-root", "{flat}", "--models", "cgan"], ["cgan", "labels"]),
    ("missing weights file", RUN + ["--feature-extractor", "inception", "--weights", "{tmp}/none.pth"],
     ["none.pth"]),
    ("corrupt weights file", RUN + ["--feature-extractor", "inception", "--weights", "{tmp}/garbage.pth"],
     ["garbage.pth"]),
    ("weights with pickled code", RUN + ["--feature-extractor", "inception", "--weights", "{tmp}/payload.pth"],
     ["payload.pth", "pickled code"]),
    ("output folder cannot be written", RUN + ["--out", "{tmp}/a_file/runs"], ["cannot write", "--out"]),
    ("resume of a folder that is no run", ["run", "--resume", "{tmp}"], ["no config.json"]),
    ("missing plugin module", RUN + ["--plugin", "no_such_plugin"], ["no_such_plugin"]),
    ("images of the wrong shape", ["score", "{tmp}/five_channels.npz", "--dataset", "shapes"],
     ["five_channels.npz", "uint8 N×H×W×3"]),
]


@pytest.mark.parametrize("argv, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_clear_message(argv, words, tmp_path, mnist_dir, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no weights anywhere
    places = make(tmp_path, mnist_dir)
    argv = [a.format(**places) for a in argv]
    if "--out" not in argv and argv[0] == "run":
        argv += ["--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert not (tmp_path / "PWNED").exists()  # the payload never ran
    assert not (tmp_path / "runs").exists()  # nothing written before the check failed


def test_bad_input_loses_no_earlier_result(tmp_path, capsys):
    run_dir = tmp_path / "smoke"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"name": "smoke", "out": str(tmp_path)}))
    (run_dir / "results.csv").write_text("model,seed,status\ndcgan,0,ok\n")
    before = (run_dir / "results.csv").read_bytes()
    assert main(["run", "--preset", "smoke", "--steps", "7", "--out", str(tmp_path)]) == 2  # another config
    assert "holds a run with another config" in capsys.readouterr().err
    assert (run_dir / "results.csv").read_bytes() == before
