"""One training run, on the calling thread: load the base model (4-bit for QLoRA), wrap it in LoRA, train with the
transformers Trainer (sft, packed) or TRL's DPOTrainer (preference), evaluate on the held-out split, save the adapter.

Nothing here knows about Kafka or the object store: the job talks to it through `Hooks`, and the benchmark calls
`run` directly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from modelops_contracts import AdapterSpec, Hyperparameters
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase, Trainer

from . import data, evaluation
from .callbacks import Hooks, JobCallback
from .capabilities import Capabilities, detect
from .domain import JobSpecError
from .plugins import Plugins

ADAPTER_DIR = "adapter"
DEEPSPEED_CONFIGS = Path(__file__).parent / "deepspeed"
# Trainer.evaluate's own timings say how fast evaluation ran, nothing about the adapter.
_TIMINGS = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}


@dataclass(frozen=True)
class Plan:
    """Everything one run needs, already fetched and verified."""

    method: str
    schema: str
    base_model: Path
    rows: list[dict[str, Any]]
    hyperparameters: Hyperparameters
    adapter: AdapterSpec
    quantization: str
    eval_split: float
    output_dir: Path
    resume_from: Path | None = None
    plugins: Plugins = field(default_factory=Plugins)
    checkpoint_every: int = 50
    progress_every_steps: int = 10
    progress_every_s: float = 5.0
    exact_match_max_tokens: int = 16
    # Processes training together (data parallel); more than one: distributed.launch runs them, each calling `run`.
    ranks: int = 1
    zero_stage: int = 0


@dataclass(frozen=True)
class Result:
    """`stopped` names why training ended early (cancelled, handed_off); then there is no adapter. `tokens`: trained
    on by every rank, in this run (a resumed job's earlier runs not included)."""

    steps: int
    metrics: dict[str, float]
    adapter_dir: Path | None
    stopped: str | None
    capabilities: Capabilities
    tokens: int = 0


def run(plan: Plan, hooks: Hooks) -> Result:
    """Train, evaluate and save the adapter under `plan.output_dir/adapter`; JobSpecError for an impossible spec."""
    if plan.method == "dpo" and plan.schema != "preference":
        raise JobSpecError(f"method dpo needs a preference dataset, not {plan.schema}")
    if plan.method == "sft" and plan.schema == "preference":
        raise JobSpecError("a preference dataset trains with method dpo")
    capabilities = detect()
    # Seeds first: LoRA's initial weights and the data order both come from them.
    transformers.set_seed(plan.hyperparameters.seed)
    tokenizer = AutoTokenizer.from_pretrained(plan.base_model)
    model = _peft_model(plan, capabilities)
    train_rows, held_out = data.split_rows(plan.rows, plan.eval_split, plan.hyperparameters.seed)
    if not train_rows:
        raise JobSpecError("the dataset has no rows to train on")
    callback = JobCallback(hooks, every_steps=plan.progress_every_steps, every_s=plan.progress_every_s)
    build = _dpo_trainer if plan.method == "dpo" else _sft_trainer
    trainer = build(plan, model, tokenizer, train_rows, held_out, capabilities, callback)
    if hooks.stop_reason() is None:
        trainer.train(resume_from_checkpoint=str(plan.resume_from) if plan.resume_from else None)
    else:
        callback.stopped = hooks.stop_reason()
    # Every rank trains on as many packed rows per step as rank 0, which counts its own.
    tokens = int(callback.tokens()) * trainer.args.world_size
    if callback.stopped:
        return Result(trainer.state.global_step, {}, None, callback.stopped, capabilities, tokens)
    # Every rank evaluates (evaluation is collective, and so is generation under ZeRO-3); rank 0 alone saves.
    metrics = _metrics(plan, trainer, model, tokenizer, held_out)
    # Under ZeRO-3 each rank holds a shard of every weight: gathering them is collective too.
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped) if plan.zero_stage == 3 else None
    if not trainer.is_world_process_zero():
        return Result(trainer.state.global_step, metrics, None, None, capabilities, tokens)
    adapter_dir = plan.output_dir / ADAPTER_DIR
    model.save_pretrained(str(adapter_dir), state_dict=state)
    tokenizer.save_pretrained(adapter_dir)
    return Result(trainer.state.global_step, metrics, adapter_dir, None, capabilities, tokens)


