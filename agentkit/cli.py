"""The ``agentkit`` command: ``demo``, ``run``, ``chat``, ``complete`` (and ``batch``).

Each command is one small ``_add_<name>(subparsers)`` function that declares its arguments and
sets its handler; :data:`COMMANDS` lists them. A handler takes the parsed arguments and returns
the exit status. Ctrl-C exits with 130 and a one-line message (``run`` first prints the transcript
so far; ``batch`` says how to continue).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._scope import session_affinity
from .agent import Agent, RunFinished, RunResult, ToolCallFinished, ToolCallStarted
from .errors import AgentKitError, ConfigurationError
from .messages import Message, ResponseDone, TextDelta, ToolCall, Usage
from .sessions import SQLiteSession, affinity_key

__all__ = ["COMMANDS", "build_parser", "main"]

_Subparsers = Any  # argparse's _SubParsersAction is private


# --- output helpers --------------------------------------------------------------------------


def _describe_call(call: ToolCall) -> str:
    arguments = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
    return f"{call.name}({arguments})"


def _short(text: str, limit: int = 300) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_output(output: Any) -> str:
    if hasattr(output, "model_dump_json"):
        return str(output.model_dump_json(indent=2))
    return str(output)


def _ask_terminal(question: str) -> bool:
    """Ask y/n on the terminal (even when stdin is a pipe); no terminal or no answer means no."""
    try:
        with open("/dev/tty", "r+", encoding="utf-8") as tty:
            tty.write(question)
            tty.flush()
            answer = tty.readline()
    except OSError:
        if not sys.stdin.isatty():
            return False
        try:
            answer = input(question)
        except EOFError:
            return False
    return answer.strip().lower() in ("y", "yes")


def _approve_on_terminal(call: ToolCall) -> bool:
    return _ask_terminal(f"run {_describe_call(call)}? [y/N] ")


async def _run_and_print(
    agent: Agent[Any],
    prompt: str | None,
    history: Sequence[Message] | None,
    *,
    stream: bool,
    show_tools: bool,
    quiet: bool,
    out: TextIO,
    session: SQLiteSession | None = None,
) -> RunResult[Any]:
    """One run; prints text as it streams and, with ``show_tools``, each call and result."""
    result: RunResult[Any] | None = None
    streamed = False
    events = agent.iter(prompt, message_history=history, session=session, stream=stream)
    async for event in events:
        if isinstance(event, TextDelta):
            if not quiet:
                out.write(event.text)
                out.flush()
                streamed = True
        elif isinstance(event, ToolCallStarted) and show_tools:
            if streamed:
                out.write("\n")
                streamed = False
            sys.stderr.write(f"→ {_describe_call(event.call)}\n")
        elif isinstance(event, ToolCallFinished) and show_tools:
            mark = "✗" if event.result.is_error else "←"
            sys.stderr.write(f"  {mark} {_short(event.result.content)}\n")
        elif isinstance(event, RunFinished):
            result = event.result
    assert result is not None
    if not quiet:
        if streamed:
            out.write("\n")
        elif not stream or result.output != "":
            out.write(_format_output(result.output) + "\n")
    return result


async def _close(model: Any) -> None:
    aclose = getattr(model, "aclose", None)
    if aclose is not None:
        await aclose()


def _load(target: str) -> Agent[Any]:
    from ._load import load_agent

    return load_agent(target)


def _read_prompt(prompt: str | None) -> str:
    if prompt is not None:
        return prompt
    if sys.stdin.isatty():
        raise ConfigurationError("no prompt: give it as an argument or pipe it on stdin")
    text = sys.stdin.read().strip()
    if not text:
        raise ConfigurationError("no prompt: the text piped on stdin was empty")
    return text


def _add_session_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--session", metavar="NAME", help="keep the conversation in this session (every step saved)"
    )
    parser.add_argument(
        "--session-db",
        metavar="PATH",
        default="agentkit.db",
        help="the sessions file (agentkit.db)",
    )


def _open_session(args: argparse.Namespace) -> SQLiteSession | None:
    return None if args.session is None else SQLiteSession(args.session, args.session_db)


def _add_display_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", action="store_true", help="print text as it arrives")
    parser.add_argument(
        "--show-tools", action="store_true", help="print each tool call and its result"
    )
    parser.add_argument(
        "--approve", action="store_true", help="ask on the terminal before each tool call"
    )


# --- agentkit demo ---------------------------------------------------------------------------


def _add_demo(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a short multi-step agent with real tools",
        description="Run a small agent (unit conversion + calculator) and show every step. "
        "Uses Workers AI when CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN are set, "
        "otherwise a scripted model.",
    )
    parser.add_argument("prompt", nargs="?", help="your own question (Workers AI only)")
    parser.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import DEMO_PROMPT, build_demo_agent, has_credentials

    online = has_credentials()
    if not online:
        print("No CLOUDFLARE_ACCOUNT_ID/CLOUDFLARE_API_TOKEN set: running on a scripted model.")
        if args.prompt:
            print(
                "The offline demo answers its own question, not yours; set both variables "
                "to ask your question on Workers AI."
            )
    prompt = args.prompt if online and args.prompt else DEMO_PROMPT
    agent = build_demo_agent()
    print(f"question: {prompt}")

    # The demo prints calls on stdout, in order, so it reads as one story.
    async def story() -> RunResult[Any]:
        result: RunResult[Any] | None = None
        try:
            async for event in agent.iter(prompt):
                if isinstance(event, ToolCallStarted):
                    print(f"→ {_describe_call(event.call)}")
                elif isinstance(event, ToolCallFinished):
                    print(
                        f"  {'✗' if event.result.is_error else '←'} {_short(event.result.content)}"
                    )
                elif isinstance(event, RunFinished):
                    result = event.result
        finally:
            await _close(agent.model)
        assert result is not None
        return result

    result = asyncio.run(story())
    print(f"answer: {result.output}")
    cached = result.usage.cached_tokens
    print(
        f"({result.steps} model requests, {result.usage.tool_calls} tool calls"
        + (f", {cached} prompt tokens from the cache)" if cached else ")")
    )
    return 0


# --- agentkit run ----------------------------------------------------------------------------


def _add_run(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run an agent defined in a Python file",
        description="Run the Agent NAME defined in FILE.py on one prompt.",
    )
    parser.add_argument("target", help="FILE.py:NAME or package.module:NAME (NAME: agent)")
    parser.add_argument("prompt", nargs="?", help="the prompt; read from stdin when omitted")
    _add_display_options(parser)
    parser.add_argument("--json", action="store_true", help="print the whole RunResult as JSON")
    _add_session_options(parser)
    _add_mcp_options(parser)
    parser.set_defaults(handler=_cmd_run)


def _transcript_lines(messages: Sequence[Message]) -> list[str]:
    """A transcript as text: one line per message, tool calls and results marked."""
    lines: list[str] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            mark = "✗" if message.is_error else "←"
            lines.append(f"  {mark} {message.name or 'tool'}: {message.content}")
            continue
        if message.content or not message.tool_calls:
            lines.append(f"{message.role}: {message.content}")
        lines.extend(f"  → {_describe_call(call)}" for call in message.tool_calls)
    return lines


def _print_unfinished(
    error: BaseException,
    messages: Sequence[Message] | None,
    usage: Usage | None,
    *,
    as_json: bool,
) -> None:
    """What an unfinished run produced, on stdout: as JSON (``--json``) or as text."""
    messages = list(messages or ())
    usage = usage or Usage()
    interrupted = isinstance(error, KeyboardInterrupt | asyncio.CancelledError)
    if as_json:
        data = {
            "output": None,
            "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in messages],
            "usage": usage.model_dump(),
            "interrupted": interrupted,
            "error": {
                "type": type(error).__name__,
                "message": "interrupted" if interrupted else str(error),
            },
        }
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    why = "interrupted" if interrupted else f"stopped by {type(error).__name__}"
    print(f"\n[{why} after {usage.requests} model requests; the transcript so far:]")
    for line in _transcript_lines(messages):
        print(line)


def _cmd_run(args: argparse.Namespace) -> int:
    agent = _load(args.target)
    session = _open_session(args)
    prompt: str | None
    if session is not None and args.prompt is None:  # no prompt: finish a run that stopped
        prompt = None if sys.stdin.isatty() else (sys.stdin.read().strip() or None)
    else:
        prompt = _read_prompt(args.prompt)
    if args.approve:
        agent.approve, agent.approve_all = _approve_on_terminal, True
    # Filled from the error of an unfinished run: every error leaving a run carries its
    # transcript and usage (Ctrl-C arrives in the run as a cancellation).
    unfinished: dict[str, Any] = {
        "messages": [Message.user(prompt)] if prompt else [],
        "usage": None,
    }

    async def go() -> RunResult[Any]:
        try:
            async with _with_mcp_servers(agent, args) as run_agent:
                return await _run_and_print(
                    run_agent,
                    prompt,
                    None,
                    stream=args.stream and not args.json,
                    show_tools=args.show_tools,
                    quiet=args.json,
                    out=sys.stdout,
                    session=session,
                )
        except BaseException as exc:
            unfinished["messages"] = getattr(exc, "messages", None) or unfinished["messages"]
            unfinished["usage"] = getattr(exc, "usage", None)
            raise
        finally:
            await _close(agent.model)

    try:
        result = asyncio.run(go())
    except KeyboardInterrupt as exc:
        _print_unfinished(exc, unfinished["messages"], unfinished["usage"], as_json=args.json)
        raise
    except AgentKitError as exc:
        if args.json:
            _print_unfinished(exc, unfinished["messages"], unfinished["usage"], as_json=True)
        raise
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    return 0


# --- agentkit chat ---------------------------------------------------------------------------


def _add_chat(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="talk to an agent in a loop that keeps the conversation",
        description="A REPL around the Agent in FILE.py. Type /exit (or Ctrl-D) to leave. "
        "With --session NAME the conversation is saved after every step and resumed next time.",
    )
    parser.add_argument("target", help="FILE.py:NAME or package.module:NAME (NAME: agent)")
    _add_display_options(parser)
    _add_session_options(parser)
    parser.set_defaults(handler=_cmd_chat)


def _cmd_chat(args: argparse.Namespace) -> int:
    agent = _load(args.target)
    if args.approve:
        agent.approve, agent.approve_all = _approve_on_terminal, True
    interactive = sys.stdin.isatty()
    session = _open_session(args)
    if session is not None:
        kept = len(session.load_sync())
        print(f"session {args.session!r}: {kept} messages kept", file=sys.stderr)

    history: list[Message] | None = None
    # One prompt cache per conversation; a saved one keeps its key from one chat to the next.
    conversation = (
        f"chat-{secrets.token_hex(8)}" if session is None else affinity_key(session.session_id)
    )
    # One event loop for the whole conversation (the model's connections live on it); input()
    # runs between turns, outside the loop.
    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    line = input("you> " if interactive else "").strip()
                except EOFError:
                    return 0
                if line in ("/exit", "/quit"):
                    return 0
                if not line:
                    continue
                if interactive:
                    sys.stdout.write("agent> ")
                try:
                    with session_affinity(conversation):  # one prompt cache per conversation
                        result = runner.run(
                            _run_and_print(
                                agent,
                                line,
                                history,
                                stream=args.stream,
                                show_tools=args.show_tools,
                                quiet=False,
                                out=sys.stdout,
                                session=session,
                            )
                        )
                except AgentKitError as exc:
                    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
                    if session is None:  # a session keeps what the failed turn produced itself
                        history = exc.messages or history
                    continue
                if session is None:
                    history = result.messages
        finally:
            runner.run(_close(agent.model))


# --- agentkit complete ------------------------------------------------------------------------


def _add_complete(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "complete",
        help="generate from a bare prompt on Workers AI (prompt mode)",
        description="Send one prompt to a Workers AI model without the chat format of messages "
        "(needs CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN).",
    )
    parser.add_argument("prompt", nargs="?", help="the prompt; read from stdin when omitted")
    parser.add_argument("--raw", action="store_true", help="send the prompt without chat template")
    parser.add_argument("--lora", metavar="NAME", help="apply this LoRA adapter")
    parser.add_argument("--stream", action="store_true", help="print text as it arrives")
    parser.add_argument(
        "--model", help="the Workers AI model (default: @cf/meta/llama-3.2-3b-instruct)"
    )
    parser.add_argument("--max-tokens", type=int, metavar="N", help="the most tokens to generate")
    parser.set_defaults(handler=_cmd_complete)


def _cmd_complete(args: argparse.Namespace) -> int:
    from .models import WorkersAI
    from .settings import ModelSettings

    prompt = _read_prompt(args.prompt)
    settings = None if args.max_tokens is None else ModelSettings(max_tokens=args.max_tokens)
    model = WorkersAI(args.model) if args.model else WorkersAI()

    async def go() -> None:
        async with model:
            if not args.stream:
                response = await model.complete(
                    prompt, raw=args.raw, lora=args.lora, settings=settings
                )
                print(response.text or "")
                return
            async for event in model.complete_stream(
                prompt, raw=args.raw, lora=args.lora, settings=settings
            ):
                if isinstance(event, TextDelta):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, ResponseDone):
                    sys.stdout.write("\n")

    asyncio.run(go())
    return 0


# --- agentkit batch ----------------------------------------------------------------------------


def _add_batch(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="run an agent over many inputs (JSONL), saving results as they finish",
        description=(
            "Run an agent on every line of a JSONL file (a JSON string, or an object with "
            "'input' and an optional 'id') and append one JSON result per line to the output. "
            "One process at a time works on an output file (it is locked while the job runs). "
            "With --resume, inputs already done are skipped; inputs that were running when the "
            "job stopped run again, their tools included (at-least-once per input)."
        ),
    )
    parser.add_argument(
        "target", nargs="?", help="the agent, as FILE.py:NAME or package.module:NAME"
    )
    parser.add_argument(
        "inputs", nargs="?", help="the inputs file, one JSON string or object per line"
    )
    parser.add_argument("-o", "--output", help="the results file (JSONL)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="runs at the same time (default: 4)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip inputs already done in the output file"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output file if it exists"
    )
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    _add_durable_batch_options(parser)
    parser.set_defaults(handler=_cmd_batch)


def _resume_command(args: argparse.Namespace) -> str:
    """The command line that continues this batch."""
    words = ["agentkit", "batch", args.target, args.inputs, "-o", args.output]
    if args.concurrency != 4:
        words += ["--concurrency", str(args.concurrency)]
    if args.no_progress:
        words.append("--no-progress")
    return shlex.join([*words, "--resume"])


def _cmd_batch(args: argparse.Namespace) -> int:
    """0 when every input succeeded, 1 when some failed or the job stopped, 2 on a usage error,
    130 on Ctrl-C."""
    from .jobs import JobReporter, run_batch, summary

    if args.durable or args.status:
        return _cmd_durable_batch(args)
    if not (args.target and args.inputs and args.output):
        raise ConfigurationError("batch needs an agent, an inputs file and -o OUTPUT")

    def tell(message: str) -> None:
        sys.stderr.write(f"agentkit batch: {message}\n")

    reporter = JobReporter(
        False if args.no_progress else None,
        resume_hint=f"run: {_resume_command(args)}",
        say=tell,
        inform=tell,
    )
    try:
        agent = _load(args.target)
    except ConfigurationError as exc:
        tell(str(exc))
        return 2

    async def go() -> Any:
        try:
            return await run_batch(
                agent,
                args.inputs,
                output=args.output,
                concurrency=args.concurrency,
                resume=args.resume,
                overwrite=args.overwrite,
                reporter=reporter,
            )
        finally:
            await _close(agent.model)

    try:
        report = asyncio.run(go())
    except KeyboardInterrupt:
        if not reporter.stop_reported:
            raise
        return 130
    except AgentKitError as exc:
        if reporter.stop_reported:
            return 1  # the reporter said why and how to continue
        tell(str(exc) if isinstance(exc, ConfigurationError) else f"{type(exc).__name__}: {exc}")
        return 2 if isinstance(exc, ConfigurationError) else 1
    tell(summary(report))
    return 0 if report.ok else 1


# --- durable jobs: agentkit batch --durable / --status, agentkit worker (extra: dbos) -------------


def _add_durable_options(parser: argparse.ArgumentParser, *, batch: bool) -> None:
    group = parser.add_argument_group(
        "durable jobs (pip install 'agentkit[dbos]', docs/durable.md)"
    )
    if batch:
        group.add_argument(
            "--durable", action="store_true", help="each input a durable run on a DBOS queue"
        )
        group.add_argument(
            "--status", action="store_true", help="print the job's progress and exit"
        )
        group.add_argument("--job", help="the job's name (default: the output file's name)")
        group.add_argument(
            "--requests-per-minute", type=float, default=None,
            help="the account limit for all workers together (default: 300)",
        )  # fmt: skip
    group.add_argument(
        "--database-url",
        help="sqlite:///FILE (one process) or postgresql://... (default: "
        "DBOS_SYSTEM_DATABASE_URL, else sqlite:///agentkit.sqlite)",
    )
    group.add_argument(
        "--executor-id", help="this worker's name; restarted with it, it recovers its runs"
    )


def _add_durable_batch_options(parser: argparse.ArgumentParser) -> None:
    _add_durable_options(parser, batch=True)


def _add_worker(subparsers: _Subparsers) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="work on durable jobs of an agent (from another process or machine)",
        description="Take runs from the queues of every durable job of the agent in the "
        "database and run them, under the job's account limit, until none is left.",
    )
    parser.add_argument("target", help="the agent, as FILE.py:NAME or package.module:NAME")
    parser.add_argument("--concurrency", type=int, help="at most this many runs here at once")
    parser.add_argument("--forever", action="store_true", help="keep serving when idle")
    _add_durable_options(parser, batch=False)
    parser.set_defaults(handler=_cmd_worker)


def _durable_agent(target: str) -> Any:
    from .durable import DurableAgent

    # The name after ':' names the agent's workflow: the same for every worker of a job.
    return DurableAgent(_load(target), name=target.rsplit(":", 1)[-1])


def _cmd_durable_batch(args: argparse.Namespace) -> int:
    from .jobs import JobReporter, summary
    from .jobs.durable import DEFAULT_REQUESTS_PER_MINUTE, job_status, run_durable_batch

    if args.status:
        statuses = job_status(args.database_url, args.job)
        for status in statuses:
            print(status)
        if not statuses:
            print("no durable jobs in this database")
        return 0
    if not (args.target and args.inputs and args.output):
        raise ConfigurationError("batch --durable needs an agent, an inputs file and -o OUTPUT")
    if args.resume or args.overwrite:
        raise ConfigurationError(
            "--resume and --overwrite are for plain batches: a durable batch continues by "
            "itself when run again, and keeps the lines already written"
        )

    def tell(message: str) -> None:
        sys.stderr.write(f"agentkit batch: {message}\n")

    from .jobs._report import DURABLE_PROMISE

    reporter = JobReporter(
        False if args.no_progress else None,
        resume_hint="run the same command again",
        say=tell,
        inform=tell,
        promise=DURABLE_PROMISE,
    )
    durable = _durable_agent(args.target)
    report = asyncio.run(
        run_durable_batch(
            durable,
            args.inputs,
            output=args.output,
            database_url=args.database_url,
            job=args.job,
            requests_per_minute=args.requests_per_minute or DEFAULT_REQUESTS_PER_MINUTE,
            concurrency=args.concurrency,
            executor_id=args.executor_id,
            reporter=reporter,
        )
    )
    tell(summary(report))
    return 0 if report.ok else 1


def _cmd_worker(args: argparse.Namespace) -> int:
    from .jobs.durable import work

    durable = _durable_agent(args.target)
    ended = asyncio.run(
        work(
            durable,
            database_url=args.database_url,
            executor_id=args.executor_id,
            concurrency=args.concurrency,
            forever=args.forever,
        )
    )
    sys.stderr.write(f"agentkit worker: no work left; {ended} runs finished under this executor\n")
    return 0


# --- MCP servers (the optional extra agentkit[mcp]) ----------------------------------------------


def _add_mcp_options(parser: argparse.ArgumentParser) -> None:
    from .mcp._cli import add_mcp_options

    add_mcp_options(parser)


def _with_mcp_servers(agent: Agent[Any], args: argparse.Namespace) -> Any:
    """``async with``: ``agent`` plus the tools of ``--mcp``/``--mcp-http`` servers, connected."""
    from .mcp._cli import agent_with_servers

    return agent_with_servers(agent, args)


def _add_mcp(subparsers: _Subparsers) -> None:
    from .mcp._cli import add_serve_command

    add_serve_command(subparsers)


# --- entry point -----------------------------------------------------------------------------

#: One function per command; each adds its subparser and sets ``handler``.
COMMANDS: list[Callable[[_Subparsers], None]] = [
    _add_demo,
    _add_run,
    _add_chat,
    _add_complete,
    _add_batch,
]
COMMANDS.append(_add_mcp)  # agentkit mcp ... (see the MCP block above)
COMMANDS.append(_add_worker)  # agentkit worker (see the durable jobs block above)


def build_parser() -> argparse.ArgumentParser:
    """The ``agentkit`` argument parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="agentkit", description="Tool-calling agents for Cloudflare Workers AI."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``agentkit`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"\nagentkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except ConfigurationError as exc:
        print(f"agentkit {args.command}: {exc}", file=sys.stderr)
        return 2
    except AgentKitError as exc:
        print(f"agentkit {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
