"""The feature step: encode one split of the scene database into one HDF5 feature file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vscn.data.encoders import build_image_encoder, build_text_encoder
from vscn.data.features import pack_split
from vscn.data.scenes import REGIONS_FILE, SCENES_FILE, load_scenes
from vscn.io import sha256_file


@dataclass(frozen=True)
class EncoderChoice:
    """An encoder by registry name; string ``args`` may name ``{data_root}`` and ``{split}``."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def resolved_args(self, data_root: Path, split: str) -> dict[str, Any]:
        return {
            key: value.format(data_root=data_root, split=split) if isinstance(value, str) else value
            for key, value in self.args.items()
        }


@dataclass(frozen=True)
class FeatureSettings:
    image_encoder: EncoderChoice
    text_encoder: EncoderChoice
    num_regions: int = 36
    float16: bool = False
    batch_size: int = 32

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureSettings:
        return cls(**{
            **values,
            "image_encoder": EncoderChoice(**values["image_encoder"]),
            "text_encoder": EncoderChoice(**values["text_encoder"]),
        })


def encode_split(db_dir: Path, split: str, data_root: Path, settings: FeatureSettings, out_path: Path) -> Path:
    """Encode the scenes of ``split`` with the chosen encoders and pack them at ``out_path``.

    The scene tables' digests are recorded in the file, so a feature file names what it was made from.
    """
    db_dir, data_root = Path(db_dir), Path(data_root)
    image_encoder = build_image_encoder(
        settings.image_encoder.name, **settings.image_encoder.resolved_args(data_root, split)
    )
    text_encoder = build_text_encoder(settings.text_encoder.name, **settings.text_encoder.resolved_args(data_root, split))
    return pack_split(
        load_scenes(db_dir, split),
        image_encoder,
        text_encoder,
        out_path,
        settings.num_regions,
        float16=settings.float16,
        batch_size=settings.batch_size,
        source_checksums={name: sha256_file(db_dir / name) for name in (SCENES_FILE, REGIONS_FILE)},
    )
