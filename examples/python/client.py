#!/usr/bin/python3
"""Calls a meshstats Tesseract over gRPC using nothing but stubs generated from proto/.

Run ./generate.sh first, then:

    /usr/bin/python3 client.py --address 127.0.0.1:50051 [--n-points 4]

It calls Describe, Apply, AbstractEval, Jacobian, JacobianVectorProduct, VectorJacobianProduct and the
JacobianRows stream, plus one Jacobian with a bad path, and prints ONE JSON object on stdout.

The inputs are deterministic (the same as the server's sampleMeshInputs), with k = 3*i + c the flat index:
    points[i][c]                 = 10 * sin(1.3 * k + 0.2)        shape (N, 3), one cell holding every point
    tangent[i][c]  (JVP)         = 0.5 + 0.1 * k                  for mesh.points
    cotangent (VJP)              = statistics.barycenter: [1, 2, 3], statistics.first_point_coordinates: [-0.5, -1, -1.5]
Tensors are raw little-endian bytes (struct module, no numpy). Jacobians are printed in the
(*output_shape, *input_shape) layout: {"shape": [...], "values": [flat, row-major]}.
"""

import argparse
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Python's gRPC refuses replies over 4 MiB by default. The server sends up to 64 MiB per message by
# default (--max-message-bytes), and a unary Jacobian of N points is 2 * 9 N^2 doubles: match it.
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of a meshstats server")
    parser.add_argument("--n-points", type=int, default=4, help="number of mesh points N (default 4)")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help="largest message sent or received (default 64 MiB, the server's default)")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline per call, seconds (default 60)")
    parser.add_argument("--generated", default=os.path.join(HERE, "generated"),
                        help="directory generate.sh wrote the stubs to (default: generated/ next to this script)")
    args = parser.parse_args()
    if args.n_points < 1:
        parser.error("--n-points must be at least 1")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
sys.path.insert(0, ARGS.generated if ARGS else os.path.join(HERE, "generated"))

try:
    import grpc
    from google.protobuf import any_pb2, json_format
    from tesseract.v1 import algorithm_pb2, tensor_pb2, tesseract_pb2, tesseract_pb2_grpc
    from tesseract.mesh.v1 import mesh_pb2
    from tesseract.examples.meshstats.v1 import meshstats_pb2
except ImportError as error:  # a setup problem: say what to do
    sys.exit(
        f"client.py: {error} (Python {sys.executable}). Run it with a Python that has grpcio and protobuf "
        "(Debian's python3-grpcio and python3-protobuf are /usr/bin/python3's; a virtual environment: pip install grpcio protobuf), "
        "after ./generate.sh."
    )

DataType = tensor_pb2.DataType
# struct format character for each element type (all little-endian, see tensor.proto).
FORMATS = {
    DataType.DATA_TYPE_BOOL: "?",
    DataType.DATA_TYPE_UINT8: "B",
    DataType.DATA_TYPE_UINT16: "H",
    DataType.DATA_TYPE_UINT32: "I",
    DataType.DATA_TYPE_UINT64: "Q",
    DataType.DATA_TYPE_INT8: "b",
    DataType.DATA_TYPE_INT16: "h",
    DataType.DATA_TYPE_INT32: "i",
    DataType.DATA_TYPE_INT64: "q",
    DataType.DATA_TYPE_FP32: "f",
    DataType.DATA_TYPE_FP64: "d",
}
BARYCENTER = "statistics.barycenter"
FIRST = "statistics.first_point_coordinates"
POINTS = "mesh.points"


def tensor(values, shape, datatype=DataType.DATA_TYPE_FP64):
    """Builds a Tensor from a flat, row-major list of values."""
    count = math.prod(shape)
    if len(values) != count:
        raise ValueError(f"{len(values)} values for shape {shape}")
    data = struct.pack(f"<{count}{FORMATS[datatype]}", *values)
    return tensor_pb2.Tensor(datatype=datatype, shape=shape, data=data)


def read_tensor(t):
    """Returns (shape, flat values) of a Tensor, checking its byte length."""
    shape = list(t.shape)
    count = math.prod(shape)  # 1 for a scalar (shape [])
    fmt = FORMATS[t.datatype]
    expected = count * struct.calcsize(fmt)
    if len(t.data) != expected:
        raise ValueError(f"tensor of shape {shape} has {len(t.data)} bytes, expected {expected}")
    return shape, list(struct.unpack(f"<{count}{fmt}", t.data))


