"""The committed generated code matches the protos, and the protos pass `buf lint`."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from tests.conftest import buf_binary

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "clients" / "microlearn" / "v1"
GENERATED_PACKAGES = ("v1", "inference")  # microlearn.v1 and the Open Inference Protocol's microlearn.inference


def test_generated_code_is_fresh(tmp_path):
    template = (ROOT / "buf.gen.yaml").read_text().replace('".venv/bin/python"', f'"{sys.executable}"')
    (tmp_path / "buf.gen.yaml").write_text(template)
    out = tmp_path / "out"
    subprocess.run([buf_binary(), "generate", "--template", str(tmp_path / "buf.gen.yaml"), "-o", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    for package in GENERATED_PACKAGES:
        fresh, committed_dir = out / "clients" / "microlearn" / package, ROOT / "clients" / "microlearn" / package
        generated = sorted(p.name for p in fresh.iterdir())
        committed = sorted(p.name for p in committed_dir.iterdir() if p.name != "__init__.py" and p.is_file())
        assert generated == committed, f"{package}: generated file set differs: run `./dev gen` (buf generate) and commit"
        stale = [name for name in generated if not filecmp.cmp(fresh / name, committed_dir / name, shallow=False)]
        assert not stale, f"stale generated code: {stale}; run `./dev gen` and commit the result"
    produced = {p.name for p in (out / "clients" / "microlearn").iterdir()}
    assert produced == set(GENERATED_PACKAGES), f"generated packages {sorted(produced)}: list them here"


def test_buf_lint_is_clean():
    result = subprocess.run([buf_binary(), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rpc_and_field_is_documented():
    """Proto comments are the user documentation (grpcurl describe); none may be missing."""
    from google.protobuf import descriptor_pb2

    result = subprocess.run([buf_binary(), "build", "-o", "-#format=binpb", "--path", "protos/microlearn"], cwd=ROOT,
                            capture_output=True, check=True)
    images = descriptor_pb2.FileDescriptorSet.FromString(result.stdout)
    missing = []
    for file in images.file:
        if not file.name.startswith("microlearn/"):
            continue
        documented = {tuple(loc.path) for loc in file.source_code_info.location if loc.leading_comments.strip()}
        for i, message in enumerate(file.message_type):
            _check_message(message, (4, i), documented, missing, file.name)
        for i, enum in enumerate(file.enum_type):
            _check_enum(enum, (5, i), documented, missing, file.name)
        for i, service in enumerate(file.service):
            if (6, i) not in documented:
                missing.append(f"{file.name}: service {service.name}")
            for j, method in enumerate(service.method):
                if (6, i, 2, j) not in documented:
                    missing.append(f"{file.name}: rpc {service.name}.{method.name}")
    assert not missing, "undocumented:\n" + "\n".join(missing)


def _check_message(message, path, documented, missing, filename):
    if path not in documented:
        missing.append(f"{filename}: message {message.name}")
    for k, field in enumerate(message.field):
        if (*path, 2, k) not in documented:
            missing.append(f"{filename}: field {message.name}.{field.name}")
    for k, nested in enumerate(message.nested_type):
        if not nested.options.map_entry:
            _check_message(nested, (*path, 3, k), documented, missing, filename)
    for k, enum in enumerate(message.enum_type):
        _check_enum(enum, (*path, 4, k), documented, missing, filename)


def _check_enum(enum, path, documented, missing, filename):
    if path not in documented:
        missing.append(f"{filename}: enum {enum.name}")
    for k, value in enumerate(enum.value):
        if (*path, 2, k) not in documented:
            missing.append(f"{filename}: enum value {value.name}")
