"""recurrent: train recurrent neural networks (RNN, LSTM, GRU) on your own
text and generate from them, from Python.

A Rust core (the ``recurrent`` library) with a small Pythonic API: every heavy
call releases the global interpreter lock, arrays come back as numpy arrays,
and errors arrive as :class:`RecurrentError` (or :class:`InvalidArgumentError`,
also a ``ValueError``) with the library's message.

>>> import recurrent
>>> run = recurrent.train(text="abcabc\\n" * 200, out="runs/abc", steps=50, seq_len=20, batch=4)
>>> model = recurrent.Model.load(run.path)
>>> model.generate("ab", max_tokens=10, seed=1)  # doctest: +SKIP
'cabcabc\\nab'
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from . import _recurrent
from ._errors import InvalidArgumentError, RecurrentError

__all__ = [
    "InvalidArgumentError",
    "Model",
    "Progress",
    "RecurrentError",
    "Run",
    "Score",
    "Translator",
    "train",
]

__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]


def _at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, else InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be at least {minimum}, got {value}")
    return value


def _optional_at_least(name: str, value: Any, minimum: int) -> Optional[int]:
    return None if value is None else _at_least(name, value, minimum)


def _seconds(value: Union[float, int, str, None]) -> Optional[float]:
    """A time budget: seconds, or text such as ``"90s"``, ``"10m"``, ``"1h30m"``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"(\d+(\.\d+)?[hms])+", value.strip()):
        units = {"h": 3600.0, "m": 60.0, "s": 1.0}
        seconds = sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)([hms])", value))
    else:
        raise InvalidArgumentError(
            f"time must be seconds or a duration such as '90s', '10m' or '1h30m', got {value!r}"
        )
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidArgumentError(f"time must be a positive duration, got {value!r}")
    return seconds


def _new_seed() -> int:
    """A seed for calls that give none (as the CLI takes one from the clock)."""
    return random.SystemRandom().getrandbits(64)


@dataclass(frozen=True)
class Progress:
    """One report from a training run to the ``progress`` callback.

    ``kind`` is ``"step"`` after every optimizer step (``loss``, ``lr``,
    ``grad_norm``, ``tokens``, ``progress``, ``elapsed`` are set), ``"eval"``
    after every validation (``val_loss``, ``accuracy``, ``improved``), or
    ``"warning"`` (``message``).
    """

    kind: str
    step: Optional[int] = None
    epoch: Optional[int] = None
    loss: Optional[float] = None
    lr: Optional[float] = None
    grad_norm: Optional[float] = None
    tokens: Optional[int] = None
    progress: Optional[float] = None
    """Fraction of the run done, when the stop rule makes it known."""
    elapsed: Optional[float] = None
    val_loss: Optional[float] = None
    accuracy: Optional[float] = None
    improved: Optional[bool] = None
    message: Optional[str] = None


@dataclass(frozen=True)
class Run:
    """A training run's folder and how the run ended."""

    path: str
    """The run folder: ``best/``, ``last/``, ``metrics.jsonl``, ``loss.svg``."""
    best: str
    """The checkpoint with the lowest validation loss."""
    last: str
    """The latest checkpoint, which ``recurrent train --resume`` continues."""
    steps: int
    epochs: int
    elapsed: float
    """Seconds trained."""
    best_val_loss: Optional[float]
    """The lowest validation loss (nats per token)."""
    val_loss: Optional[float]
    """The final validation loss (nats per token)."""
    stop_reason: str
    notes: List[str] = field(default_factory=list)

    def load(self, threads: Optional[int] = None) -> "Model":
        """The run's best model (its last one when it saved no best)."""
        return Model.load(self.path, threads=threads)