def tensor_dict(t):
    shape, values = read_tensor(t)
    return {"shape": shape, "datatype": DataType.Name(t.datatype), "values": values}


def path_shapes(items):
    return [{"path": p.path, "shape": list(p.shape), "datatype": DataType.Name(p.datatype)} for p in items]


def stats_dict(stats):
    return {"apply_calls": int(stats.apply_calls), "wall_seconds": stats.wall_seconds,
            "column_groups": int(stats.column_groups), "sparsity_source": stats.sparsity_source}


def mesh_inputs(n_points, abstract_points=False):
    """The meshstats Inputs message: n_points points in one cell (see the module docstring)."""
    flat = [10 * math.sin(1.3 * k + 0.2) for k in range(3 * n_points)]
    points = (tensor_pb2.Tensor(datatype=DataType.DATA_TYPE_FP64, shape=[n_points, 3])  # shape only
              if abstract_points else tensor(flat, [n_points, 3]))
    mesh = mesh_pb2.VolumetricMeshData(
        n_points=n_points,
        n_cells=1,
        points=points,
        num_points_per_cell=tensor([float(n_points)], [1]),
        cell_connectivity=tensor(list(range(n_points)), [n_points], DataType.DATA_TYPE_INT32),
    )
    return meshstats_pb2.Inputs(mesh=mesh)


def packed(message):
    """google.protobuf.Any holding `message`; the type URL is type.googleapis.com/<full name>."""
    box = any_pb2.Any()
    box.Pack(message)
    return box


def assemble_rows(responses):
    """Collects a JacobianRows stream into the unary Jacobian's (*out, *in) layout.

    A dense slice holds output elements offset, offset + 1, ...; a sparse one (non-empty `indices`,
    when the header's `nonzeros` is above 0) holds the output elements it lists, every other entry of
    the row being structurally zero.
    """
    header, stats = None, None
    rows, row_messages = set(), 0
    jacobian = {}
    for response in responses:
        event = response.WhichOneof("event")
        if event == "header":
            header = response.header
            in_sizes = {p.path: math.prod(p.shape) for p in header.inputs}
            for out in header.outputs:
                for inp in header.inputs:
                    shape = list(out.shape) + list(inp.shape)
                    jacobian.setdefault(out.path, {})[inp.path] = {"shape": shape, "values": [0.0] * math.prod(shape)}
        elif event == "row":
            if header is None:
                raise RuntimeError("JacobianRows: a row came before the header")
            row = response.row
            row_messages += 1
            rows.add((row.input_path, row.input_index))
            size = in_sizes[row.input_path]
            for piece in row.slices:
                _, values = read_tensor(piece.values)
                target = jacobian[piece.output_path][row.input_path]["values"]
                outputs = list(piece.indices) or range(piece.offset, piece.offset + len(values))
                for output_index, value in zip(outputs, values):
                    # Element output_index of the output, element input_index of the input.
                    target[output_index * size + row.input_index] = value
        elif event == "stats":
            stats = response.stats
    if header is None or stats is None:
        raise RuntimeError("JacobianRows: the stream must start with a header and end with stats")
    return {
        "header": {
            "inputs": path_shapes(header.inputs),
            "outputs": path_shapes(header.outputs),
            "total_rows": int(header.total_rows),
            "planned_evaluations": int(header.planned_evaluations),
            "nonzeros": int(header.nonzeros),
        },
        "rows": len(rows),
        "row_messages": row_messages,
        "assembled": jacobian,
        "stats": stats_dict(stats),
    }


