"""Type stubs of the `recurrent` package."""

import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, os.PathLike[str]]

class RecurrentError(RuntimeError):
    """Something failed in recurrent; the message is the library's."""

class InvalidArgumentError(RecurrentError, ValueError):
    """An argument, or the text given, is not acceptable."""

class Progress:
    """One report from a training run to the ``progress`` callback."""

    kind: str
    step: Optional[int]
    epoch: Optional[int]
    loss: Optional[float]
    lr: Optional[float]
    grad_norm: Optional[float]
    tokens: Optional[int]
    progress: Optional[float]
    elapsed: Optional[float]
    val_loss: Optional[float]
    accuracy: Optional[float]
    improved: Optional[bool]
    message: Optional[str]

class Run:
    """A training run's folder and how the run ended."""

    path: str
    best: str
    last: str
    steps: int
    epochs: int
    elapsed: float
    best_val_loss: Optional[float]
    val_loss: Optional[float]
    stop_reason: str
    notes: List[str]
    def load(self, threads: Optional[int] = None) -> Model:
        """The run's best model."""

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
    """Trains a language model, as ``recurrent train`` does, and returns its run."""

class Score:
    """How likely a model finds a text."""

    text: str
    tokens: List[int]
    logprobs: npt.NDArray[np.float64]
    perplexity: float
    @property
    def bits_per_token(self) -> float: ...

class Model:
    """A language model loaded from a checkpoint or a run folder."""

    @classmethod
    def load(cls, path: PathLike, threads: Optional[int] = None, weights: str = "f32") -> Model:
        """Loads a checkpoint (or a run folder's best) and packs it for generation."""
    @property
    def path(self) -> str: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def vocab(self) -> List[str]: ...
    @property
    def vocab_size(self) -> int: ...
    def encode(self, text: str) -> List[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
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
        """The continuation of ``prompt``: a string, or ``n > 1`` strings."""
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
        """The continuation of ``prompt``, piece by piece as it is generated."""
    @overload
    def score(self, texts: str) -> Score: ...
    @overload
    def score(self, texts: Sequence[str]) -> List[Score]: ...
    def states(self, text: str) -> Dict[str, npt.NDArray[np.float32]]:
        """``{"h": [T, layers, H]}`` (and ``"c"`` for an LSTM)."""
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]:
        """The weights under PyTorch ``RNNModel``'s names."""

class Translator:
    """A sequence-to-sequence model loaded from a checkpoint or a run folder."""

    @classmethod
    def load(cls, path: PathLike, threads: Optional[int] = None) -> Translator: ...
    @property
    def path(self) -> str: ...
    @overload
    def translate(self, sentences: str, beam: int = 5, alpha: float = 0.6) -> str: ...
    @overload
    def translate(self, sentences: Sequence[str], beam: int = 5, alpha: float = 0.6) -> List[str]: ...
