import dataclasses

import pytest

from mgbench import presets
from mgbench.config import RunConfig, merge
from mgbench.contract import ProducesPyramid
from mgbench.errors import UsageError
from mgbench.registry import get_model_class, list_models


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_builds(name):
    cfg = RunConfig.from_dict(presets.preset(name))
    assert cfg.name == name
    registered = set(list_models())
    assert set(cfg.models) <= registered
    assert set(cfg.model_overrides) <= registered  # no override for a model that does not exist
    assert {"dcgan", "vae"} <= set(cfg.models)  # every preset holds the single-scale references


def test_multiscale_preset_sets_the_single_scale_references_beside_every_multi_scale_model():
    cfg = RunConfig.from_dict(presets.preset("multiscale"))
    multi = {m for m in list_models() if issubclass(get_model_class(m), ProducesPyramid)}
    assert multi >= {"lapgan", "progan", "msggan", "hiergan"}
    assert set(cfg.models) == multi | {"dcgan", "vae", "hvae"} and cfg.precision == "fp32"
    assert set(presets.preset("standard")["models"]) == set(list_models())


def test_json_round_trip():
    cfg = RunConfig.from_dict(presets.preset("quick"))
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"modles": ["dcgan"]}, ["modles", "models"]),
        ({"data": {"resolutoin": 32}}, ["data.resolutoin", "data.resolution"]),
        ({"train": {"steps": -5}}, ["train.steps", "positive"]),
        ({"train": {"batch_size": 0}}, ["train.batch_size", "positive"]),
        ({"train": {"steps": "many"}}, ["train.steps", "int"]),
        ({"train": {"steps": True}}, ["train.steps", "int"]),
        ({"data": {"resolution": 24}}, ["power of two"]),
        ({"seeds": [-1]}, ["seeds"]),
        ({"seeds": 3}, ["seeds", "list"]),
        ({"models": []}, ["no models"]),
        ({"device": "tpu"}, ["device", "cuda"]),
        ({"data": 5}, ["data", "table"]),
    ],
)
def test_invalid_config_names_the_problem(raw, words):
    with pytest.raises(UsageError) as err:
        RunConfig.from_dict(raw)
    for word in words:
        assert word in str(err.value)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(UsageError, match="quick"):
        presets.preset("quik")


def test_merge_is_deep_and_does_not_mutate():
    base = {"a": 1, "t": {"x": 1, "y": 2}}
    out = merge(base, {"t": {"y": 3}})
    assert out == {"a": 1, "t": {"x": 1, "y": 3}}
    assert base == {"a": 1, "t": {"x": 1, "y": 2}}


def test_the_readme_toml_example_is_a_valid_config(tmp_path):
    from pathlib import Path

    from mgbench.cli import build_config, make_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "run.toml").write_text(example)
    cfg = build_config(make_parser().parse_args(["run", "--config", str(tmp_path / "run.toml")]))
    assert list(cfg.models) == ["dcgan", "lapgan"] and cfg.train.steps == 2000 and cfg.execution.workers == 2
    assert cfg.model_overrides["dcgan"] == {"ngf": 64, "ndf": 64, "lr": 5e-4}  # merged over the preset
