"""A Python client of the jaf-workflows coordinator, for the cross-language interop test.

It uses stubs generated from proto/jaf/workflows/v1/workflow_service.proto (and rpc_status.proto) by
Debian's python3-grpc-tools; the caller generates them and puts them on PYTHONPATH
(test/grpc/python-interop.test.ts does). It runs one scenario and prints ONE JSON line of results on
stdout: {"ok": true, "scenario": ..., ...}. An RPC failing where the scenario expects success prints
{"ok": false, "error": {...}} and exits 1; bad arguments exit 2 (argparse).

    python3 interop_client.py ADDRESS TOKEN SCENARIO [options]

TOKEN is sent as `authorization: Bearer <TOKEN>` (an empty TOKEN sends no authorization).
"""
import argparse
import json
import sys

import grpc
from google.protobuf import json_format, struct_pb2

from jaf.workflows.v1 import workflow_service_pb2 as pb
from jaf.workflows.v1 import workflow_service_pb2_grpc as pb_grpc
import rpc_status_pb2

# Every RPC's deadline, in seconds: generous, since CI runs on a noisy 2-core VM.
CALL_TIMEOUT_S = 30.0
# How long to wait for the channel to connect before failing with a clear error.
CONNECT_TIMEOUT_S = 10.0
STATUS_DETAILS_KEY = "grpc-status-details-bin"
DEFINITION_ISSUES_KEY = "jaf-definition-issues-bin"
ANY_TYPE_PREFIX = "type.googleapis.com/"


class ExpectedFailureMissing(Exception):
    """A scenario expected an RPC to fail, and it succeeded."""


def bearer(token):
    return [("authorization", "Bearer " + token)] if token else []


def read_text(path, flag):
    if path is None:
        raise SystemExit("interop_client: this scenario needs " + flag)
    with open(path, encoding="utf-8") as f:
        return f.read()


def struct_of(json_text):
    struct = struct_pb2.Struct()
    struct.update(json.loads(json_text) if json_text else {})
    return struct


def json_of(message, field):
    """A Struct/Value field as plain JSON data; None when unset."""
    return json_format.MessageToDict(getattr(message, field)) if message.HasField(field) else None


def step_result(result):
    return {
        "step_id": result.step_id,
        "path": result.path,
        "step_kind": pb.StepKind.Name(result.kind),
        "status": pb.StepStatus.Name(result.status),
        "output": json_of(result, "output"),
        "error_code": result.error.code if result.HasField("error") else None,
        "attempts": result.attempts,
    }


def event_summary(event):
    """(seq, kind, step id/status) of one RunEvent, as a dict."""
    kind = event.WhichOneof("event")
    out = {"seq": event.seq, "run": event.run, "kind": kind}
    if kind == "run_started":
        out["workflow"] = event.run_started.workflow
    elif kind == "step_started":
        out.update(step_id=event.step_started.step_id, path=event.step_started.path, attempt=event.step_started.attempt)
    elif kind == "step_retrying":
        out.update(path=event.step_retrying.path, attempt=event.step_retrying.attempt)
    elif kind == "step_finished":
        out.update(step_result(event.step_finished))
    elif kind == "run_finished":
        out["status"] = pb.RunStatus.Name(event.run_finished.status)
    else:
        raise ValueError("RunEvent %d carries no known event (%r)" % (event.seq, kind))
    return out


def drain(stream):
    """Every event of a server stream, until the server ends it (status OK)."""
    return [event_summary(event) for event in stream]


def final_status(events):
    last = events[-1] if events else None
    return last["status"] if last is not None and last["kind"] == "run_finished" else None


def rpc_error(error):
    return {"code": error.code().name, "details": error.details()}


def expect_failure(call):
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise ExpectedFailureMissing("the call succeeded; a failure was expected")


def decode_status_details(raw):
    """grpc-status-details-bin (a google.rpc.Status) as JSON; BadRequest and ErrorInfo details unpacked."""
    status = rpc_status_pb2.RpcStatus()
    status.ParseFromString(raw)
    known = {"google.rpc.BadRequest": rpc_status_pb2.BadRequest, "google.rpc.ErrorInfo": rpc_status_pb2.ErrorInfo}
    details = []
    for any_detail in status.details:
        type_name = any_detail.type_url[len(ANY_TYPE_PREFIX):] if any_detail.type_url.startswith(ANY_TYPE_PREFIX) else any_detail.type_url
        decoded = {"type": type_name}
        message_class = known.get(type_name)
        if message_class is not None:
            message = message_class()
            message.ParseFromString(any_detail.value)
            decoded["value"] = json_format.MessageToDict(message, preserving_proto_field_name=True)
        details.append(decoded)
    return {"code": status.code, "message": status.message, "details": details}


# --- scenarios --------------------------------------------------------------------------------------


def create_start_watch(stub, args, auth):
    """(a) CreateWorkflow, StartRun, then WatchRun from seq 0 to the end."""
    workflow = stub.CreateWorkflow(
        pb.CreateWorkflowRequest(document=read_text(args.document, "--document"), format=pb.DOCUMENT_FORMAT_YAML),
        metadata=auth,
        timeout=CALL_TIMEOUT_S,
    )
    run = stub.StartRun(
        pb.StartRunRequest(workflow=workflow.name, variables=struct_of(args.variables and read_text(args.variables, "--variables"))),
        metadata=auth,
        timeout=CALL_TIMEOUT_S,
    )
    events = drain(stub.WatchRun(pb.WatchRunRequest(name=run.name, after_seq=0), metadata=auth, timeout=CALL_TIMEOUT_S))
    return {
        "workflow": {"name": workflow.name, "definition_hash": workflow.definition_hash, "total_steps": workflow.total_steps},
        "run": run.name,
        "start_status": pb.RunStatus.Name(run.status),
        "events": events,
        "final_status": final_status(events),
    }


