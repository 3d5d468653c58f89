"""Memory of adapters served over one base model: peak RSS of the inference service's serving path with 1 and with 4
LoRA adapters on SmolLM2-135M-Instruct, each answering requests, against the same-run baselines a user would run
instead — plain PEFT with the same adapters loaded in one process, and one process per adapter (each its own copy of
the base model).

Each figure is one fresh process's peak resident set (VmHWM) after it loaded the base model, loaded its adapters and
answered 8 greedy requests spread over them; the median of --repeats processes. The adapters are random (non-zero)
r=16 LoRAs on all seven projections, the shape `make demo` trains.

    python bench/adapter_memory.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from inference import Served, make_adapter

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PROMPT = "Extract the person record: Lena Martin is 57 and lives in Prague."
REQUESTS = 8
MAX_TOKENS = 16


def peak_rss_mib() -> float:
    """This process's peak resident set so far (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def serve(root: Path, adapters: int) -> None:
    """Our path: one TransformersBackend (one copy of the base) and its scheduler, `adapters` LoRAs on it."""
    from modelops_inference.backend import TransformersBackend, pick_device

    backend = await TransformersBackend.load("base", root / "base", pick_device("cpu"), max_adapters=adapters)
    served = Served(backend, root, max_batch=8)
    names = [f"lora-{i}" for i in range(adapters)]
    try:
        await served.run([(PROMPT, names[i % adapters]) for i in range(REQUESTS)], REQUESTS, MAX_TOKENS)
    finally:
        await served.close()


def plain(root: Path, adapters: int) -> None:
    """Plain PEFT: the base with every adapter loaded, generating for each in turn."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "base")
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(root / "base"), str(root / "lora-0"), "lora-0"
    )
    for i in range(1, adapters):
        model.load_adapter(str(root / f"lora-{i}"), adapter_name=f"lora-{i}")
    ids = tokenizer(PROMPT, return_tensors="pt")
    for i in range(REQUESTS):
        model.set_adapter(f"lora-{i % adapters}")
        with torch.inference_mode():
            model.generate(**ids, max_new_tokens=MAX_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id)


def measured(root: Path, side: str, adapters: int, repeats: int) -> float:
    """Median peak RSS (MiB) of `repeats` fresh processes running `side` with `adapters` adapters."""
    peaks = []
    for _ in range(repeats):
        command = [sys.executable, __file__, "--child", side, "--adapters", str(adapters), "--root", str(root)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(peaks)


def prepare(root: Path) -> None:
    from modelops_trainer.gguf_import import convert, smollm2

    convert(smollm2().path, root / "base")
    for i in range(4):
        make_adapter(root / "base", root / f"lora-{i}", seed=i, r=16, modules=PROJECTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("ours", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--adapters", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ours":
        asyncio.run(serve(args.root, args.adapters))
        print(f"{peak_rss_mib():.1f}")
        return
    if args.child == "plain":
        plain(args.root, args.adapters)
        print(f"{peak_rss_mib():.1f}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-adapter-memory-") as scratch:
        root = Path(scratch)
        prepare(root)
        ours = {n: measured(root, "ours", n, args.repeats) for n in (1, 4)}
        peft = {n: measured(root, "plain", n, args.repeats) for n in (1, 4)}
    separate = 4 * peft[1]
    print(f"peak RSS, SmolLM2-135M-Instruct fp32 on CPU, median of {args.repeats} processes (MiB)")
    print(f"  ours, 1 adapter:                      {ours[1]:8.1f}")
    print(f"  ours, 4 adapters on one base:         {ours[4]:8.1f}  (+{ours[4] - ours[1]:.1f} for 3 more)")
    print(f"  plain PEFT, 4 adapters, one process:  {peft[4]:8.1f}  ours/plain {ours[4] / peft[4]:.2f}")
    print(f"  one process per adapter, 4 × {peft[1]:.1f}: {separate:8.1f}  ours/separate {ours[4] / separate:.2f}")


if __name__ == "__main__":
    main()
