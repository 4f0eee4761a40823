"""Build the embedded dataset ``hopper-medium-mini`` (the zoo's offline default task).

It is a fixed-seed random subset of whole episodes of the local D4RL-recipe dataset
``local/hopper/medium-v0`` (built by ``scripts/make_local_datasets.py``), written as a Minari
dataset folder inside the package so ``qipo-zoo train hopper-medium-mini`` needs no download::

    MINARI_DATASETS_PATH=~/qipo-datasets python scripts/make_mini_dataset.py

The folder's ``metadata.json`` records the provenance (source id, selected episode indices,
seed, this script) and the subset's return statistics, which ``qipo-zoo list`` shows.
Reference scores are D4RL's Hopper ones, as in the source dataset.

To fit more episodes in the package's 10 MB, the arrays are stored as float32 (the agents train
in float32 anyway) and each one contiguously: Minari writes every array of every episode in
chunks, which adds about 10 kB per episode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "qipo_agents" / "zoo" / "datasets" / "hopper-medium-mini"
MINI_ID = "qipo/hopper/medium-mini-v0"
HOPPER_REFERENCE = (-20.272305, 3234.3)  # D4RL's random / expert returns for Hopper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-id", default="local/hopper/medium-v0", help="Minari id of the source dataset")
    parser.add_argument("--n-episodes", type=int, default=232, help="whole episodes to keep")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode selection")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Minari dataset folder to write")
    args = parser.parse_args()

    import minari
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    source = minari.load_dataset(args.source_id)
    n_source = source.total_episodes
    # The source's last episode was cut by its collection budget, not by the env: leave it out.
    candidates = np.arange(n_source - 1)
    rng = np.random.default_rng(args.seed)
    selected = np.sort(rng.choice(candidates, size=args.n_episodes, replace=False))

    buffers, returns, lengths = [], [], []
    for new_id, episode in enumerate(source.iterate_episodes(episode_indices=selected.tolist())):
        buffers.append(
            EpisodeBuffer(
                id=new_id,
                observations=np.asarray(episode.observations, dtype=np.float32),
                actions=np.asarray(episode.actions, dtype=np.float32),
                rewards=np.asarray(episode.rewards, dtype=np.float32),
                terminations=np.asarray(episode.terminations),
                truncations=np.asarray(episode.truncations),
            )
        )
        returns.append(float(np.sum(episode.rewards)))
        lengths.append(len(episode.rewards))
    returns_arr = np.asarray(returns)
    ref_min, ref_max = HOPPER_REFERENCE
    normalized = 100.0 * (returns_arr - ref_min) / (ref_max - ref_min)
    stats = {
        "mean_return": round(float(returns_arr.mean()), 2),
        "std_return": round(float(returns_arr.std()), 2),
        "normalized_score": round(float(normalized.mean()), 2),
        "normalized_score_std": round(float(normalized.std()), 2),
    }
    provenance = {
        "source_dataset_id": args.source_id,
        "source_total_episodes": int(n_source),
        "selected_episode_indices": selected.tolist(),
        "selection": "uniform without replacement over all but the source's last (budget-truncated) episode",
        "seed": args.seed,
        "script": "scripts/make_mini_dataset.py",
        "command": f"python scripts/make_mini_dataset.py --source-id {args.source_id} "
        f"--n-episodes {args.n_episodes} --seed {args.seed}",
    }

    with tempfile.TemporaryDirectory() as store:
        previous = os.environ.get("MINARI_DATASETS_PATH")
        os.environ["MINARI_DATASETS_PATH"] = store
        try:
            dataset = minari.create_dataset_from_buffers(
                MINI_ID,
                buffers,
                env="Hopper-v5",
                eval_env="Hopper-v5",
                observation_space=spaces.Box(-np.inf, np.inf, shape=source.observation_space.shape, dtype=np.float32),
                action_space=source.action_space,
                algorithm_name="SB3-SAC stochastic rollout (subset of local/hopper/medium-v0)",
                author="qipo_agents maintainers",
                author_email="none@example.com",
                code_permalink="scripts/make_mini_dataset.py",
                description=(
                    f"{args.n_episodes} whole episodes of {args.source_id} chosen with seed {args.seed}; "
                    "a D4RL-recipe Hopper-v5 dataset collected locally, not D4RL's hopper-medium."
                ),
                ref_min_score=ref_min,
                ref_max_score=ref_max,
            )
            data_dir = Path(store) / MINI_ID / "data"
            store_contiguously(data_dir / "main_data.hdf5")
            dataset.storage.update_metadata(
                {**stats, "provenance": provenance, "dataset_size": float(dataset.storage.get_size())}
            )
            if args.out.exists():
                shutil.rmtree(args.out)
            args.out.mkdir(parents=True)
            shutil.copytree(data_dir, args.out / "data")
        finally:
            if previous is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = previous

    size_mb = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2**20
    print(
        f"wrote {args.out}: {len(buffers)} episodes, {int(np.sum(lengths))} transitions, {size_mb:.1f} MiB; "
        f"return {stats['mean_return']:.1f} ± {stats['std_return']:.1f}, "
        f"D4RL-normalised {stats['normalized_score']:.1f} ± {stats['normalized_score_std']:.1f}"
    )


def store_contiguously(path: Path) -> None:
    """Rewrite the HDF5 file at ``path`` with every array unchunked; groups and attributes are kept."""
    rewritten = path.with_suffix(".contiguous.hdf5")
    with h5py.File(path, "r") as source, h5py.File(rewritten, "w") as target:
        target.attrs.update(source.attrs)

        def copy(name: str, item: h5py.Group | h5py.Dataset) -> None:
            if isinstance(item, h5py.Group):
                target.create_group(name).attrs.update(item.attrs)
            else:
                target.create_dataset(name, data=item[()]).attrs.update(item.attrs)

        source.visititems(copy)
    rewritten.replace(path)


if __name__ == "__main__":
    main()
