"""The stored form of a trained model, and how it is signed, verified and loaded.

A model artifact is an uncompressed tar of one directory:

    manifest.json      what the model is: task, target, features, classes, estimator, plan
    preprocessor.pkl   the fitted preprocessing pipeline (scikit-learn)
    estimator.json     the estimator's own metadata, then its model in the library's native format
    model.json | model.txt | model.pt + mlp.json | model.pkl

The tar's SHA-256 detects corruption; an HMAC-SHA256 over it with the platform's signing key
proves MicroLearn wrote it. Both are checked before anything in it is unpickled
(`verify_file`), since a pickle runs code when loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_VERSION", "ArtifactVerificationError", "TrainedModel", "pack", "sign_file", "unpack",
           "verify_file"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREPROCESSOR = "preprocessor.pkl"
_CHUNK = 1 << 20


class ArtifactVerificationError(Exception):
    """The bytes are not the model that was stored (corrupt, truncated or not signed by this platform)."""


def pack(directory: Path, tar_path: Path) -> None:
    """Write the files of `directory` (flat) into an uncompressed tar, in name order with fixed
    metadata, so the same model files always give the same bytes."""
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.iterdir()):
            if not path.is_file():
                raise ValueError(f"model directories are flat; {path.name} is not a file")
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)


def unpack(tar_path: Path, directory: Path) -> list[str]:
    """Extract a verified artifact into an existing directory; only plain files with plain names."""
    names = []
    with tarfile.open(tar_path, "r:") as tar:
        for member in tar.getmembers():
            name = member.name
            if not member.isfile() or "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ArtifactVerificationError(f"unexpected entry {name!r} in a model artifact")
            source = tar.extractfile(member)
            assert source is not None
            with source, (directory / name).open("wb") as out:
                while block := source.read(_CHUNK):
                    out.write(block)
            names.append(name)
    return names


def sign_file(path: Path, key: bytes) -> tuple[str, str]:
    """(hex SHA-256, hex HMAC-SHA256 with `key`) of a file."""
    digest = hashlib.sha256()
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            mac.update(block)
    return digest.hexdigest(), mac.hexdigest()


def verify_file(path: Path, key: bytes | None, sha256: str, signature: str | None) -> None:
    """Raise ArtifactVerificationError unless the file has this SHA-256 and (when a key is given)
    this HMAC. Comparisons are constant-time."""
    actual_sha, actual_mac = sign_file(path, key or b"")
    if not hmac.compare_digest(actual_sha, sha256):
        raise ArtifactVerificationError(f"SHA-256 mismatch: expected {sha256}, got {actual_sha}")
    if key is not None and not hmac.compare_digest(actual_mac, signature or ""):
        raise ArtifactVerificationError("HMAC signature mismatch: the artifact was not written by this platform "
                                        "(or the signing key changed)")


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, **manifest}, indent=1))


def write_preprocessor(directory: Path, preprocessor: Any) -> None:
    with (directory / PREPROCESSOR).open("wb") as handle:
        pickle.dump(preprocessor, handle, protocol=5)


class ManifestView:
    """What a loaded model says about itself, read from its manifest."""

    manifest: dict[str, Any]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def class_labels(self) -> list[str]:
        return list(self.manifest.get("class_labels") or [])

    @property
    def feature_names(self) -> list[str]:
        return [column["name"] for column in self.manifest.get("feature_schema") or []]


@dataclass
class TrainedModel(ManifestView):
    """A loaded model: raw table in, predictions out (labels decoded to the training values)."""

    manifest: dict[str, Any]
    preprocessor: Any
    estimator: Any

    @classmethod
    def load_dir(cls, directory: Path) -> TrainedModel:
        """Load an unpacked (and already verified) artifact directory."""
        from microlearn_grpc.core.estimators import load_estimator

        manifest = json.loads((directory / MANIFEST).read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ArtifactVerificationError(f"model format version {manifest.get('format_version')} is not "
                                            f"supported by this MicroLearn (it reads {FORMAT_VERSION})")
        if manifest.get("format") == ENSEMBLE:
            return _load_ensemble(directory, manifest)
        with (directory / PREPROCESSOR).open("rb") as handle:
            preprocessor = pickle.load(handle)  # noqa: S301 - verified by SHA-256 + HMAC before this point
        return cls(manifest=manifest, preprocessor=preprocessor, estimator=load_estimator(directory))

    @classmethod
    def load(cls, tar_path: Path, work_dir: Path, *, key: bytes | None, sha256: str,
             signature: str | None) -> TrainedModel:
        """Verify a packed artifact, unpack it under `work_dir` and load it."""
        import tempfile

        verify_file(tar_path, key, sha256, signature)
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            unpack(tar_path, Path(tmp))
            return cls.load_dir(Path(tmp))

    def transform(self, frame: Any) -> Any:
        return self.preprocessor.transform(frame)

    def predict(self, frame: Any) -> Any:
        """Predicted values: class labels (as the training values), numbers, or cluster ids."""
        import numpy as np

        raw = self.estimator.predict(self.transform(frame))
        values = self.manifest.get("class_values")
        if values is not None:
            return np.asarray(values, dtype=object)[np.asarray(raw, dtype=np.int64)]
        return raw

    def predict_proba(self, frame: Any) -> Any:
        """Class probabilities, columns in the order of `class_labels`."""
        return self.estimator.predict_proba(self.transform(frame))


# -- ensembles -------------------------------------------------------------------------------------------
# An ensemble artifact holds its members' own (signed) artifacts as `member-{id}.tar` next to its
# manifest (artifacts are flat), their SHA-256 and weights in the manifest; the ensemble's tar is signed
# as a whole, so verifying it covers the members.

ENSEMBLE = "ensemble"


def write_ensemble(directory: Path, manifest: dict[str, Any], members: list[tuple[str, Path, str, float]]) -> None:
    """Lay out an ensemble: `members` are (model id, packed artifact, its SHA-256, weight)."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for model_id, tar, sha256, weight in members:
        name = f"member-{model_id}.tar"
        shutil.copyfile(tar, directory / name)
        entries.append({"model": model_id, "file": name, "sha256": sha256, "weight": weight})
    write_manifest(directory, {**manifest, "format": ENSEMBLE, "members": entries})


def _load_ensemble(directory: Path, manifest: dict[str, Any]) -> Any:
    from microlearn_grpc.core.ensemble import EnsembleModel

    members, weights = [], []
    for entry in manifest["members"]:
        tar = directory / Path(entry["file"]).name
        verify_file(tar, None, entry["sha256"], None)
        unpacked = directory / f"unpacked-{entry['model']}"  # inside the caller's scratch directory
        unpacked.mkdir()
        unpack(tar, unpacked)
        members.append(TrainedModel.load_dir(unpacked))
        weights.append(float(entry["weight"]))
    if members and "class_values" not in manifest:
        manifest = {**manifest, "class_values": members[0].manifest.get("class_values")}
    return EnsembleModel(manifest, members, weights)
