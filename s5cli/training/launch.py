"""torchrun's environment, read and checked once: this process's rank, local rank and the world size.

`torchrun` sets RANK, LOCAL_RANK and WORLD_SIZE with MASTER_ADDR and MASTER_PORT for the env://
rendezvous. Values that cannot be right are refused at start, each with the variable it is about:
a half-set environment, a number that is not one, or a rank outside the world (RANK=5 with
WORLD_SIZE=2 would wait for ever for peers that never come).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from s5cli.errors import ConfigError

RANK_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
RENDEZVOUS_VARS = ("MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Launch:
    """Where torchrun put this process."""

    rank: int
    local_rank: int
    world_size: int


def _whole(name: str) -> int:
    text = os.environ[name].strip()
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={os.environ[name]!r} from the environment is not a whole number") from None


def torchrun_env() -> Launch | None:
    """The launch torchrun describes, or None without its variables; impossible values are a ConfigError."""
    present = [v for v in RANK_VARS if v in os.environ]
    if not present:
        return None
    missing = [v for v in (*RANK_VARS, *RENDEZVOUS_VARS) if not os.environ.get(v, "").strip()]
    if missing:
        raise ConfigError(
            f"{', '.join(present)} set but {', '.join(missing)} not: launch with torchrun, or unset {present[0]}"
        )
    rank, local_rank, world_size = (_whole(v) for v in RANK_VARS)
    if world_size < 1:
        raise ConfigError(f"WORLD_SIZE={world_size} from the environment: need at least 1 process")
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} from the environment is outside 0..{world_size - 1} (WORLD_SIZE={world_size})")
    if not 0 <= local_rank < world_size:
        raise ConfigError(f"LOCAL_RANK={local_rank} from the environment is outside 0..{world_size - 1}")
    port = _whole("MASTER_PORT")
    if not 0 < port < 65536:
        raise ConfigError(f"MASTER_PORT={port} from the environment is not a TCP port (1..65535)")
    return Launch(rank, local_rank, world_size)
