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
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .assemble import Assembly, assemble
from .batching import collate, make_batches
from .bpe import BOS_IDX, EOS_IDX, PAD_IDX, decode, encode, tokenizer_from_json, train_bpe
from .data import ParallelCorpus, load_corpus


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
    minutes: float | None = None  # stop early after this many minutes of training
    warmup_steps: int = 200  # section 5.3
    lr_factor: float = 1.0  # multiplies the schedule of equation 3
    eval_every: int = 400  # validation loss and BLEU every N steps (0: only at the end)
    eval_every_minutes: float | None = None  # or every so many minutes of training (for time-limited runs)
    eval_sentences: int = 200  # validation sentences decoded for BLEU at each evaluation
    test_sentences: int | None = None  # test sentences translated at the end (None: all)
    checkpoint_every: int = 100  # write a checkpoint every N steps (and always at the end)
    average_last: int = 5  # average the weights of the last k checkpoints (section 6.1); 1 = none
    beam_size: int = 1  # final test decoding: 1 = greedy, >1 = beam search (section 6.1)
    seed: int = 0
    use_learner: bool = False  # build the model from the learner's notebooks where they pass
    chapters_dir: str = "chapters"
    attention: str = "manual"  # "manual" (the contract's, with weights to plot) or "fused" (PyTorch SDPA)
    amp: bool = True  # mixed precision on CUDA
    threads: int | None = None  # CPU threads for torch (None: 1 when the machine is busy, else torch's default)
    out_dir: str = "runs/numbers"
    device: str = "auto"

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


PRESETS: dict[str, dict] = {
    # The default job: CPU-friendly, a few minutes, >= 95 % exact match on held-out numbers.
    "numbers": {},
    # Multi30k de->en, sized for a CPU run of about half an hour (use a GPU for more): measured on a
    # 2-core CPU, 30 minutes = ~2,500 steps, test2016 sacreBLEU 30.2 (benchmarks/bench_multi30k.py).
    # lr_factor 0.5 beat 0.7 (val loss 4.31 vs 4.80 after 10 minutes); 2,048-token batches give twice
    # the updates of 4,096 in the same time.
    "multi30k": dict(dataset="multi30k", vocab_size=8000, d_model=256, num_layers=3, num_heads=4, d_ff=512,
                     max_tokens=2048, steps=20_000, warmup_steps=300, lr_factor=0.5, eval_every=1000,
                     eval_sentences=300, checkpoint_every=200, average_last=5, beam_size=4,
                     out_dir="runs/multi30k"),
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


def model_kwargs(config: TrainConfig, max_len: int) -> dict:
    return dict(d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads,
                d_ff=config.d_ff, dropout=config.dropout, max_seq_length=max_len, pad_idx=PAD_IDX,
                share_embeddings=True)


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
def translate_batch(model, tokenizer, sentences: list[str], assembly: Assembly, device, beam_size: int = 1,
                    batch_size: int = 64) -> list[str]:
    """Translate sentences with the assembly's ``greedy_decode`` (or ``beam_search`` when
    ``beam_size > 1``); returns detokenized text."""
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(sentences), batch_size):
        chunk = [encode(tokenizer, s)[: MAX_TOKENS_PER_SENTENCE - 2] or [EOS_IDX]
                 for s in sentences[start:start + batch_size]]
        if beam_size > 1:
            for ids in chunk:
                src = torch.tensor([ids], device=device)
                max_len = min(MAX_TOKENS_PER_SENTENCE, int(1.5 * len(ids)) + 10)
                out = assembly.beam_search(model, src, max_len, BOS_IDX, EOS_IDX, beam_size=beam_size,
                                           pad_idx=PAD_IDX)
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
    exact = sum(h == r for h, r in zip(hypotheses, references)) / max(len(references), 1)
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


