"""Offline data: every source (Minari, D4RL HDF5, SB3 replay buffers, dicts) becomes one OfflineBuffer.

``make_buffer(source)`` is the entry point; the scalers are fitted on the resulting buffer.
"""

from qipo_agents.data.buffer import OfflineBuffer
from qipo_agents.data.d4rl_loader import load_d4rl_hdf5
from qipo_agents.data.minari_loader import load_minari
from qipo_agents.data.sb3_loader import from_dict, from_replay_buffer
from qipo_agents.data.scalers import ObservationNormalizer, RewardScaler
from qipo_agents.data.sources import make_buffer

__all__ = [
    "OfflineBuffer",
    "make_buffer",
    "load_minari",
    "load_d4rl_hdf5",
    "from_replay_buffer",
    "from_dict",
    "ObservationNormalizer",
    "RewardScaler",
]