def main(args):
    n = args.n_points
    options = [
        ("grpc.max_receive_message_length", args.max_message_bytes),
        ("grpc.max_send_message_length", args.max_message_bytes),
    ]
    result = {}
    with grpc.insecure_channel(args.address, options=options) as channel:
        stub = tesseract_pb2_grpc.TesseractStub(channel)
        call = {"timeout": args.timeout, "wait_for_ready": True}
        inputs = packed(mesh_inputs(n))
        central = tesseract_pb2.FiniteDifferenceOptions(algorithm=algorithm_pb2.ALGORITHM_CENTRAL)

        # The first call fails at once where nothing listens (the others wait for the channel to be ready).
        described = stub.Describe(tesseract_pb2.DescribeRequest(), timeout=args.timeout)
        result["describe"] = json_format.MessageToDict(described, preserving_proto_field_name=True)
        if described.input_type != meshstats_pb2.Inputs.DESCRIPTOR.full_name:
            sys.exit(f"client.py: the server at {args.address} serves {described.name} ({described.input_type} -> "
                     f"{described.output_type}), but this client calls meshstats: is the address right?")

        applied = stub.Apply(tesseract_pb2.ApplyRequest(inputs=inputs), **call)
        outputs = meshstats_pb2.Outputs()
        if not applied.outputs.Unpack(outputs):
            raise RuntimeError(f"Apply returned {applied.outputs.type_url}, expected {outputs.DESCRIPTOR.full_name}")
        result["apply"] = {
            "type_url": applied.outputs.type_url,
            "barycenter": read_tensor(outputs.statistics.barycenter)[1],
            "first_point_coordinates": read_tensor(outputs.statistics.first_point_coordinates)[1],
        }

        abstract = stub.AbstractEval(tesseract_pb2.AbstractEvalRequest(inputs=packed(mesh_inputs(n, abstract_points=True))), **call)
        result["abstract_eval"] = path_shapes(abstract.outputs)

        request = tesseract_pb2.JacobianRequest(inputs=inputs, jac_inputs=[POINTS], jac_outputs=[BARYCENTER, FIRST], options=central)
        jacobian = stub.Jacobian(request, **call)
        result["jacobian"] = {}
        for entry in jacobian.entries:
            shape, values = read_tensor(entry.value)
            result["jacobian"].setdefault(entry.output_path, {})[entry.input_path] = {"shape": shape, "values": values}
        result["jacobian_apply_calls"] = int(jacobian.stats.apply_calls)

        tangent = [0.5 + 0.1 * k for k in range(3 * n)]
        jvp = stub.JacobianVectorProduct(tesseract_pb2.JacobianVectorProductRequest(
            inputs=inputs, jvp_inputs=[POINTS], jvp_outputs=[BARYCENTER, FIRST],
            tangent_vector={POINTS: tensor(tangent, [n, 3])}, options=central), **call)
        result["jvp"] = {
            "result": {path: tensor_dict(t) for path, t in jvp.result.items()},
            "stats": stats_dict(jvp.stats),
        }

        cotangent = {BARYCENTER: [1.0, 2.0, 3.0], FIRST: [-0.5, -1.0, -1.5]}
        vjp = stub.VectorJacobianProduct(tesseract_pb2.VectorJacobianProductRequest(
            inputs=inputs, vjp_inputs=[POINTS], vjp_outputs=[BARYCENTER, FIRST],
            cotangent_vector={path: tensor(v, [3]) for path, v in cotangent.items()}, options=central), **call)
        result["vjp"] = {
            "result": {path: tensor_dict(t) for path, t in vjp.result.items()},
            "stats": stats_dict(vjp.stats),
        }

        result["rows"] = assemble_rows(stub.JacobianRows(request, **call))

        try:
            stub.Jacobian(tesseract_pb2.JacobianRequest(inputs=inputs, jac_inputs=["mesh.pointz"], jac_outputs=[BARYCENTER]), **call)
            result["bad_path"] = {"code": "OK", "details": "the server accepted mesh.pointz"}
        except grpc.RpcError as error:
            result["bad_path"] = {"code": error.code().name, "details": error.details()}

    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


def explain(error, args):
    """The line printed for a failed call: gRPC's words, and what to do where the connection failed or timed out."""
    code, details = error.code(), error.details()
    if "://" in args.address:
        return f"client.py: {code.name}: {details} - write --address as HOST:PORT, without a scheme (127.0.0.1:50051)"
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in (details or "").lower():
        return (f"client.py: UNAVAILABLE: no server at {args.address} ({details}) - start one with "
                "`npx tesseract-grpc serve meshstats` (or `npm start` in the clone), or pass --address HOST:PORT of a running one")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (f"client.py: DEADLINE_EXCEEDED: no answer from {args.address} within --timeout {args.timeout:g} s: "
                "is it a tesseract-grpc server? allow more time with --timeout")
    return f"client.py: {code.name}: {details}"


if __name__ == "__main__":
    try:
        main(ARGS)
    except grpc.RpcError as error:
        sys.exit(explain(error, ARGS))