def _peft_model(plan: Plan, capabilities: Capabilities) -> PeftModel:
    kwargs: dict[str, Any] = {"attn_implementation": capabilities.attention}
    compute_dtype = torch.bfloat16 if capabilities.bf16 else torch.float32
    if capabilities.bf16:
        kwargs["dtype"] = torch.bfloat16
    if plan.quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    model = AutoModelForCausalLM.from_pretrained(plan.base_model, **kwargs)
    if plan.quantization == "nf4":
        # Gradient checkpointing trades compute for memory; only worth it where memory is the limit (a GPU).
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=capabilities.device == "cuda"
        )
    config = LoraConfig(
        r=plan.adapter.r,
        lora_alpha=plan.adapter.alpha,
        lora_dropout=plan.adapter.dropout,
        target_modules=plan.adapter.target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # peft's word for target modules the model does not have
        raise JobSpecError(f"LoRA adapter spec does not fit the base model: {error}") from None


def _arguments(
    plan: Plan, capabilities: Capabilities, cls: type[Any] = transformers.TrainingArguments, **extra: Any
) -> Any:
    hp = plan.hyperparameters
    budget = {"max_steps": hp.max_steps} if hp.max_steps else {"num_train_epochs": hp.epochs}
    if plan.zero_stage:
        extra["deepspeed"] = str(DEEPSPEED_CONFIGS / f"zero{plan.zero_stage}.json")
    return cls(
        output_dir=str(plan.output_dir),
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        seed=hp.seed,
        data_seed=hp.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=plan.checkpoint_every,
        save_total_limit=1,
        report_to=[],
        disable_tqdm=True,
        use_cpu=capabilities.device == "cpu",
        bf16=capabilities.bf16,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        # Every LoRA weight gets a gradient each step: DDP need not search the graph for unused ones.
        ddp_find_unused_parameters=False,
        **budget,
        **extra,
    )


def _sft_trainer(
    plan: Plan,
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    capabilities: Capabilities,
    callback: JobCallback,
) -> Trainer:
    seq_len = plan.hyperparameters.seq_len
    train = data.pack(data.encode_rows(tokenizer, plan.schema, train_rows, seq_len), seq_len)
    if not train:
        raise JobSpecError("no training row has anything to learn within seq_len tokens")
    evaluation_rows = data.pack(data.encode_rows(tokenizer, plan.schema, held_out, seq_len), seq_len)
    collator = data.PackedCollator(data.pad_token_id(tokenizer))
    optimizers = (_plugin_optimizer(plan, model), None)
    trainer = Trainer(
        model=model,
        args=_arguments(plan, capabilities),
        train_dataset=data.PackedDataset(train),
        eval_dataset=data.PackedDataset(evaluation_rows) if evaluation_rows else None,
        data_collator=collator,
        compute_loss_func=plan.plugins.loss,
        optimizers=optimizers,
        callbacks=[callback, *plan.plugins.callbacks],
    )
    callback.tokens_seen = lambda _: collator.tokens_seen
    trainer.remove_callback(transformers.PrinterCallback)
    return trainer


def _dpo_trainer(
    plan: Plan,
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
    capabilities: Capabilities,
    callback: JobCallback,
) -> Trainer:
    # Imported here: trl and datasets take seconds to import, and only preference jobs need them.
    from datasets import Dataset
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    columns = ("prompt", "chosen", "rejected")
    first: dict[str, float] = {}

    def tokens_since_start(logs: dict[str, Any]) -> float:
        # TRL counts tokens over the whole run, resumed or not; the rate is over this process's share.
        seen = float(logs.get("num_tokens", 0.0))
        return seen - first.setdefault("seen", seen)

    trainer = DPOTrainer(
        model=model,
        args=_arguments(plan, capabilities, DPOConfig, max_length=plan.hyperparameters.seq_len),
        train_dataset=Dataset.from_list([{c: row[c] for c in columns} for row in train_rows]),
        eval_dataset=Dataset.from_list([{c: row[c] for c in columns} for row in held_out]) if held_out else None,
        processing_class=tokenizer,
        optimizers=(_plugin_optimizer(plan, model), None),
        callbacks=[callback, *plan.plugins.callbacks],
    )
    callback.tokens_seen = tokens_since_start
    trainer.remove_callback(transformers.PrinterCallback)
    return trainer


def _plugin_optimizer(plan: Plan, model: PeftModel) -> torch.optim.Optimizer | None:
    if plan.plugins.optimizer is None:
        return None
    optimizer = plan.plugins.optimizer(
        [p for p in model.parameters() if p.requires_grad], plan.hyperparameters.learning_rate
    )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise JobSpecError(f"the optimizer plugin made a {type(optimizer).__name__}, not a torch optimizer")
    return optimizer


def _metrics(
    plan: Plan, trainer: Trainer, model: PeftModel, tokenizer: PreTrainedTokenizerBase, held_out: list[dict[str, Any]]
) -> dict[str, float]:
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    metrics: dict[str, float] = {"steps": float(trainer.state.global_step)}
    if history:
        metrics["first_loss"] = float(history[0]["loss"])
        metrics["train_loss"] = float(history[-1]["loss"])
    if trainer.eval_dataset is not None:
        found = trainer.evaluate()
        metrics.update({k: float(v) for k, v in found.items() if k.startswith("eval_") and k not in _TIMINGS})
        if plan.method == "sft":
            metrics["perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
    if plan.method == "sft" and held_out:
        metrics.update(evaluation.exact_match(model, tokenizer, plan.schema, held_out, plan.exact_match_max_tokens))
    model.eval()  # metric plugins score the adapter as it will serve: no dropout
    for name, metric in plan.plugins.metrics.items():
        try:
            metrics.update({k: float(v) for k, v in metric(model, tokenizer, held_out).items()})
        except Exception as error:
            raise JobSpecError(f"metric plugin {name!r} failed: {error!r}") from None
    metrics.update(plan.plugins.callback_metrics())
    return metrics
