"""Sessions: a conversation kept in an SQLite file, continued after a restart.

Each turn opens the file anew, as a new process would; the agent loads the conversation, saves
every step, and the second turn can only be answered from the first. The file is a temporary
one here; pass a path of your own to keep it. Runs offline on a scripted model; set
CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN to run it on Workers AI.
Also: `agentkit chat examples/sessions.py:agent --session trip`.
"""

import os
import tempfile
from pathlib import Path

from agentkit import Agent, SQLiteSession, TextDelta, ToolCall
from agentkit.models import Model
from agentkit.testing import ScriptedModel
from agentkit.tools import tool

FLIGHTS = {"LX1820": "Zurich 09:40 -> Lisbon 11:35, gate B34"}


@tool
def flight_status(number: str) -> str:
    """The schedule of a flight.

    Args:
        number: the flight number, e.g. LX1820
    """
    return FLIGHTS.get(number.upper().replace(" ", ""), "no such flight")


def make_model() -> Model:
    if os.environ.get("CLOUDFLARE_ACCOUNT_ID") and os.environ.get("CLOUDFLARE_API_TOKEN"):
        from agentkit.models import WorkersAI

        return WorkersAI()
    return ScriptedModel(
        [
            ToolCall(name="flight_status", arguments={"number": "LX1820"}),
            "LX1820 leaves Zurich at 09:40 and lands in Lisbon at 11:35 (gate B34).",
            "Gate B34.",
        ]
    )


agent = Agent(
    make_model(),
    [flight_status],
    system_prompt="You help travellers. Answer in one short sentence.",
)


def turn(path: Path, prompt: str) -> None:
    with SQLiteSession("trip", path, max_messages=20) as session:  # a new process, say
        print(f"you> {prompt}")
        print("agent> ", end="")
        for event in agent.stream_sync(prompt, session=session):
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
        print()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chats.db"
        turn(path, "When does flight LX1820 leave?")
        turn(path, "And which gate was it again?")  # answered from the stored conversation
        with SQLiteSession("trip", path) as session:
            kept = session.load_sync()
        print(f"[{len(kept)} messages kept: {', '.join(m.role for m in kept)}]")
