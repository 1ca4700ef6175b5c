"""``agentkit.testing``: the wire server works without the test extra, and its schema check.

The built-in schema checker (used when ``jsonschema`` is not installed) must agree with
``jsonschema`` on every body here, valid or not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

import agentkit.testing_server
from agentkit.testing import Reply, WireServer, schema_violations
from agentkit.testing._schema_check import builtin_violations, input_schema

# A child process in which ``import jsonschema`` fails, as after a plain ``pip install agentkit``.
_WITHOUT_JSONSCHEMA = r"""
import json, sys
sys.modules["jsonschema"] = None  # import jsonschema now raises ImportError
import httpx
from agentkit import Message
from agentkit.models import WorkersAI
from agentkit.testing import WireServer

with WireServer(["Paris.", "still answered"], api_token="t0ken-abc") as server:
    with WorkersAI(account_id="acct", api_token="t0ken-abc", base_url=server.base_url,
                   max_retries=0, timeout=5) as model:
        answer = model.request_sync([Message.user("Capital of France?")], []).text
    bad = httpx.post(
        server.base_url + "/accounts/acct/ai/run/@cf/meta/llama-3.2-3b-instruct",
        json={"messages": [{"role": "user"}], "temperature": 9},
        headers={"authorization": "Bearer t0ken-abc"}, timeout=5,
    )
    print(json.dumps({"answer": answer, "status": bad.status_code,
                      "bad_answer": bad.json()["result"]["response"],
                      "violations": server.violations}))
"""


def test_wire_server_answers_and_checks_bodies_without_jsonschema() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_JSONSCHEMA],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["answer"] == "Paris."
    assert (seen["status"], seen["bad_answer"]) == (200, "still answered")
    # The good request passed; the bad one is reported, by where and what.
    assert len(seen["violations"]) == 1, seen["violations"]
    problem = seen["violations"][0]
    assert problem.startswith("POST /accounts/acct/ai/run/@cf/meta/llama-3.2-3b-instruct: /:")
    assert "Messages: messages/0: 'content' is a required property" in problem


_TOOL_FUNCTION = {
    "type": "function",
    "function": {
        "name": "f",
        "description": "d",
        "parameters": {
            "type": "object",
            "properties": {"x": {"type": "string", "description": "x"}},
            "required": ["x"],
        },
    },
}
_TOOL_LEGACY = {
    "name": "f",
    "description": "d",
    "parameters": {"type": "object", "properties": {"x": {"type": "string", "description": "x"}}},
}
_USER = {"role": "user", "content": "hi"}

BODIES: list[tuple[str, Any]] = [
    ("messages", {"messages": [_USER]}),
    ("prompt", {"prompt": "hi", "max_tokens": 5}),
    ("tools, both shapes", {"messages": [_USER], "tools": [_TOOL_FUNCTION, _TOOL_LEGACY]}),
    ("all settings", {"messages": [_USER], "temperature": 0.2, "top_k": 3, "seed": 7}),
    ("integral float", {"messages": [_USER], "max_tokens": 5.0}),
    ("temperature too high", {"messages": [_USER], "temperature": 9}),
    ("temperature negative", {"messages": [_USER], "temperature": -0.1}),
    ("content missing", {"messages": [{"role": "user"}]}),
    ("content not a string", {"messages": [{"role": "user", "content": ["hi"]}]}),
    ("prompt and messages", {"prompt": "hi", "messages": [_USER]}),
    ("empty prompt", {"prompt": ""}),
    ("top_k not integral", {"messages": [_USER], "top_k": 1.5}),
    ("bool as integer", {"messages": [_USER], "max_tokens": True}),
    ("stream not bool", {"messages": [_USER], "stream": "yes"}),
    ("not an object", ["hi"]),
    ("neither prompt nor messages", {"temperature": 0.5}),
    ("tool without description", {"messages": [_USER], "tools": [{"name": "f", "parameters": {}}]}),
    (
        "parameter without description",
        {
            "messages": [_USER],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "description": "d",
                        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
                    },
                }
            ],
        },
    ),
    ("content too long", {"messages": [{"role": "user", "content": "x" * 131073}]}),
]


@pytest.mark.parametrize(("case", "body"), BODIES, ids=[case for case, _ in BODIES])
def test_builtin_check_agrees_with_jsonschema(case: str, body: Any) -> None:
    schema = input_schema()
    expected = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(body))
    found = builtin_violations(schema, body)
    assert bool(found) == bool(expected), (case, found, [e.message for e in expected])
    assert bool(schema_violations(body)) == bool(expected)


def test_builtin_check_refuses_keywords_it_does_not_know() -> None:
    schema = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^a"}}}
    with pytest.raises(
        ValueError, match=r"#/properties/id: .*does not know \['pattern'\].*install jsonschema"
    ):
        builtin_violations(schema, {"id": "b"})


def test_a_failing_schema_check_is_reported_not_a_dropped_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    from agentkit.testing import _server

    def broken(body: Any) -> list[str]:
        raise RuntimeError("checker broke")

    monkeypatch.setattr(_server, "schema_violations", broken)
    with WireServer([Reply.answer("ok")]) as server:
        response = httpx.post(
            server.base_url + "/accounts/a/ai/run/m", json={"messages": [_USER]}, timeout=5
        )
    assert response.json()["result"]["response"] == "ok"
    assert server.violations == [
        "POST /accounts/a/ai/run/m: the schema check failed: RuntimeError('checker broke')"
    ]


def test_the_former_module_path_still_works() -> None:
    assert agentkit.testing_server.WireServer is WireServer
    assert agentkit.testing_server.schema_violations is schema_violations


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_reply_the_server_cannot_build_is_a_500_that_says_why(stream: bool) -> None:
    import httpx

    unsendable = Reply(events=[{"response": object()}]) if stream else Reply(tool_calls=[42])  # type: ignore[list-item]
    with WireServer([unsendable, "next"]) as server:
        url = server.base_url + "/accounts/a/ai/run/m"
        body = {"messages": [_USER], "stream": stream}
        with httpx.Client(timeout=5) as client:
            failed = client.post(url, json=body)
            after = client.post(url, json={"messages": [_USER]})  # the connection still serves
    assert failed.status_code == 500
    message = failed.json()["errors"][0]["message"]
    assert message.startswith("the WireServer failed to answer: TypeError(")
    assert after.json()["result"]["response"] == "next"
    assert len(server.violations) == 1
    assert server.violations[0].startswith("POST /accounts/a/ai/run/m: the WireServer failed")