def train(
    input: Optional[PathLike] = None,
    *,
    text: Optional[str] = None,
    out: Optional[PathLike] = None,
    cell: str = "lstm",
    layers: Optional[int] = None,
    hidden: Optional[int] = None,
    embed: Optional[int] = None,
    dense: int = 0,
    dropout: Optional[float] = None,
    tie: bool = False,
    tokenizer: str = "char",
    vocab_size: Optional[int] = None,
    seq_len: int = 100,
    batch: Optional[int] = None,
    optimizer: str = "adam",
    lr: Optional[float] = None,
    clip: float = 5.0,
    schedule: str = "constant",
    steps: Optional[int] = None,
    epochs: Optional[int] = None,
    time: Union[float, str, None] = None,
    eval_every: Optional[int] = None,
    patience: Optional[int] = None,
    val: Optional[PathLike] = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    threads: Optional[int] = None,
    progress: Optional[Callable[[Progress], None]] = None,
    min_count: Optional[int] = None,
    last_hidden: int = 0,
    layer_norm: bool = False,
    forget_bias: Optional[float] = None,
    momentum: Optional[float] = None,
    weight_decay: Optional[float] = None,
    dropout_input: float = 0.0,
    dropout_hidden: float = 0.0,
    dropout_output: float = 0.0,
    dropout_embed: float = 0.0,
    weight_drop: float = 0.0,
    alpha: float = 0.0,
    beta: float = 0.0,
    variable_bptt: bool = False,
    nt_asgd: Optional[int] = None,
    reset_between_docs: bool = False,
    on_divergence: Optional[str] = None,
    init_from: Optional[PathLike] = None,
    extend_vocab: bool = False,
    resume: Optional[PathLike] = None,
    precision: Optional[str] = None,
) -> Run:
    """Trains a language model, as ``recurrent train`` does, and returns its run.

    The text is ``input`` (a file, or a folder of documents), or ``text`` (a
    string; the run keeps a copy so it can be resumed), or, with neither, the
    built-in corpus. As on the command line, the sizes left as ``None``
    (``layers``, ``hidden``, ``embed``, and with fitted widths ``batch`` and
    ``lr``) are fitted to the corpus and the time budget (docs/DEFAULTS.md;
    ``Run.notes`` says what was chosen and why); a checkpoint given as
    ``init_from`` keeps its own, and a given width keeps the fixed batch 50 and
    Adam rate 2e-3. Blocks are 100 steps long. Training stops at the first of ``steps``, ``epochs`` and ``time``
    (seconds, or ``"90s"``, ``"10m"``, ``"1h30m"``); with none, one minute on
    the built-in corpus, else 10 epochs. ``out`` is the run folder (default:
    ``runs/NAME``, never overwriting).

    The other options are the command line's flags of the same names:
    ``dropout`` (default 0, or the checkpoint's with ``init_from``), AWD-LSTM's
    ``dropout_input``, ``dropout_hidden``, ``dropout_output``,
    ``dropout_embed``, ``weight_drop``, ``alpha``, ``beta``,
    ``variable_bptt``, ``nt_asgd``; ``init_from`` (a checkpoint to fine-tune,
    ``extend_vocab`` to add the characters it lacks); ``on_divergence``
    (``"stop"`` or ``"rollback"``); ``precision`` (``"f32"``, the default, or
    ``"bf16"``: products on bf16 operands with float32 sums where the CPU has
    AMX-BF16 or AVX512-BF16, float32 with a note in ``Run.notes`` elsewhere;
    a resumed run keeps its own unless given). ``resume`` continues the run in that
    folder exactly where it stopped; then only ``input``, ``steps``,
    ``epochs``, ``time``, ``on_divergence``, ``threads``, ``precision`` and
    ``progress`` apply.

    ``progress`` is called with a :class:`Progress` after every step and
    validation. Ctrl-C (or an exception raised by ``progress``) stops the run
    cleanly: it is saved in ``last/`` and can be resumed with ``recurrent
    train --resume``; the exception (``KeyboardInterrupt``) is raised then.
    """
    callback = None
    if progress is not None:
        def callback(event: Dict[str, Any]) -> None:
            progress(Progress(**event))

    result = _recurrent.train(
        input=None if input is None else os.fspath(input),
        text=text,
        out=None if out is None else os.fspath(out),
        cell=cell,
        layers=_optional_at_least("layers", layers, 0),
        hidden=_optional_at_least("hidden", hidden, 0),
        embed=_optional_at_least("embed", embed, 0),
        dense=_at_least("dense", dense, 0),
        dropout=None if dropout is None else float(dropout),
        tie=bool(tie),
        tokenizer=tokenizer,
        vocab_size=_optional_at_least("vocab_size", vocab_size, 0),
        seq_len=_at_least("seq_len", seq_len, 0),
        batch=_optional_at_least("batch", batch, 0),
        optimizer=optimizer,
        lr=None if lr is None else float(lr),
        clip=float(clip),
        schedule=schedule,
        steps=_optional_at_least("steps", steps, 0),
        epochs=_optional_at_least("epochs", epochs, 0),
        time=_seconds(time),
        eval_every=_optional_at_least("eval_every", eval_every, 0),
        patience=_optional_at_least("patience", patience, 0),
        val=None if val is None else os.fspath(val),
        val_fraction=float(val_fraction),
        seed=_at_least("seed", seed, 0),
        threads=_optional_at_least("threads", threads, 0),
        progress=callback,
        min_count=_optional_at_least("min_count", min_count, 0),
        last_hidden=_at_least("last_hidden", last_hidden, 0),
        layer_norm=bool(layer_norm),
        forget_bias=None if forget_bias is None else float(forget_bias),
        momentum=None if momentum is None else float(momentum),
        weight_decay=None if weight_decay is None else float(weight_decay),
        regularization=[
            (name, float(value))
            for name, value in (
                ("dropout_input", dropout_input),
                ("dropout_hidden", dropout_hidden),
                ("dropout_output", dropout_output),
                ("dropout_embed", dropout_embed),
                ("weight_drop", weight_drop),
                ("alpha", alpha),
                ("beta", beta),
            )
        ],
        variable_bptt=bool(variable_bptt),
        nt_asgd=_optional_at_least("nt_asgd", nt_asgd, 0),
        reset_between_docs=bool(reset_between_docs),
        on_divergence=on_divergence,
        init_from=None if init_from is None else os.fspath(init_from),
        extend_vocab=bool(extend_vocab),
        resume=None if resume is None else os.fspath(resume),
        precision=precision,
    )
    result.pop("interrupted", None)
    return Run(**{k: (os.fspath(v) if k in ("path", "best", "last") else v) for k, v in result.items()})


