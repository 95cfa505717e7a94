"""Cost per image of each feature extractor, against Inception-v3 in the same run, printed as a table.

    python tests/benchmarks/encoders_cost.py                       # all four, batch 4, 3 rounds
    python tests/benchmarks/encoders_cost.py --only inception,dinov2-vits14 --batch 16 --rounds 5

Every extractor runs on random weights in its published layout (written to a temporary folder
first, as the tests do), so the figures are the networks' cost, not the weights' quality. Input:
uint8 32×32 RGB images (the benchmark's resolution); each extractor resizes them as its
reference pipeline does (Inception 299, DINOv2 224, CLIP 336). The contenders take turns in
every round (A, B, C, A, B, C, ...) so that background load hits them alike; the table gives
the median and the minimum over rounds, and the median relative to Inception's. ``--threads``
sets torch's intra-op threads (default 1). State the CPU flags printed at the top with any
figure you quote.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # the tests' fake_weights

from fake_weights import random_dinov2_state, random_inception_state, random_openai_clip_state  # noqa: E402

from mgbench.features import clip, dinov2, inception  # noqa: E402

Builder = Callable[[Path], Callable[[torch.Tensor], tuple[torch.Tensor, ...]]]


def _inception(folder: Path):
    path = folder / inception.WEIGHTS_FILE
    torch.save(random_inception_state(), path)
    return inception.InceptionExtractor(path)


def _dinov2(key: str, width: int, depth: int) -> Builder:
    def build(folder: Path):
        variant = dinov2.VARIANTS[key]
        torch.save(random_dinov2_state(width, depth), folder / variant.weights_file)
        return dinov2.DINOv2Extractor(folder, variant=key)

    return build


def _clip(folder: Path):
    variant = clip.VARIANTS["vitl14-336"]
    from safetensors.torch import save_file

    save_file(random_openai_clip_state(1024, 24, 768, grid=24), folder / variant.weights_file)
    return clip.CLIPExtractor(folder)


CONTENDERS: dict[str, Builder] = {
    "inception": _inception,
    "dinov2-vits14": _dinov2("vits14", 384, 12),
    "dinov2-vitl14": _dinov2("vitl14", 1024, 24),
    "clip-vitl14-336": _clip,
}


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    found = sorted({f for f in re.findall(r"\b\w+\b", text) if f in wanted})
    return " ".join(found) or "none of " + ", ".join(wanted)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated: " + ", ".join(CONTENDERS))
    parser.add_argument("--batch", type=int, default=4, help="images per call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(",") if n]
    print(f"CPU flags: {cpu_flags()}; torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8, generator=g)
    extractors = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            start = time.perf_counter()
            extractors[name] = CONTENDERS[name](Path(tmp))
            extractors[name](images[:1])  # warm-up
            print(f"  built {name} in {time.perf_counter() - start:.1f} s (random weights written and loaded)")
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for name, ex in extractors.items():
                start = time.perf_counter()
                ex(images)
                times[name].append((time.perf_counter() - start) / args.batch)
    base = statistics.median(times["inception"]) if "inception" in times else None
    print(f"\n{'extractor':<18} {'median s/img':>13} {'min s/img':>10} {'vs inception':>13}")
    for name, t in times.items():
        ratio = f"{statistics.median(t) / base:.1f}x" if base else "-"
        print(f"{name:<18} {statistics.median(t):>13.3f} {min(t):>10.3f} {ratio:>13}")


if __name__ == "__main__":
    main()
