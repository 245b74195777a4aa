"""Where the peers' own specifications live: `../shared/specs/` beside the repository.

That is the project's documented layout for developers and CI; a missing directory is an error, never
a silent skip, because the fidelity tests would then prove nothing.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO.parent / "shared" / "specs"


def spec_dir(name: str) -> Path:
    path = SPECS / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is missing: the peers' specs must sit in ../shared/specs/ beside the repository"
        )
    return path