@dataclass(frozen=True)
class Score:
    """How likely a model finds a text."""

    text: str
    tokens: List[int]
    """The text's token ids."""
    logprobs: Any
    """``numpy.ndarray`` of float64, one per token after the first: its
    log-probability (natural log) given the tokens before it."""
    perplexity: float
    """``exp(-mean(logprobs))``; ``nan`` for a text of one token."""

    @property
    def bits_per_token(self) -> float:
        """Mean surprisal in bits."""
        return math.log2(self.perplexity) if self.perplexity > 0 else math.nan


class Model:
    """A language model loaded from a checkpoint or a run folder (its best).

    Safe to share between threads: calls from several threads run at once,
    each with the interpreter lock released while it computes.
    """

    def __init__(self, native: "_recurrent.NativeModel") -> None:
        self._native = native
        self._config: Optional[Dict[str, Any]] = None

    @classmethod
    def load(cls, path: PathLike, threads: Optional[int] = None, weights: str = "f32") -> "Model":
        """Loads the checkpoint at ``path`` (a checkpoint folder, or a run
        folder: its ``best/``, else ``last/``) and packs it for generation.
        ``threads`` is the kernels' thread count per call (default: all
        cores); ``weights="bf16"`` halves the bytes read per token and rounds
        the weights."""
        threads = _optional_at_least("threads", threads, 0)
        return cls(_recurrent.NativeModel.load(os.fspath(path), threads, weights))

    @property
    def path(self) -> str:
        """The checkpoint folder the model was read from."""
        return os.fspath(self._native.path)

    @property
    def config(self) -> Dict[str, Any]:
        """The architecture (cell, layers, hidden, embed, ...), the tokenizer
        and the parameter count, as a dict."""
        if self._config is None:
            self._config = json.loads(self._native.config_json())
        return dict(self._config)

    @property
    def vocab(self) -> List[str]:
        """The vocabulary's tokens, in id order."""
        return self._native.vocab()

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary."""
        return self._native.vocab_size

    def encode(self, text: str) -> List[int]:
        """The token ids of ``text``."""
        return self._native.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids (a list, or a numpy array of integers)."""
        return self._native.decode([int(i) for i in ids])

    def generate(
        self,
        prompt: str = "",
        max_tokens: int = 200,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        stop: Union[str, Sequence[str], None] = None,
        seed: Optional[int] = None,
        n: int = 1,
    ) -> Union[str, List[str]]:
        """Continues ``prompt`` by up to ``max_tokens`` tokens and returns the
        continuation (without the prompt): a string, or a list of ``n``
        strings when ``n > 1`` (computed together as one batch).

        ``temperature`` 0 is greedy; ``top_k`` and ``top_p`` filter the
        distribution; generation ends before the first ``stop`` string. The
        same ``seed`` gives the same text as ``recurrent sample --seed``
        (default: a random seed).
        """
        texts = self._native.generate(*self._generation(prompt, max_tokens, temperature, top_k, top_p, stop, seed), _at_least("n", n, 1))
        return texts[0] if n == 1 else texts

    def stream(
        self,
        prompt: str = "",
        max_tokens: int = 200,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        stop: Union[str, Sequence[str], None] = None,
        seed: Optional[int] = None,
    ) -> Iterator[str]:
        """Like :meth:`generate` with ``n=1``, yielding the text piece by piece
        as it is generated; the pieces join to the text ``generate`` returns
        for the same seed. The model's streams engine runs them on a thread
        of its own (streams from several threads are stepped together as
        one batch); dropping the iterator ends the generation."""
        return self._native.stream(*self._generation(prompt, max_tokens, temperature, top_k, top_p, stop, seed))

    def score(self, texts: Union[str, Sequence[str]]) -> Union[Score, List[Score]]:
        """Each text's per-token log-probabilities and perplexity, read as one
        stream from a zero state: a :class:`Score` for a string, a list of
        them for a list of strings."""
        if isinstance(texts, str):
            return self._score(texts)
        return [self._score(t) for t in texts]

    def states(self, text: str) -> Dict[str, Any]:
        """Every layer's hidden states after each token of ``text`` (read from
        a zero state): ``{"h": array[T, layers, H]}``, and ``"c"`` (the cell
        states, same shape) for an LSTM; float32 numpy arrays."""
        states = self._native.states(text)
        states.pop("tokens", None)
        return states

    def state_dict(self) -> Dict[str, Any]:
        """The weights as float32 numpy arrays under PyTorch's names for
        ``word_language_model``'s ``RNNModel`` (``encoder.weight``,
        ``rnn.weight_ih_l0``, ..., ``decoder.bias``), so
        ``{k: torch.from_numpy(v) for k, v in ...}`` loads into it."""
        return self._native.state_dict()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Model({self.path!r}: {c['layers']}x{c['hidden']} {c['cell']}, "
            f"{c['tokenizer']} tokenizer, {c['vocab_size']} tokens)"
        )

    def _score(self, text: str) -> Score:
        tokens, logprobs = self._native.score(text)
        perplexity = math.exp(-float(logprobs.mean())) if len(logprobs) else math.nan
        return Score(text=text, tokens=tokens, logprobs=logprobs, perplexity=perplexity)

    @staticmethod
    def _generation(prompt, max_tokens, temperature, top_k, top_p, stop, seed) -> tuple:
        """The native generation arguments, checked."""
        if not isinstance(prompt, str):
            raise InvalidArgumentError(f"prompt must be a string, got {prompt!r}")
        stops = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        return (
            prompt,
            _at_least("max_tokens", max_tokens, 0),
            float(temperature),
            _optional_at_least("top_k", top_k, 0),
            None if top_p is None else float(top_p),
            stops,
            _new_seed() if seed is None else _at_least("seed", seed, 0),
        )


class Translator:
    """A sequence-to-sequence model (``recurrent seq2seq train``) loaded from
    a checkpoint or a run folder."""

    def __init__(self, native: "_recurrent.NativeTranslator") -> None:
        self._native = native

    @classmethod
    def load(cls, path: PathLike, threads: Optional[int] = None) -> "Translator":
        """Loads the seq2seq checkpoint at ``path`` (or a run folder's best)."""
        threads = _optional_at_least("threads", threads, 0)
        return cls(_recurrent.NativeTranslator.load(os.fspath(path), threads))

    @property
    def path(self) -> str:
        """The checkpoint folder the model was read from."""
        return os.fspath(self._native.path)

    def translate(
        self, sentences: Union[str, Sequence[str]], beam: int = 5, alpha: float = 0.6
    ) -> Union[str, List[str]]:
        """Translates a sentence (returns a string) or a list of sentences
        (returns a list) with beam search of width ``beam`` (1: greedy) and
        GNMT length normalization ``alpha``."""
        one = isinstance(sentences, str)
        batch = [sentences] if one else list(sentences)
        out = self._native.translate(batch, _at_least("beam", beam, 0), float(alpha))
        return out[0] if one else out

    def __repr__(self) -> str:
        return f"Translator({self.path!r})"
