"""The training loop of section 5, for the built-in numbers task or Multi30k German -> English.

The paper's recipe: Adam with beta1 = 0.9, beta2 = 0.98, eps = 1e-9 and the warmup schedule (5.3),
label smoothing 0.1 and residual dropout (5.4), batches of similar-length pairs filling a token
budget (5.1), and the average of the last checkpoints for the final model (6.1).

Practicalities: mixed precision on CUDA (bfloat16 where supported, else float16 with a gradient
scaler); the device is picked automatically (CUDA, Apple MPS, CPU); a checkpoint is written atomically
(to a temporary file, then ``os.replace``) every ``checkpoint_every`` steps and at the end, with
everything needed to continue *exactly*: model, optimizer, schedule, random number generators and the
position in the data. Under ``torchrun --nproc_per_node N`` the same code trains on N processes with
``DistributedDataParallel`` (gloo on CPU, nccl on GPUs): each process takes every N-th batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import torch
import torch.distributed as dist
from tokenizers import Tokenizer

from ..progress_bar import tqdm  # text, not a widget: a saved notebook shows the finished bar
from .batching import collate, make_batches
from .bpe import BOS_IDX, EOS_IDX, PAD_IDX, decode, encode, tokenizer_from_json, train_bpe
from .corpus import ParallelCorpus
from .data import load_corpus
from .parts import Assembly, fuse_attention, reference_assembly


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in every checkpoint."""

    dataset: str = "numbers"  # "numbers" (built in) or "multi30k"
    data_dir: str | None = None  # Multi30k: read the six .gz files from here instead of the cache
    cache_dir: str | None = None  # Multi30k: download into here (default ~/.cache/transformer-workbook)
    num_train: int | None = None  # use only the first N training pairs (None: all)
    vocab_size: int = 300  # shared BPE vocabulary (section 5.1)
    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 256
    dropout: float = 0.1  # residual dropout, P_drop (section 5.4)
    smoothing: float = 0.1  # label smoothing, eps_ls (section 5.4)
    max_tokens: int = 2048  # token budget per batch, padding included (section 5.1)
    steps: int = 1200  # optimizer steps in total
    minutes: float | None = None  # stop after this many minutes of training steps (evaluations do not count)
    warmup_steps: int = 200  # section 5.3
    lr_factor: float = 1.0  # multiplies the schedule of equation 3
    # "xavier": the embeddings as the model built them; "normal": redrawn from N(0, 1/d_model), so that
    # after section 3.4's sqrt(d_model) the token vectors are as large as the positional encodings
    embedding_init: str = "xavier"
    clip_norm: float | None = None  # clip the gradients' global norm to this (not in the paper; None: off)
    eval_every: int = 400  # validation loss and BLEU every N steps (0: only at the end)
    eval_every_minutes: float | None = None  # or every so many minutes of training (for time-limited runs)
    eval_sentences: int = 200  # validation sentences decoded for BLEU at each evaluation
    test_sentences: int | None = None  # test sentences translated at the end (None: all)
    checkpoint_every: int = 100  # write a checkpoint every N steps (and always at the end)
    average_last: int = 5  # average the weights of the last k checkpoints (section 6.1); 1 = none
    beam_size: int = 1  # final test decoding: 1 = greedy, >1 = beam search (section 6.1)
    length_penalty: float = 0.6  # beam search's alpha (Wu et al. 2016; the paper used 0.6)
    seed: int = 0
    # "manual": the parts' own attention; "fused": PyTorch's SDPA kernel in training steps (the parts'
    # weights and projections, and their own forward in eval mode, so the plots keep their weights)
    attention: str = "manual"
    amp: bool = True  # mixed precision on CUDA
    threads: int | None = None  # CPU threads for torch (None: 1 when the machine is busy, else torch's default)
    out_dir: str = "runs/numbers"
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, allowed in (("attention", ("manual", "fused")), ("embedding_init", ("xavier", "normal"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}.")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


PRESETS: dict[str, dict] = {
    # The default job: CPU-friendly, a few minutes, >= 95 % exact match on held-out numbers.
    "numbers": {},
    # Multi30k de->en, sized for a CPU run of about half an hour (use a GPU for more); tuned with
    # 10-minute proxy runs on a 2-core CPU (benchmarks/bench_multi30k.py; figures in chapter 12):
    # embeddings drawn from N(0, 1/d_model) and gradients clipped at norm 1 reached validation BLEU
    # 17.5 in 7.5 minutes where the plain recipe needed 15; a 5,000-token vocabulary makes steps
    # cheaper than 8,000 and learnt a little faster per step; lr_factor 1.0 stalled where 0.5 did not;
    # the fused attention kernel makes training steps about 17 % faster (the plots keep their weights).
    # 30 minutes on 2 cores: ~3,000 steps, test2016 sacreBLEU 36.3 / 36.2 (seeds 0 / 1; 30.2 before).
    "multi30k": dict(
        dataset="multi30k",
        vocab_size=5000,
        d_model=256,
        num_layers=3,
        num_heads=4,
        d_ff=512,
        max_tokens=2048,
        steps=20_000,
        warmup_steps=300,
        lr_factor=0.5,
        embedding_init="normal",
        clip_norm=1.0,
        attention="fused",
        eval_every=1000,
        eval_sentences=300,
        checkpoint_every=200,
        average_last=5,
        beam_size=4,
        out_dir="runs/multi30k",
    ),
}


# ----------------------------------------------------------------------------------------------
# Devices, processes, precision
# ----------------------------------------------------------------------------------------------
def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if present, else Apple's MPS, else the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_threads(requested: int | None, processes: int = 1) -> int:
    """Threads for CPU training. Several threads per process only help when cores are free: on a
    busy machine (or with several processes) their waiting for each other can make a step 10x slower."""
    if requested:
        return requested
    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0] > cores / 2 if hasattr(os, "getloadavg") else False
    return 1 if busy or processes > 1 else max(1, min(torch.get_num_threads(), cores))


def setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when started by ``torchrun`` (it sets WORLD_SIZE); returns
    (rank, world size, this process's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def autocast_and_scaler(device: torch.device, enabled: bool):
    """Mixed precision on CUDA: bfloat16 where the GPU supports it, else float16 with a GradScaler."""
    if device.type != "cuda" or not enabled:
        return nullcontext, None, "float32"
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler, str(dtype).replace("torch.", "")


# ----------------------------------------------------------------------------------------------
# Data preparation
# ----------------------------------------------------------------------------------------------
def encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(source text, target text) -> (source ids, ``<s>`` target ids ``</s>``)."""
    return [(encode(tokenizer, s), encode(tokenizer, t, add_bos_eos=True)) for s, t in pairs]


def redraw_embeddings(model: torch.nn.Module, d_model: int) -> None:
    """Draw every embedding matrix (shared ones once) from N(0, 1/d_model): times sqrt(d_model)
    (section 3.4) a token vector then has entries of size about 1, like the positional encoding's."""
    shared = {id(m.weight): m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    with torch.no_grad():
        for weight in shared.values():
            weight.normal_(0.0, d_model**-0.5)


def model_kwargs(config: TrainConfig, max_len: int) -> dict:
    return dict(
        d_model=config.d_model,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        d_ff=config.d_ff,
        dropout=config.dropout,
        max_seq_length=max_len,
        pad_idx=PAD_IDX,
        share_embeddings=True,
    )


MAX_TOKENS_PER_SENTENCE = 256  # longer pairs are dropped from training; positional table size


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def atomic_save(obj: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: the file at ``path`` is always
    either the old complete checkpoint or the new complete one, never half of one (a run killed
    mid-write leaves only a stray ``.tmp`` file)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights saved in ``paths`` (section 6.1: "averaging the last
    5 checkpoints"). Integer buffers are taken from the last one."""
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    averaged = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            averaged[key] = sum(s[key].float() for s in states).div(len(states)).to(value.dtype)
        else:
            averaged[key] = value
    return averaged


def weights_digest(model: torch.nn.Module) -> str:
    """A short fingerprint of all weights (to compare processes)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def validation_loss(model, criterion, examples, max_tokens: int, device, autocast) -> float:
    """Mean label-smoothed loss per target token over ``examples`` (dropout off)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    lengths = [(len(s), len(t)) for s, t in examples]
    for batch_ids in make_batches(lengths, max_tokens, seed=0, epoch=0):
        batch = collate([examples[i] for i in batch_ids])
        src, tgt_in, tgt_out = (batch[k].to(device) for k in ("src", "tgt_in", "tgt_out"))
        with autocast():
            loss = criterion(model(src, tgt_in).float(), tgt_out)
        tokens = int((tgt_out != PAD_IDX).sum())
        total, count = total + loss.item() * tokens, count + tokens
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def translate_batch(
    model,
    tokenizer,
    sentences: list[str],
    assembly: Assembly,
    device,
    beam_size: int = 1,
    batch_size: int = 64,
    length_penalty: float = 0.6,
) -> list[str]:
    """Translate sentences with the assembly's ``greedy_decode`` (or ``beam_search`` when
    ``beam_size > 1``, finished hypotheses scored with ``length_penalty``); returns detokenized text."""
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(sentences), batch_size):
        chunk = [
            encode(tokenizer, s)[: MAX_TOKENS_PER_SENTENCE - 2] or [EOS_IDX]
            for s in sentences[start : start + batch_size]
        ]
        if beam_size > 1:
            for ids in chunk:
                src = torch.tensor([ids], device=device)
                max_len = min(MAX_TOKENS_PER_SENTENCE, int(1.5 * len(ids)) + 10)
                out = assembly.beam_search(
                    model,
                    src,
                    max_len,
                    BOS_IDX,
                    EOS_IDX,
                    beam_size=beam_size,
                    length_penalty=length_penalty,
                    pad_idx=PAD_IDX,
                )
                outputs.append(decode(tokenizer, out.tolist()))
        else:
            from .batching import pad

            src = pad(chunk).to(device)
            max_len = min(MAX_TOKENS_PER_SENTENCE, int(1.5 * src.size(1)) + 10)
            out = assembly.greedy_decode(model, src, max_len, BOS_IDX, EOS_IDX, pad_idx=PAD_IDX)
            outputs.extend(decode(tokenizer, row) for row in out.tolist())
    model.train(was_training)
    return outputs


def score(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """sacreBLEU and chrF on detokenized text, and the share of exact matches. (A German number is
    one word, so on the numbers task BLEU's 4-grams see nothing: read chrF and exact match there.)"""
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(hypotheses, [references]).score
    chrf = sacrebleu.corpus_chrf(hypotheses, [references]).score  # character-level: fair to one-word outputs
    exact = sum(h == r for h, r in zip(hypotheses, references, strict=False)) / max(len(references), 1)
    return {"bleu": bleu, "chrf": chrf, "exact_match": exact}


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    out_dir: Path
    step: int
    test: dict[str, float] = field(default_factory=dict)
    examples: list[tuple[str, str, str]] = field(default_factory=list)  # (source, reference, output)
    seconds: float = 0.0
    tokens_per_second: float = 0.0


Example = tuple[list[int], list[int]]  # (source ids, <s> target ids </s>)


class Processes(NamedTuple):
    """Where this process stands: its rank among ``world`` processes (1 without torchrun), its device."""

    rank: int
    world: int
    device: torch.device


@dataclass
class Data:
    """The corpus, its shared BPE vocabulary and the encoded pairs (section 5.1)."""

    corpus: ParallelCorpus
    tokenizer: Tokenizer
    train_examples: list[Example]  # pairs longer than MAX_TOKENS_PER_SENTENCE are left out
    valid_examples: list[Example]


def new_history() -> dict[str, list]:
    """Per step: loss and learning rate; per evaluation: validation loss and BLEU (for the plots)."""
    return {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": [], "val_bleu": []}


@dataclass
class Run:
    """One run as the steps below share it: processes, data, model, optimiser and the progress so far
    (what a checkpoint saves, and what resuming restores)."""

    config: TrainConfig
    out_dir: Path
    rank: int
    world: int
    device: torch.device
    say: Callable[..., object]  # ``log`` on the main process, silent on the others
    data: Data
    assembly: Assembly
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any  # the assembly's TransformerLRScheduler (section 5.3)
    criterion: torch.nn.Module  # the assembly's LabelSmoothingLoss (section 5.4)
    autocast: Callable[[], AbstractContextManager]
    scaler: torch.amp.GradScaler | None
    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # the next batch of this epoch
    history: dict[str, list] = field(default_factory=new_history)
    elapsed_before: float = 0.0  # seconds of training before this run resumed
    train_start: float = 0.0  # time.perf_counter() when this run's training loop began
    log_file: TextIO | None = None  # log.jsonl, on the main process only

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    def elapsed(self) -> float:
        """Seconds of training so far, those before a resume included."""
        return self.elapsed_before + time.perf_counter() - self.train_start


def _quiet(*args, **kwargs) -> None:
    """What ``say`` is on every process but the main one."""


# Setting up ------------------------------------------------------------------------------------
def load_checkpoint(out_dir: Path) -> dict:
    """``out_dir/last.pt``, to resume from: model, optimiser, schedule, RNG states, data position."""
    last_path = out_dir / "last.pt"
    if not last_path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {last_path}; start without --resume first.")
    return torch.load(last_path, map_location="cpu", weights_only=False)


def start_processes(config: TrainConfig) -> Processes:
    """Join the process group under torchrun, seed Python's and torch's generators, set CPU threads."""
    processes = Processes(*setup_distributed(pick_device(config.device)))
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if processes.device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny Adam statistics as subnormal floats slow CPUs badly
        torch.set_num_threads(cpu_threads(config.threads, processes.world))
    return processes


def prepare_data(config: TrainConfig, corpus: ParallelCorpus | None, checkpoint: dict | None) -> Data:
    """Section 5.1: the corpus, a shared BPE vocabulary learnt from its training pairs (or the one
    saved in the checkpoint), and every pair encoded as token ids."""
    if corpus is None:
        corpus = load_corpus(
            config.dataset,
            data_dir=config.data_dir,
            cache_dir=config.cache_dir,
            seed=config.seed,
            num_train=config.num_train,
        )
    if checkpoint is not None:
        tokenizer = tokenizer_from_json(checkpoint["tokenizer"])
    else:
        tokenizer = train_bpe((text for pair in corpus.train for text in pair), config.vocab_size)
    train_examples = [
        ex for ex in encode_pairs(tokenizer, corpus.train) if max(len(ex[0]), len(ex[1])) <= MAX_TOKENS_PER_SENTENCE
    ]
    return Data(corpus, tokenizer, train_examples, encode_pairs(tokenizer, corpus.valid))


def describe_setup(data: Data, processes: Processes) -> str:
    """One line: the corpus, the vocabulary size (section 5.1), the device and the processes."""
    device, world = processes.device, processes.world
    return (
        f"{data.corpus}; shared BPE vocabulary of {data.tokenizer.get_vocab_size()} tokens; device {device}"
        + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else "")
        + (f" x {world} processes" if world > 1 else "")
    )


def build_model_and_optimiser(
    config: TrainConfig, out_dir: Path, processes: Processes, data: Data, assembly: Assembly, say: Callable[..., object]
) -> Run:
    """The model from the assembly's parts; Adam with beta1 = 0.9, beta2 = 0.98, eps = 1e-9 and the
    warmup schedule (section 5.3); the label-smoothed loss (section 5.4); mixed precision on CUDA."""
    device = processes.device
    if assembly.learner_parts:
        say(assembly.table())
    vocab = data.tokenizer.get_vocab_size()
    model = assembly.model(vocab, vocab, **model_kwargs(config, MAX_TOKENS_PER_SENTENCE)).to(device)
    if config.embedding_init == "normal":
        redraw_embeddings(model, config.d_model)
    if config.attention == "fused":  # the given parts too (chapter 12's long run): faster steps, same maths
        switched, reason = fuse_attention(model, assembly.MultiHeadAttention)
        if reason is not None:
            say(f"attention: the fused kernel is off, {reason}; MultiHeadAttention trains with its own forward.")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = assembly.TransformerLRScheduler(optimizer, config.d_model, config.warmup_steps, config.lr_factor)
    criterion = assembly.LabelSmoothingLoss(config.smoothing, ignore_index=PAD_IDX)
    autocast, scaler, precision = autocast_and_scaler(device, config.amp)
    say(
        f"Model: {sum(p.numel() for p in model.parameters()):,} parameters, {config.num_layers}+{config.num_layers} "
        f"layers, d_model={config.d_model}, precision {precision}"
    )
    return Run(
        config=config,
        out_dir=out_dir,
        rank=processes.rank,
        world=processes.world,
        device=device,
        say=say,
        data=data,
        assembly=assembly,
        model=model,
        net=model,
        optimizer=optimizer,
        scheduler=scheduler,
        criterion=criterion,
        autocast=autocast,
        scaler=scaler,
    )


def restore(run: Run, checkpoint: dict) -> None:
    """Continue exactly where the checkpoint stopped: weights, Adam's moments, the schedule (5.3),
    the position in the batches (5.1) and this process's generators (dropout, 5.4)."""
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    if run.scaler is not None and checkpoint.get("scaler"):
        run.scaler.load_state_dict(checkpoint["scaler"])
    run.step, run.epoch, run.batch_index = checkpoint["step"], checkpoint["epoch"], checkpoint["batch_index"]
    run.history, run.elapsed_before = checkpoint["history"], checkpoint.get("elapsed", 0.0)
    rngs = checkpoint["rng"]  # one state per process after a multi-process run
    set_rng_state(rngs[run.rank] if isinstance(rngs, list) else rngs)
    run.say(f"Resuming from {run.last_path} at step {run.step} (epoch {run.epoch}, batch {run.batch_index}).")


def open_log(run: Run, resume: bool) -> TextIO | None:
    """Create ``out_dir``; on the main process, open ``log.jsonl`` for appending, keeping only the
    lines up to the checkpoint we continue from."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    if not run.is_main:
        return None
    log_path = run.out_dir / "log.jsonl"
    old = log_path.read_text().splitlines() if (resume and log_path.exists()) else []
    kept = [line for line in old if json.loads(line).get("step", 0) <= run.step]
    log_path.write_text("".join(line + "\n" for line in kept))
    return open(log_path, "a")


def write_log(run: Run, record: dict) -> None:
    """Append one JSON line to ``log.jsonl`` (main process only)."""
    if run.log_file:
        run.log_file.write(json.dumps(record) + "\n")
        run.log_file.flush()


# Training steps --------------------------------------------------------------------------------
def epoch_batches(run: Run, epoch: int) -> list[list[int]]:
    """Section 5.1: this epoch's batches of similar-length pairs; every process takes every N-th one."""
    lengths = [(len(s), len(t)) for s, t in run.data.train_examples]
    batches = make_batches(lengths, run.config.max_tokens, run.config.seed, epoch)
    usable = len(batches) // run.world * run.world  # every process gets the same number of steps
    return batches[run.rank : usable : run.world]


def train_step(run: Run, batch_ids: list[int]) -> tuple[float, float, int]:
    """One optimiser step on one batch, at the rate of the schedule (5.3), with the label-smoothed
    loss and dropout (5.4); returns (loss, learning rate, target tokens over all processes)."""
    batch = collate([run.data.train_examples[i] for i in batch_ids])
    src, tgt_in, tgt_out = (batch[k].to(run.device, non_blocking=True) for k in ("src", "tgt_in", "tgt_out"))
    lr = run.scheduler.step()  # the rate of this step, set before the optimizer uses it
    with run.autocast():
        logits = run.net(src, tgt_in)  # teacher forcing: predict every next target token
    loss = run.criterion(logits.float(), tgt_out)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        if run.config.clip_norm:
            run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        if run.config.clip_norm:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip_norm)
        run.optimizer.step()
    run.step, run.batch_index = run.step + 1, run.batch_index + 1
    return loss.item(), lr, int((tgt_out != PAD_IDX).sum()) * run.world


def record_step(run: Run, batch_ids: list[int], loss: float, lr: float) -> None:
    """Keep the step's loss and rate (5.3) for the plots; log them with the step's place in the data."""
    run.history["step"].append(run.step)
    run.history["loss"].append(loss)
    run.history["lr"].append(lr)
    write_log(
        run,
        {
            "step": run.step,
            "loss": loss,
            "lr": lr,
            "epoch": run.epoch,
            "batch": run.batch_index - 1,
            "examples": batch_ids[:4],
        },
    )


def out_of_time(run: Run, deadline: float | None) -> bool:
    """Whether ``config.minutes`` of training are spent; with several processes, the main one's clock
    decides for all (it alone stops its clock while it evaluates)."""
    late = deadline is not None and time.perf_counter() > deadline
    if run.world > 1 and deadline is not None:  # all processes must stop at the same step
        flag = torch.tensor([float(late)], device=run.device)
        dist.broadcast(flag, src=0)
        late = bool(flag.item())
    return late


def evaluation_due(config: TrainConfig, step: int, next_eval_time: float) -> tuple[bool, float]:
    """Every ``eval_every`` steps, or every ``eval_every_minutes``; returns (due, next evaluation time)."""
    due = bool(config.eval_every and step % config.eval_every == 0)
    if config.eval_every_minutes and time.perf_counter() >= next_eval_time:
        due, next_eval_time = True, next_eval_time + 60 * config.eval_every_minutes
    return due, next_eval_time


def checkpoint_due(config: TrainConfig, step: int) -> bool:
    """Every ``checkpoint_every`` steps (0: only at the end)."""
    return bool(config.checkpoint_every and step % config.checkpoint_every == 0)


def save_checkpoint(run: Run) -> None:
    """Write ``last.pt`` (all needed to continue exactly) and ``weights-<step>.pt``, keeping the last
    ``average_last`` of those for averaging (section 6.1). Every process must call it (RNG gather)."""
    rngs = rng_state()
    if run.world > 1:  # every process has its own dropout stream; keep them all
        gathered: list = [None] * run.world
        dist.all_gather_object(gathered, rngs)
        rngs = gathered
    if not run.is_main:
        return
    state = {
        "config": asdict(run.config),
        "tokenizer": run.data.tokenizer.to_str(),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "rng": rngs,
        "step": run.step,
        "epoch": run.epoch,
        "batch_index": run.batch_index,
        "history": run.history,
        "elapsed": run.elapsed(),
    }
    atomic_save(run.model.state_dict(), run.out_dir / f"weights-{run.step:07d}.pt")  # for averaging (6.1)
    atomic_save(state, run.last_path)
    for old_file in sorted(run.out_dir.glob("weights-*.pt"))[: -max(run.config.average_last, 1)]:
        old_file.unlink(missing_ok=True)


def evaluate(run: Run) -> None:
    """Validation loss (label-smoothed, 5.4) and greedy-decoding BLEU on ``eval_sentences``: printed,
    logged and kept for the plots (main process only)."""
    config, data = run.config, run.data
    val_loss = validation_loss(
        run.model, run.criterion, data.valid_examples, config.max_tokens, run.device, run.autocast
    )
    subset = data.corpus.valid[: config.eval_sentences]
    hyps = translate_batch(run.model, data.tokenizer, [s for s, _ in subset], run.assembly, run.device)
    result = score(hyps, [t for _, t in subset])
    run.history["val_step"].append(run.step)
    run.history["val_loss"].append(val_loss)
    run.history["val_bleu"].append(result["bleu"])
    tqdm.write(
        f"step {run.step}: validation loss {val_loss:.3f}, BLEU {result['bleu']:.1f}, "
        f"chrF {result['chrf']:.1f}, exact match {result['exact_match']:.0%}"
    )
    write_log(run, {"step": run.step, "minutes": run.elapsed() / 60, "val_loss": val_loss, **result})


def train_loop(run: Run, progress: bool) -> tuple[float, float]:
    """Step until ``config.steps`` (or the time limit), evaluating and checkpointing on schedule;
    returns (seconds of training in this run, target tokens per second)."""
    config = run.config
    run.train_start = time.perf_counter()
    deadline = None if config.minutes is None else run.train_start + 60 * config.minutes - run.elapsed_before
    next_eval_time = run.train_start + 60 * (config.eval_every_minutes or 0)
    bar = tqdm(
        total=config.steps,
        initial=run.step,
        desc="training",
        disable=not (progress and run.is_main),
        dynamic_ncols=True,
    )
    tokens_done, tokens_clock = 0, time.perf_counter()
    batches = epoch_batches(run, run.epoch)
    run.model.train()
    while run.step < config.steps:
        if run.batch_index >= len(batches):  # a new epoch: new batches in a new order (5.1)
            run.epoch, run.batch_index = run.epoch + 1, 0
            batches = epoch_batches(run, run.epoch)
        batch_ids = batches[run.batch_index]
        loss, lr, tokens = train_step(run, batch_ids)
        tokens_done += tokens
        record_step(run, batch_ids, loss, lr)
        rate = tokens_done / max(time.perf_counter() - tokens_clock, 1e-9)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}", refresh=False)
        bar.update(1)
        if out_of_time(run, deadline):
            run.say(f"\nTime limit of {config.minutes} minutes reached at step {run.step}.")
            break
        due, next_eval_time = evaluation_due(config, run.step, next_eval_time)
        if run.is_main and due and run.step < config.steps:
            paused = time.perf_counter()
            evaluate(run)  # the other processes wait for it at the next gradient exchange
            paused = time.perf_counter() - paused  # evaluations are not training time: the clocks stop
            run.train_start, tokens_clock, next_eval_time = (
                t + paused for t in (run.train_start, tokens_clock, next_eval_time)
            )
            deadline = None if deadline is None else deadline + paused
        if checkpoint_due(config, run.step):
            save_checkpoint(run)
    bar.close()
    train_seconds = time.perf_counter() - run.train_start
    return train_seconds, tokens_done / max(time.perf_counter() - tokens_clock, 1e-9)


# Finishing -------------------------------------------------------------------------------------
def average_weights(run: Run) -> None:
    """Section 6.1: load the mean of the last ``average_last`` checkpoints; save it as ``averaged.pt``."""
    paths = sorted(run.out_dir.glob("weights-*.pt"))[-run.config.average_last :]
    run.model.load_state_dict(average_checkpoints(paths))
    run.say(f"Averaged the weights of the last {len(paths)} checkpoints (section 6.1).")
    atomic_save(
        {**torch.load(run.last_path, map_location="cpu", weights_only=False), "model": run.model.state_dict()},
        run.out_dir / "averaged.pt",
    )


def save_plots(run: Run) -> None:
    """Loss, learning rate (5.3) and attention plots; a failure is reported, never raised."""
    try:
        from .plots import save_training_plots

        save_training_plots(
            run.history,
            run.out_dir,
            run.model,
            run.data.tokenizer,
            run.data.corpus.test[0][0],
            run.assembly,
            run.device,
        )
    except Exception as error:  # noqa: BLE001 -- plots are a bonus: never lose a finished run over them
        run.say(f"(plots skipped: {type(error).__name__}: {error})")


def finish(run: Run, result: TrainResult, wall_start: float, train_seconds: float) -> None:
    """Main process: average the last checkpoints and translate the test set, greedy or with beam
    search (section 6.1); fill ``result``, write ``test_results.json`` and the plots."""
    config, data = run.config, run.data
    if config.average_last > 1:
        average_weights(run)
    evaluate(run)
    test_pairs = data.corpus.test[: config.test_sentences]
    hyps = translate_batch(
        run.model,
        data.tokenizer,
        [s for s, _ in test_pairs],
        run.assembly,
        run.device,
        beam_size=config.beam_size,
        length_penalty=config.length_penalty,
    )
    result.test = score(hyps, [t for _, t in test_pairs])
    result.examples = [(s, t, h) for (s, t), h in zip(test_pairs, hyps, strict=False)]
    result.seconds = time.perf_counter() - wall_start
    with open(run.out_dir / "test_results.json", "w") as handle:
        json.dump(
            {
                "step": run.step,
                **result.test,
                "seconds": result.seconds,
                "train_seconds": train_seconds + run.elapsed_before,
                "tokens_per_second": result.tokens_per_second,
                "world_size": run.world,
            },
            handle,
            indent=1,
        )
    save_plots(run)


# The whole run ---------------------------------------------------------------------------------
def train(
    config: TrainConfig,
    resume: bool = False,
    corpus: ParallelCorpus | None = None,
    progress: bool = True,
    log=print,
    parts: Assembly | None = None,
) -> TrainResult:
    """Train (or continue training) a Transformer; write checkpoints, plots and a log to ``out_dir``.

    ``parts``: what the model is built from (``Assembly``; default the reference, with
    ``config.attention``); the workbook hands in the learner's own parts here."""
    wall_start = time.perf_counter()
    out_dir = Path(config.out_dir)  # the folder asked for, even if the checkpoint's config names another
    checkpoint = load_checkpoint(out_dir) if resume else None
    if checkpoint is not None:  # the saved run's settings, on the device asked for now
        config = TrainConfig.from_dict({**checkpoint["config"], "device": config.device})
    processes = start_processes(config)
    say = log if processes.rank == 0 else _quiet
    data = prepare_data(config, corpus, checkpoint)
    say(describe_setup(data, processes))
    assembly = parts if parts is not None else reference_assembly(config.attention)
    run = build_model_and_optimiser(config, out_dir, processes, data, assembly, say)
    if checkpoint is not None:
        restore(run, checkpoint)
    if run.world > 1:
        run.net = torch.nn.parallel.DistributedDataParallel(run.model, broadcast_buffers=False)
    run.log_file = open_log(run, resume)

    train_seconds, tokens_per_second = train_loop(run, progress)
    if not checkpoint_due(config, run.step):
        save_checkpoint(run)  # the final state, unless it was just written
    if run.world > 1:
        log(f"[rank {run.rank}] step {run.step}, final weights sha256 {weights_digest(run.model)}")
        dist.barrier()

    result = TrainResult(out_dir=out_dir, step=run.step, tokens_per_second=tokens_per_second)
    if run.is_main:
        finish(run, result, wall_start, train_seconds)
    if run.log_file:
        run.log_file.close()
    if run.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result
