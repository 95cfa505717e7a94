"""results.csv: rows and columns in an order that does not depend on which job finished first."""

import pandas as pd

from mgbench.results import ResultsStore


def _row(model: str, seed: int, **extra: object) -> dict:
    return {"model": model, "dataset": "shapes", "resolution": 16, "seed": seed, "status": "ok", "message": "",
            **extra}


ROWS = [_row("vae", 0, lpips_recon=0.1, fid=3.0, wall_s=5.0, loss_elbo=1.0),
        _row("cgan", 1, cond_acc=0.9, fid=2.0, params_G=10, wall_s=4.0),
        {**_row("dcgan", 0), "status": "crashed", "message": "job process died"},
        _row("cgan", 0, cond_acc=0.8, fid=1.0, params_G=10, wall_s=3.0)]


def test_file_is_the_same_whatever_order_the_jobs_finish_in(tmp_path):
    forward, backward = ResultsStore(tmp_path / "a.csv"), ResultsStore(tmp_path / "b.csv")
    for row in ROWS:
        forward.add(row)
    for row in reversed(ROWS):
        backward.add(row)
    assert forward.path.read_bytes() == backward.path.read_bytes()
    df = forward.read()
    assert list(df.columns) == ["model", "dataset", "resolution", "seed", "status", "message",
                                "cond_acc", "fid", "lpips_recon", "params_G", "wall_s", "loss_elbo"]
    assert list(zip(df["model"], df["seed"], strict=True)) == [("cgan", 0), ("cgan", 1), ("dcgan", 0), ("vae", 0)]



def test_text_that_looks_like_a_number_stays_text_whatever_the_order(tmp_path):
    # A single-scale model's scales "16" beside a calibration row that has none: read back as
    # numbers, the column became 16.0 and was written "16.0" once a multi-scale row joined it.
    rows = [_row("dcgan", 0, scales="16", fid=1.0), _row("noise", 0, fid=9.0),
            _row("lapgan", 0, scales="8 16", fid=2.0)]
    forward, backward = ResultsStore(tmp_path / "a.csv"), ResultsStore(tmp_path / "b.csv")
    for row in rows:
        forward.add(row)
    for row in reversed(rows):
        backward.add(row)
    assert forward.path.read_bytes() == backward.path.read_bytes()
    assert dict(zip(forward.read()["model"], forward.read()["scales"].fillna(""), strict=True)) == \
        {"dcgan": "16", "lapgan": "8 16", "noise": ""}


def test_a_stored_row_keeps_its_bytes_when_a_row_with_other_numbers_joins(tmp_path):
    # The interrupted-run test's failure: vae's time_pyramid_s 0 was written back as 0.0 once
    # dcgan's 0.13 made the column one of floats, so a resumed run changed a finished job's row.
    store = ResultsStore(tmp_path / "results.csv")
    store.add(_row("vae", 0, time_pyramid_s=0.0, fid=3.5, steps=20))
    before = store.path.read_text().splitlines()[1]
    store.add(_row("dcgan", 0, time_pyramid_s=0.13, fid=2.25, steps=20.0))
    lines = store.path.read_text().splitlines()
    assert lines[2] == before == "vae,shapes,16,0,ok,,20,3.5,0"
    assert lines[1] == "dcgan,shapes,16,0,ok,,20,2.25,0.13"  # a whole float reads as a count


def test_a_rerun_job_replaces_its_row_and_only_ok_rows_count_as_finished(tmp_path):
    store = ResultsStore(tmp_path / "results.csv")
    for row in ROWS:
        store.add(row)
    assert store.finished() == {("vae", 0), ("cgan", 0), ("cgan", 1)}
    store.add(_row("dcgan", 0, fid=7.0))
    df = store.read()
    assert len(df) == 4 and store.finished() == {("vae", 0), ("cgan", 0), ("cgan", 1), ("dcgan", 0)}
    assert df.loc[df["model"] == "dcgan", "fid"].item() == 7.0
    assert pd.isna(df.loc[df["model"] == "dcgan", "cond_acc"].item())
