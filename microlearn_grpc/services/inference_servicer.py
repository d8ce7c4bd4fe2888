"""GRPCInferenceService (Open Inference Protocol v2, package `inference`) over gRPC: protobuf ↔
domain translation only; the use cases are in `inference.py`."""

from __future__ import annotations

from microlearn.inference import grpc_predict_v2_pb2 as pb
from microlearn.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from microlearn_grpc.serving.tensors import TensorInput, TensorSpec
from microlearn_grpc.services.grpc_errors import translate_errors
from microlearn_grpc.services.inference import InferenceService, InferRequest


def _tensor_metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: InferenceService) -> None:
        self._service = service
        service.start()  # the router loads deployments whether or not DeployService is served too

    @translate_errors
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=self._service.live())

    @translate_errors
    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self._service.ready())

    @translate_errors
    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=await self._service.model_ready(request.name, request.version))

    @translate_errors
    async def ServerMetadata(self, request, context):
        name, version, extensions = self._service.server_metadata()
        return pb.ServerMetadataResponse(name=name, version=version, extensions=extensions)

    @translate_errors
    async def ModelMetadata(self, request, context):
        found = await self._service.model_metadata(request.name, request.version)
        return pb.ModelMetadataResponse(name=found.name, versions=found.versions, platform=found.platform,
                                        inputs=[_tensor_metadata(s) for s in found.inputs],
                                        outputs=[_tensor_metadata(s) for s in found.outputs])

    @translate_errors
    async def ModelInfer(self, request, context):
        result = await self._service.infer(InferRequest(
            model_name=request.model_name, model_version=request.model_version, request_id=request.id,
            inputs=TensorInput(request.inputs, request.raw_input_contents),
            outputs=[o.name for o in request.outputs]))
        response = pb.ModelInferResponse(model_name=result.model_name, model_version=result.model_version,
                                         id=result.request_id)
        for key, value in result.parameters.items():
            response.parameters[key].string_param = value
        for tensor in result.outputs:
            out = response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape))
            for key, value in tensor.parameters.items():
                out.parameters[key].string_param = value
            if result.raw:
                response.raw_output_contents.append(tensor.raw_bytes())
            else:
                getattr(out.contents, tensor.contents_field).extend(tensor.typed())
        return response