def train(config: TrainConfig, resume: bool = False, corpus: ParallelCorpus | None = None,
          progress: bool = True, log=print) -> TrainResult:
    """Train (or continue training) a Transformer; write checkpoints, plots and a log to ``out_dir``."""
    wall_start = time.perf_counter()
    out_dir = Path(config.out_dir)
    last_path = out_dir / "last.pt"
    checkpoint = None
    if resume:
        if not last_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {last_path}; start without --resume first.")
        checkpoint = torch.load(last_path, map_location="cpu", weights_only=False)
        config = TrainConfig.from_dict({**checkpoint["config"], "device": config.device})

    rank, world, device = setup_distributed(pick_device(config.device))
    is_main = rank == 0
    say = log if is_main else (lambda *a, **k: None)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny Adam statistics as subnormal floats slow CPUs badly
        torch.set_num_threads(cpu_threads(config.threads, world))

    # Data and the shared BPE vocabulary (section 5.1)
    if corpus is None:
        corpus = load_corpus(config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir,
                             seed=config.seed, num_train=config.num_train)
    if checkpoint is not None:
        tokenizer = tokenizer_from_json(checkpoint["tokenizer"])
    else:
        tokenizer = train_bpe((text for pair in corpus.train for text in pair), config.vocab_size)
    train_examples = [ex for ex in encode_pairs(tokenizer, corpus.train)
                      if max(len(ex[0]), len(ex[1])) <= MAX_TOKENS_PER_SENTENCE]
    valid_examples = encode_pairs(tokenizer, corpus.valid)
    say(f"{corpus}; shared BPE vocabulary of {tokenizer.get_vocab_size()} tokens; device {device}"
        + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else "")
        + (f" x {world} processes" if world > 1 else ""))

    # Model from the chosen parts, and the paper's optimiser, schedule and loss
    assembly = assemble(config.use_learner, config.chapters_dir, config.attention)
    if config.use_learner:
        say(assembly.table())
    vocab = tokenizer.get_vocab_size()
    model = assembly.model(vocab, vocab, **model_kwargs(config, MAX_TOKENS_PER_SENTENCE)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
    scheduler = assembly.TransformerLRScheduler(optimizer, config.d_model, config.warmup_steps, config.lr_factor)
    criterion = assembly.LabelSmoothingLoss(config.smoothing, ignore_index=PAD_IDX)
    autocast, scaler, precision = autocast_and_scaler(device, config.amp)
    say(f"Model: {sum(p.numel() for p in model.parameters()):,} parameters, {config.num_layers}+{config.num_layers} "
        f"layers, d_model={config.d_model}, precision {precision}")

    step, epoch, batch_index = 0, 0, 0
    history: dict[str, list] = {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": [], "val_bleu": []}
    elapsed_before = 0.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler is not None and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        step, epoch, batch_index = checkpoint["step"], checkpoint["epoch"], checkpoint["batch_index"]
        history, elapsed_before = checkpoint["history"], checkpoint.get("elapsed", 0.0)
        set_rng_state(checkpoint["rng"][rank] if isinstance(checkpoint["rng"], list) else checkpoint["rng"])
        say(f"Resuming from {last_path} at step {step} (epoch {epoch}, batch {batch_index}).")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)

    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "log.jsonl"
    if is_main:  # keep only the log lines up to the checkpoint we continue from
        old = log_path.read_text().splitlines() if (resume and log_path.exists()) else []
        kept = [line for line in old if json.loads(line).get("step", 0) <= step]
        log_path.write_text("".join(line + "\n" for line in kept))
    log_file = open(log_path, "a") if is_main else None

    lengths = [(len(s), len(t)) for s, t in train_examples]

    def epoch_batches(e: int) -> list[list[int]]:
        batches = make_batches(lengths, config.max_tokens, config.seed, e)
        usable = len(batches) // world * world  # every process gets the same number of steps
        return batches[rank:usable:world]

    def save_checkpoint() -> None:
        rngs = rng_state()
        if world > 1:  # every process has its own dropout stream; keep them all
            gathered: list = [None] * world
            dist.all_gather_object(gathered, rngs)
            rngs = gathered
        if not is_main:
            return
        state = {"config": asdict(config), "tokenizer": tokenizer.to_str(), "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict() if scaler is not None else None, "rng": rngs,
                 "step": step, "epoch": epoch, "batch_index": batch_index, "history": history,
                 "elapsed": elapsed_before + time.perf_counter() - train_start}
        atomic_save(model.state_dict(), out_dir / f"weights-{step:07d}.pt")  # for averaging (6.1)
        atomic_save(state, last_path)
        for old_file in sorted(out_dir.glob("weights-*.pt"))[: -max(config.average_last, 1)]:
            old_file.unlink(missing_ok=True)

    def evaluate() -> None:
        val_loss = validation_loss(model, criterion, valid_examples, config.max_tokens, device, autocast)
        subset = corpus.valid[: config.eval_sentences]
        hyps = translate_batch(model, tokenizer, [s for s, _ in subset], assembly, device)
        result = score(hyps, [t for _, t in subset])
        history["val_step"].append(step)
        history["val_loss"].append(val_loss)
        history["val_bleu"].append(result["bleu"])
        tqdm.write(f"step {step}: validation loss {val_loss:.3f}, BLEU {result['bleu']:.1f}, "
                   f"chrF {result['chrf']:.1f}, exact match {result['exact_match']:.0%}")
        minutes = (elapsed_before + time.perf_counter() - train_start) / 60
        if log_file:
            log_file.write(json.dumps({"step": step, "minutes": minutes, "val_loss": val_loss, **result}) + "\n")
            log_file.flush()

    train_start = time.perf_counter()
    deadline = None if config.minutes is None else train_start + 60 * config.minutes - elapsed_before
    next_eval_time = train_start + 60 * (config.eval_every_minutes or 0)
    bar = tqdm(total=config.steps, initial=step, desc="training", disable=not (progress and is_main),
               dynamic_ncols=True)
    tokens_done, tokens_clock = 0, time.perf_counter()
    batches = epoch_batches(epoch)
    model.train()
    while step < config.steps:
        if batch_index >= len(batches):
            epoch, batch_index = epoch + 1, 0
            batches = epoch_batches(epoch)
        batch_ids = batches[batch_index]
        batch = collate([train_examples[i] for i in batch_ids])
        src, tgt_in, tgt_out = (batch[k].to(device, non_blocking=True) for k in ("src", "tgt_in", "tgt_out"))
        lr = scheduler.step()  # the rate of this step, set before the optimizer uses it
        with autocast():
            logits = net(src, tgt_in)  # teacher forcing: predict every next target token
        loss = criterion(logits.float(), tgt_out)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        step, batch_index = step + 1, batch_index + 1

        loss_value = loss.item()
        tokens = int((tgt_out != PAD_IDX).sum()) * world
        tokens_done += tokens
        history["step"].append(step)
        history["loss"].append(loss_value)
        history["lr"].append(lr)
        if log_file:
            log_file.write(json.dumps({"step": step, "loss": loss_value, "lr": lr, "epoch": epoch,
                                       "batch": batch_index - 1, "examples": batch_ids[:4]}) + "\n")
            log_file.flush()
        rate = tokens_done / max(time.perf_counter() - tokens_clock, 1e-9)
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}", refresh=False)
        bar.update(1)

        out_of_time = deadline is not None and time.perf_counter() > deadline
        if world > 1 and deadline is not None:  # all processes must stop at the same step
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag)
            out_of_time = bool(flag.item())
        if out_of_time:
            say(f"\nTime limit of {config.minutes} minutes reached at step {step}.")
            break
        due = config.eval_every and step % config.eval_every == 0
        if config.eval_every_minutes and time.perf_counter() >= next_eval_time:
            due, next_eval_time = True, next_eval_time + 60 * config.eval_every_minutes
        if is_main and due and step < config.steps:
            evaluate()  # the other processes wait for it at the next gradient exchange
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            save_checkpoint()
    bar.close()
    train_seconds = time.perf_counter() - train_start
    tokens_per_second = tokens_done / max(time.perf_counter() - tokens_clock, 1e-9)
    if not (config.checkpoint_every and step % config.checkpoint_every == 0):
        save_checkpoint()  # the final state, unless it was just written

    if world > 1:
        say_all = log
        say_all(f"[rank {rank}] step {step}, final weights sha256 {weights_digest(model)}")
        dist.barrier()

    result = TrainResult(out_dir=out_dir, step=step, tokens_per_second=tokens_per_second)
    if is_main:
        if config.average_last > 1:
            paths = sorted(out_dir.glob("weights-*.pt"))[-config.average_last:]
            model.load_state_dict(average_checkpoints(paths))
            say(f"Averaged the weights of the last {len(paths)} checkpoints (section 6.1).")
            atomic_save({**torch.load(last_path, map_location="cpu", weights_only=False),
                         "model": model.state_dict()}, out_dir / "averaged.pt")
        evaluate()
        test_pairs = corpus.test[: config.test_sentences]
        hyps = translate_batch(model, tokenizer, [s for s, _ in test_pairs], assembly, device,
                               beam_size=config.beam_size)
        result.test = score(hyps, [t for _, t in test_pairs])
        result.examples = [(s, t, h) for (s, t), h in zip(test_pairs, hyps)]
        result.seconds = time.perf_counter() - wall_start
        with open(out_dir / "test_results.json", "w") as handle:
            json.dump({"step": step, **result.test, "seconds": result.seconds,
                       "train_seconds": train_seconds + elapsed_before,
                       "tokens_per_second": tokens_per_second, "world_size": world}, handle, indent=1)
        try:
            from .plots import save_training_plots

            save_training_plots(history, out_dir, model, tokenizer, corpus.test[0][0], assembly, device)
        except Exception as error:  # plots are a bonus: never lose a finished run over them
            say(f"(plots skipped: {type(error).__name__}: {error})")
    if log_file:
        log_file.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result
