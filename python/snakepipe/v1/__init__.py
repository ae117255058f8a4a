"""Generated protobuf and gRPC modules for snakepipe.v1 (``make generate-python``).

Do not edit ``ingest_pb2*.py``; they are regenerated from
``proto/snakepipe/v1/ingest.proto`` with the pinned grpcio-tools.
"""