def resume(stub, args, auth):
    """(b) WatchRun from after_seq: the seqs received."""
    if args.run is None or args.after_seq is None:
        raise SystemExit("interop_client: resume needs --run and --after-seq")
    events = drain(stub.WatchRun(pb.WatchRunRequest(name=args.run, after_seq=args.after_seq), metadata=auth, timeout=CALL_TIMEOUT_S))
    return {"run": args.run, "after_seq": args.after_seq, "seqs": [e["seq"] for e in events], "kinds": [e["kind"] for e in events]}


def unauthenticated(stub, _args, _auth):
    """(c) Calls without the token, and with a wrong one: the status code names."""
    no_token = expect_failure(lambda: stub.ListTools(pb.ListToolsRequest(), timeout=CALL_TIMEOUT_S))
    wrong_token = expect_failure(lambda: stub.ListTools(pb.ListToolsRequest(), metadata=bearer("not-the-token"), timeout=CALL_TIMEOUT_S))
    # A streaming RPC: the stream fails when read.
    stream_no_token = expect_failure(lambda: list(stub.WatchRun(pb.WatchRunRequest(name="runs/any"), timeout=CALL_TIMEOUT_S)))
    return {
        "no_token": no_token.code().name,
        "wrong_token": wrong_token.code().name,
        "stream_no_token": stream_no_token.code().name,
        "details": no_token.details(),
    }


def execute(stub, args, auth):
    """(d) ExecuteWorkflow, streamed to the end."""
    if args.workflow is None:
        raise SystemExit("interop_client: execute needs --workflow")
    request = pb.ExecuteWorkflowRequest(
        run=pb.StartRunRequest(workflow=args.workflow, variables=struct_of(args.variables and read_text(args.variables, "--variables"))),
        after_seq=0,
    )
    events = drain(stub.ExecuteWorkflow(request, metadata=auth, timeout=CALL_TIMEOUT_S))
    return {"run": events[0]["run"] if events else None, "events": events, "final_status": final_status(events)}


def get_run(stub, args, auth):
    """(e) GetRun: the run and its step results."""
    if args.run is None:
        raise SystemExit("interop_client: get-run needs --run")
    run = stub.GetRun(pb.GetRunRequest(name=args.run), metadata=auth, timeout=CALL_TIMEOUT_S)
    return {
        "run": run.name,
        "status": pb.RunStatus.Name(run.status),
        "last_seq": run.last_seq,
        "total_steps": run.total_steps,
        "has_finish_time": run.HasField("finish_time"),
        "variables": json_of(run, "variables"),
        "step_results": [step_result(r) for r in run.step_results],
    }


def invalid_definition(stub, args, auth):
    """(f) CreateWorkflow with a malformed document: the status, trailer keys and decoded details."""
    document = read_text(args.document, "--document")
    error = expect_failure(
        lambda: stub.CreateWorkflow(pb.CreateWorkflowRequest(document=document, format=pb.DOCUMENT_FORMAT_YAML), metadata=auth, timeout=CALL_TIMEOUT_S)
    )
    trailers = list(error.trailing_metadata() or ())
    values = {key: value for key, value in trailers}
    issues = values.get(DEFINITION_ISSUES_KEY)
    details = values.get(STATUS_DETAILS_KEY)
    return {
        "code": error.code().name,
        "details": error.details(),
        "trailing_metadata_keys": sorted({key for key, _value in trailers}),
        "jaf_error_code": values.get("jaf-error-code"),
        "definition_issues": json.loads(issues.decode("utf-8")) if issues is not None else None,
        "status_details": decode_status_details(details) if details is not None else None,
    }


SCENARIOS = {
    "create-start-watch": create_start_watch,
    "resume": resume,
    "unauthenticated": unauthenticated,
    "execute": execute,
    "get-run": get_run,
    "invalid-definition": invalid_definition,
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description="jaf-workflows coordinator interop client")
    parser.add_argument("address", help="host:port of the coordinator")
    parser.add_argument("token", help="bearer token ('' for none)")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--document", help="file holding a workflow document (YAML)")
    parser.add_argument("--variables", help="file holding the run's variables (a JSON object)")
    parser.add_argument("--workflow", help="workflow resource name, workflows/{id}")
    parser.add_argument("--run", help="run resource name, runs/{id}")
    parser.add_argument("--after-seq", type=int, help="WatchRun's exclusive cursor (>= 0)")
    args = parser.parse_args(argv)
    if args.after_seq is not None and args.after_seq < 0:
        parser.error("--after-seq must be >= 0 (got %d)" % args.after_seq)
    return args


def main(argv):
    args = parse_args(argv)
    with grpc.insecure_channel(args.address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            print(json.dumps({"ok": False, "scenario": args.scenario, "error": {"code": "CONNECT_TIMEOUT", "details": "no connection to %s within %ss" % (args.address, CONNECT_TIMEOUT_S)}}))
            return 1
        stub = pb_grpc.WorkflowServiceStub(channel)
        try:
            result = SCENARIOS[args.scenario](stub, args, bearer(args.token))
        except grpc.RpcError as error:
            print(json.dumps({"ok": False, "scenario": args.scenario, "error": rpc_error(error)}))
            return 1
        except ExpectedFailureMissing as missing:
            print(json.dumps({"ok": False, "scenario": args.scenario, "error": {"code": "EXPECTED_FAILURE_MISSING", "details": str(missing)}}))
            return 1
    print(json.dumps(dict(result, ok=True, scenario=args.scenario), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
