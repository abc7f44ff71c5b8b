"""FSDP for the trainer: PyTorch's FSDP2 (``fully_shard``) and its distributed checkpoints.

``accelerate launch`` with an FSDP config sets ``ACCELERATE_USE_FSDP`` and the ``FSDP_*`` options; accelerate
itself applies FSDP on accelerators only (on a CPU process group it silently trains DDP copies), while
``fully_shard`` and ``torch.distributed.checkpoint`` also run on CPU over gloo. So the trainer reads the
launcher's options here, hides the switch from accelerate and shards the model itself, on a CPU or a GPU
alike: what the tests run on CPU is what runs on GPUs.

Checkpoints: ``SHARDED_STATE_DICT`` writes each process's shards of the trained weights and AdamW's state
with ``torch.distributed.checkpoint`` (``fsdp_state/``); ``FULL_STATE_DICT`` gathers them into one file on
the main process (``fsdp_full_state.pt``). Only trained weights are written, as without FSDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError

SHARDED_DIR = "fsdp_state"  # torch.distributed.checkpoint: a .metadata file and one .distcp file per process
FULL_FILE = "fsdp_full_state.pt"  # gathered on the main process
STATE_DICT_TYPES = ("SHARDED_STATE_DICT", "FULL_STATE_DICT")


@dataclass(frozen=True)
class FSDPOptions:
    state_dict_type: str = "SHARDED_STATE_DICT"
    reshard_after_forward: bool = True
    offload_params: bool = False

    @property
    def sharded(self) -> bool:
        return self.state_dict_type == "SHARDED_STATE_DICT"


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes")


def take_fsdp_request() -> FSDPOptions | None:
    """The launcher's FSDP options (None without FSDP). Clears ``ACCELERATE_USE_FSDP`` so that accelerate
    sets up a plain process group and leaves the sharding to :func:`shard_model`."""
    if not _flag("ACCELERATE_USE_FSDP", "false"):
        return None
    version = os.environ.get("FSDP_VERSION", "1").strip()
    if version != "2":
        raise InputError(f"FSDP version {version} was asked for; the trainer runs FSDP2 only: set fsdp_version: 2 "
                         "in the accelerate config (see configs/accelerate/fsdp.yaml)")
    kind = os.environ.get("FSDP_STATE_DICT_TYPE", "SHARDED_STATE_DICT").strip().upper()
    if kind not in STATE_DICT_TYPES:
        raise InputError(f"fsdp_state_dict_type {kind!r} is not supported; use one of {', '.join(STATE_DICT_TYPES)}")
    options = FSDPOptions(kind, _flag("FSDP_RESHARD_AFTER_FORWARD", "true"), _flag("FSDP_OFFLOAD_PARAMS", "false"))
    if options.offload_params and not torch.cuda.is_available():
        raise InputError("fsdp_offload_params: true offloads parameters from a GPU to the CPU, but torch finds no "
                         "CUDA GPU here; set it to false")
    os.environ["ACCELERATE_USE_FSDP"] = "false"
    return options


def _shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules that become FSDP units below the root: the decoder layers of the language model (its
    ``_no_split_modules``) and the abstractor, if the model has one. The root takes what is left but the frame
    encoder, a video LLM's vision tower included: that runs only for conversations with videos, and a unit every
    process must gather in step cannot be one that some processes skip."""
    llm = model.language_model()
    layer_names = set(getattr(llm, "_no_split_modules", None) or [])
    layers = [m for m in llm.get_decoder().modules() if type(m).__name__ in layer_names]
    if not layers:
        raise InputError(f"FSDP: the LLM ({type(llm).__name__}) names no decoder layer class (_no_split_modules) "
                         "to shard by")
    return [*layers, *([model.abstractor] if hasattr(model, "abstractor") else [])]


def shard_model(model: nn.Module, options: FSDPOptions, device: torch.device, *, bf16: bool = False) -> nn.Module:
    """Shard ``model`` in place over the default process group; every process then holds 1/world of each
    weight. The weights are first broadcast from process 0 (as DDP does), so a randomly initialised start
    is the same model on every process. With ``bf16`` the weights are gathered and computed in bfloat16 and
    the gradients reduced in float32 (the stored shards and AdamW stay float32). The frozen frame encoder stays whole on every process: it runs
    outside the model's forward (features for the batch or the cache) and trains nothing."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    common = {"mesh": mesh, "reshard_after_forward": options.reshard_after_forward,
              "offload_policy": CPUOffloadPolicy() if options.offload_params else OffloadPolicy()}
    if bf16:
        common["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for unit in _shard_units(model):
        fully_shard(unit, **common)
    encoder = model.encoder.parameters() if isinstance(model.encoder, nn.Module) else ()  # a video LLM has none
    fully_shard(model, ignored_params=set(encoder), **common)
    return model


def _state_options(*, full: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Frozen weights are the start model's and are never written; loading is therefore non-strict.
    return StateDictOptions(full_state_dict=full, cpu_offload=full, ignore_frozen_params=True, strict=False)


def save_state(model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path, options: FSDPOptions,
               *, is_main: bool) -> None:
    """Write the trained weights and the optimizer's state into ``directory`` (every process calls this)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, optim = get_state_dict(model, optimizer, options=_state_options(full=not options.sharded))
    if options.sharded:
        dcp.save({"model": weights, "optimizer": optim}, checkpoint_id=str(directory / SHARDED_DIR))
    elif is_main:
        torch.save({"model": weights, "optimizer": optim}, directory / FULL_FILE)


def saved_weight_names(directory: Path, options: FSDPOptions) -> set[str]:
    """The names of the trained weights a checkpoint holds (read from its metadata or its file)."""
    if options.sharded:
        from torch.distributed.checkpoint import FileSystemReader

        keys = FileSystemReader(str(directory / SHARDED_DIR)).read_metadata().state_dict_metadata
        return {k[len("model."):] for k in keys if k.startswith("model.")}
    return set(torch.load(directory / FULL_FILE, map_location="cpu", weights_only=True)["model"])


def load_state(model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path, options: FSDPOptions) -> None:
    """Load what :func:`save_state` wrote into the sharded model and its optimizer (every process calls this)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    full = not options.sharded
    if options.sharded:
        weights, optim = get_state_dict(model, optimizer, options=_state_options(full=False))
        state = {"model": weights, "optimizer": optim}
        dcp.load(state, checkpoint_id=str(directory / SHARDED_DIR))  # in place, each process its own shards
    else:
        # Every process reads the gathered file (the checkpoint folder is shared) and keeps its own shards.
        state = torch.load(directory / FULL_FILE, map_location="cpu", weights_only=True)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=_state_options(full=full))


def gather_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of the sharded model, whole, on the main process's CPU (an empty dict elsewhere); every
    process calls this."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> float:
    """Clip the sharded gradients by their global norm; returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    full = getattr(norm, "full_tensor", None)  # a DTensor over the shards
    return float(full() if full is not None else norm)
