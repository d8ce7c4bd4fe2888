"""A protoc plugin that runs one of grpcio-tools' built-in generators (python, pyi, grpc_python).

`buf generate` calls it (see buf.gen.yaml) so code generation uses the protoc bundled with the
pinned grpcio-tools: no system protoc, no network, byte-identical output on every machine.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    generator = sys.argv[1]  # python | pyi | grpc_python
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = pathlib.Path(tmp, "in.pb")
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = pathlib.Path(tmp, "out")
        out.mkdir()
        args = ["protoc", f"--descriptor_set_in={descriptors}", f"--{generator}_out={out}", *request.file_to_generate]
        if protoc.main(args) != 0:
            response.error = f"grpc_tools.protoc failed for generator {generator}"
        else:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                response.file.add(name=str(path.relative_to(out)), content=path.read_text())
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
